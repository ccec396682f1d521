"""Pooling layers: max and average (1-d, 2-d), adaptive and global average (2-d)."""

from __future__ import annotations

from scratchnn.autograd.tensor import Tensor
from scratchnn.nn.module import Module
from scratchnn.ops.conv import ntuple, positive
from scratchnn.ops.pool import (
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    global_avg_pool2d,
    max_pool1d,
    max_pool2d,
)


def _check(spatial: int, kernel_size, stride, padding, dilation=1) -> None:
    """Reject bad window arguments when the layer is built, not at its first call."""
    positive(kernel_size, spatial, "kernel_size")
    if stride is not None:
        positive(stride, spatial, "stride")
    if any(p < 0 for p in ntuple(padding, spatial, "padding")):
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    positive(dilation, spatial, "dilation")


class _MaxPoolNd(Module):
    spatial = 0

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        _check(self.spatial, kernel_size, stride, padding, dilation)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Max over windows of the last dim; see ``nn.functional.max_pool1d``.

    Shape: (N, C, L) or (C, L) → (..., L_out).
    """

    spatial = 1

    def forward(self, x) -> Tensor:
        return max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode)


class MaxPool2d(_MaxPoolNd):
    """Max over windows of the last two dims; see ``nn.functional.max_pool2d``.

    Shape: (N, C, H, W) or (C, H, W) → (..., H_out, W_out).
    """

    spatial = 2

    def forward(self, x) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode)


class _AvgPoolNd(Module):
    spatial = 0

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__()
        _check(self.spatial, kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """Mean over windows of the last dim; see ``nn.functional.avg_pool1d``.

    Shape: (N, C, L) or (C, L) → (..., L_out).
    """

    spatial = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        # Stored as 1-tuples, as PyTorch stores them.
        super().__init__(ntuple(kernel_size, 1, "kernel_size"),
                         None if stride is None else ntuple(stride, 1, "stride"),
                         ntuple(padding, 1, "padding"), ceil_mode, count_include_pad)

    def forward(self, x) -> Tensor:
        return avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """Mean over windows of the last two dims; see ``nn.functional.avg_pool2d``.

    Shape: (N, C, H, W) or (C, H, W) → (..., H_out, W_out).
    """

    spatial = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, x) -> Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed ``output_size`` (an int or a pair; None keeps that dim).

    Shape: (N, C, H, W) or (C, H, W) → (..., out_h, out_w). ``AdaptiveAvgPool2d(1)`` is global
    average pooling that keeps the 1×1 spatial dims.
    """

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x) -> Tensor:
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(Module):
    """Mean over the spatial dims: (N, C, H, W) → (N, C) (or (N, C, 1, 1) with ``keepdims``)."""

    def __init__(self, keepdims: bool = False) -> None:
        super().__init__()
        self.keepdims = keepdims

    def forward(self, x) -> Tensor:
        return global_avg_pool2d(x, self.keepdims)

    def extra_repr(self) -> str:
        return f"keepdims={self.keepdims}" if self.keepdims else ""
