"""``Conv1d`` and ``Conv2d`` with PyTorch's parameter layout, arguments and default init."""

from __future__ import annotations

import math

import numpy as np

from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import DEFAULT_FLOAT, xp
from scratchnn.nn import init
from scratchnn.nn.module import Module
from scratchnn.nn.parameter import Parameter
from scratchnn.ops._operands import ensure_tensor
from scratchnn.ops.conv import conv1d, conv2d, ntuple, positive


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class _ConvNd(Module):
    """Shared construction, init and checks of the N-d convolutions."""

    spatial = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 rng: np.random.Generator | None = None, dtype=None) -> None:
        super().__init__()
        n = self.spatial
        self.in_channels = _check_count("in_channels", in_channels)
        self.out_channels = _check_count("out_channels", out_channels)
        self.groups = _check_count("groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        self.kernel_size = positive(kernel_size, n, "kernel_size")
        self.stride = positive(stride, n, "stride")
        self.dilation = positive(dilation, n, "dilation")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, "
                                 f"got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"padding='same' needs stride 1, got stride {self.stride}")
            self.padding = padding
        else:
            self.padding = ntuple(padding, n, "padding")
            if any(p < 0 for p in self.padding):
                raise ValueError(f"padding must be >= 0, got {padding!r}")
        if padding_mode != "zeros":
            raise ValueError(f"only padding_mode='zeros' is supported, got {padding_mode!r}")
        self.padding_mode = padding_mode
        dtype = np.dtype(dtype) if dtype is not None else DEFAULT_FLOAT
        if dtype.kind != "f":
            raise ValueError(f"{type(self).__name__} parameters must be floating point, "
                             f"got dtype {dtype}")
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(xp.empty(shape, dtype=dtype), dtype=dtype)
        if bias:
            self.bias = Parameter(xp.empty((self.out_channels,), dtype=dtype), dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(rng)

    def reset_parameters(self, rng: np.random.Generator | None = None) -> None:
        """PyTorch's default: weight ``kaiming_uniform_(a=√5)``, bias U(±1/√fan_in)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), rng=rng)
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound, rng)

    def _check_input(self, x) -> Tensor:
        x = ensure_tensor(x)
        n = self.spatial
        if x.ndim not in (n + 1, n + 2) or x.shape[-n - 1] != self.in_channels:
            layout = "(N, C, L) or (C, L)" if n == 1 else "(N, C, H, W) or (C, H, W)"
            raise ValueError(f"{self!r} expected input {layout} with C = {self.in_channels} "
                             f"channels, got shape {tuple(x.shape)}")
        if x.dtype.kind == "f" and x.dtype != self.weight.dtype:
            raise TypeError(f"{self!r} has {self.weight.dtype} parameters but got a {x.dtype} "
                            f"input; convert the input or the layer (.to(dtype)) explicitly")
        return x

    def extra_repr(self) -> str:
        n = self.spatial
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0,) * n:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv1d(_ConvNd):
    """1-d convolution (cross-correlation) over (N, C_in, L) or (C_in, L).

    Args:
        in_channels, out_channels: channel counts, both divisible by ``groups``.
        kernel_size, stride, dilation: an int or a 1-tuple.
        padding: an int, a 1-tuple, "valid" or "same" (stride 1 only; an odd total puts the
            extra zero on the right, as PyTorch does).
        groups: split channels into this many independent groups (``in_channels``: depthwise).
        bias: add a learnable bias.
        rng: generator for the initial weights (None → the default generator).
        dtype: parameter dtype (float32 unless given).

    Shape: (N, C_in, L) → (N, C_out, L_out); weight (C_out, C_in / groups, k), bias (C_out,).
    """

    spatial = 1

    def forward(self, x) -> Tensor:
        return conv1d(self._check_input(x), self.weight, self.bias, self.stride, self.padding,
                      self.dilation, self.groups)


class Conv2d(_ConvNd):
    """2-d convolution (cross-correlation) over (N, C_in, H, W) or (C_in, H, W).

    Args:
        in_channels, out_channels: channel counts, both divisible by ``groups``.
        kernel_size, stride, dilation: an int or a pair.
        padding: an int, a pair, "valid" or "same" (stride 1 only; an odd total puts the
            extra zero at the bottom/right, as PyTorch does).
        groups: split channels into this many independent groups (``in_channels``: depthwise).
        bias: add a learnable bias.
        rng: generator for the initial weights (None → the default generator).
        dtype: parameter dtype (float32 unless given).

    Shape: (N, C_in, H, W) → (N, C_out, H_out, W_out); weight (C_out, C_in / groups, kh, kw),
    bias (C_out,).
    """

    spatial = 2

    def forward(self, x) -> Tensor:
        return conv2d(self._check_input(x), self.weight, self.bias, self.stride, self.padding,
                      self.dilation, self.groups)
