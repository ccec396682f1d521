"""``Linear`` (affine map with PyTorch's weight layout), ``Identity`` and ``Flatten``."""

from __future__ import annotations

import math

import numpy as np

from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import DEFAULT_FLOAT, xp
from scratchnn.nn import init
from scratchnn.nn.module import Module
from scratchnn.nn.parameter import Parameter
from scratchnn.ops._operands import ensure_tensor
from scratchnn.ops.linear import Linear as LinearOp
from scratchnn.ops.linear import linear
from scratchnn.ops.shape import flatten


class Linear(Module):
    """``y = x @ weight.T + bias``.

    Args:
        in_features: size of each input's last dim.
        out_features: size of each output's last dim.
        bias: add a learnable bias.
        rng: generator for the initial weights (None → the default generator).
        dtype: parameter dtype (float32 unless given).

    Shape: (..., in_features) → (..., out_features); weight (out_features, in_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None, dtype=None) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        dtype = np.dtype(dtype) if dtype is not None else DEFAULT_FLOAT
        if dtype.kind != "f":
            raise ValueError(f"Linear parameters must be floating point, got dtype {dtype}")
        # dtype= on Parameter too: it would otherwise turn a float64 array into float32.
        shape = (self.out_features, self.in_features)
        self.weight = Parameter(xp.empty(shape, dtype=dtype), dtype=dtype)
        if bias:
            self.bias = Parameter(xp.empty((self.out_features,), dtype=dtype), dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(rng)

    def reset_parameters(self, rng: np.random.Generator | None = None) -> None:
        """PyTorch's default: weight and bias ~ U(-1/√in_features, 1/√in_features).

        (For the weight this is ``kaiming_uniform_`` with ``a=√5``.)
        """
        if self.in_features == 0:
            init.zeros_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)
            return
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), rng=rng)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound, rng)

    def forward(self, x) -> Tensor:
        x = ensure_tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self!r} expected input with last dim {self.in_features}, "
                f"got shape {tuple(x.shape)}"
            )
        weight = self.weight
        if x.dtype != weight.dtype:
            if x.dtype.kind == "f":
                raise TypeError(
                    f"{self!r} has {weight.dtype} parameters but got a {x.dtype} input; "
                    f"convert the input or the layer (.to(dtype)) explicitly"
                )
            return linear(x, weight, self.bias)  # converts integer inputs
        # Checked above: straight to the op (this is the hot path of every model).
        return LinearOp.apply(x, weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for a removed head)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, x):
        return x


class Flatten(Module):
    """Flatten dims ``start_dim``..``end_dim`` into one: (N, C, H, W) → (N, C·H·W) by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x) -> Tensor:
        return flatten(ensure_tensor(x), self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
