"""Tensors, graph recording and reverse-mode differentiation."""

# tensor first: it binds the ops, which need Function, which needs Tensor.
from scratchnn.autograd.tensor import Tensor, tensor  # noqa: I001
from scratchnn.autograd.function import Context, Function
from scratchnn.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad

__all__ = ["Context", "Function", "Tensor", "enable_grad", "is_grad_enabled", "no_grad", "tensor"]
