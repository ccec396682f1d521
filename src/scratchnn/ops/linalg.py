"""Matrix multiply: batched and broadcasting, with NumPy's 1-D rules."""

from __future__ import annotations

from scratchnn.autograd.function import Function
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops._operands import binary


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        grad_a = grad_b = None
        # 1-D operands get a unit axis so every case is a (batched) matrix product; the engine
        # sums broadcast batch axes back down.
        a2 = a[None, :] if a.ndim == 1 else a  # (..., m, k)
        b2 = b[:, None] if b.ndim == 1 else b  # (..., k, n)
        g2 = grad
        # b's axis first: when both are 1-D the gradient is 0-d and has no axis -2 yet.
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)  # (..., m, n)
        if ctx.needs_input_grad[0]:
            grad_a = g2 @ xp.swapaxes(b2, -1, -2)  # (..., m, k)
            if a.ndim == 1:
                grad_a = grad_a.reshape(grad_a.shape[:-2] + (grad_a.shape[-1],))
        if ctx.needs_input_grad[1]:
            grad_b = xp.swapaxes(a2, -1, -2) @ g2  # (..., k, n)
            if b.ndim == 1:
                grad_b = grad_b[..., 0]
        return grad_a, grad_b


def matmul(a, b) -> Tensor:
    """``a @ b`` with NumPy's batching and broadcasting rules."""
    a, b = binary(a, b)
    sa, sb = a.shape, b.shape
    if len(sa) == 0 or len(sb) == 0:
        raise ValueError(f"matmul needs operands with at least 1 dim, got shapes {sa} and {sb}")
    k_a = sa[-1]
    k_b = sb[-2] if len(sb) > 1 else sb[0]
    if k_a != k_b:
        raise ValueError(
            f"matmul shape mismatch: {tuple(sa)} @ {tuple(sb)} (inner sizes {k_a} and {k_b})"
        )
    return MatMul.apply(a, b)
