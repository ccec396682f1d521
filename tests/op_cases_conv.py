"""Op cases for the conv family; part of the one case table (``op_cases.CASES``).

Convolutions (1-d, 2-d: stride, padding incl. "same", dilation, groups, depthwise, no bias,
unbatched) and pooling (max, average, adaptive, global; overlapping windows and padding).
Inputs stay small: the gradient check evaluates each case twice per input element.
"""

from __future__ import annotations

import warnings

import torch.nn.functional as TF

import scratchnn.nn.functional as F
from op_cases import OpCase, case, const, distinct, normal


def _conv(name, dims, x_shape, w_shape, bias=True, **kw) -> OpCase:
    """A conv case with the same keyword arguments on both sides."""
    ours, torch_conv = (F.conv1d, TF.conv1d) if dims == 1 else (F.conv2d, TF.conv2d)

    def theirs(*args, **kwargs):
        with warnings.catch_warnings():  # torch warns that "same" with an even kernel copies
            warnings.simplefilter("ignore", UserWarning)
            return torch_conv(*args, **kwargs)

    makers = [normal(x_shape), normal(w_shape, scale=0.5)]
    if bias:
        makers.append(normal((w_shape[0],)))
        return case(name, lambda x, w, b: ours(x, w, b, **kw),
                    lambda x, w, b: theirs(x, w, b, **kw), *makers)
    return case(name, lambda x, w: ours(x, w, **kw), lambda x, w: theirs(x, w, **kw), *makers)


def _conv_cases() -> list[OpCase]:
    return [
        _conv("conv2d_basic", 2, (2, 2, 5, 5), (3, 2, 3, 3)),
        _conv("conv2d_stride_padding", 2, (2, 2, 6, 5), (3, 2, 3, 2), stride=(2, 1),
              padding=(1, 2)),
        _conv("conv2d_same_odd_kernel", 2, (1, 2, 5, 4), (2, 2, 3, 3), padding="same"),
        # An even dilated kernel: an odd total padding, the extra row/column at the far end.
        _conv("conv2d_same_even_kernel_dilated", 2, (1, 2, 5, 6), (2, 2, 2, 4),
              padding="same", dilation=(3, 1)),
        _conv("conv2d_valid", 2, (2, 1, 4, 5), (2, 1, 2, 3), padding="valid"),
        _conv("conv2d_dilation_stride", 2, (1, 2, 7, 7), (2, 2, 3, 2), stride=2,
              dilation=(2, 3), padding=1),
        _conv("conv2d_groups", 2, (2, 4, 4, 4), (6, 2, 2, 2), groups=2, padding=1),
        _conv("conv2d_depthwise", 2, (2, 3, 5, 4), (6, 1, 3, 3), groups=3, padding=1),
        _conv("conv2d_nobias", 2, (2, 2, 4, 4), (3, 2, 3, 3), bias=False, stride=2, padding=1),
        _conv("conv2d_unbatched", 2, (2, 5, 4), (3, 2, 3, 2), padding=(1, 0)),
        _conv("conv2d_1x1", 2, (2, 3, 3, 3), (4, 3, 1, 1)),
        _conv("conv1d_basic", 1, (2, 3, 7), (4, 3, 3)),
        _conv("conv1d_stride_padding", 1, (2, 2, 8), (3, 2, 3), stride=2, padding=2),
        _conv("conv1d_same_even_kernel", 1, (2, 2, 6), (3, 2, 4), padding="same"),
        _conv("conv1d_dilation_groups", 1, (2, 4, 9), (4, 2, 3), dilation=2, groups=2),
        _conv("conv1d_depthwise_nobias_unbatched", 1, (3, 7), (3, 1, 3), bias=False,
              groups=3, padding=1),
    ]


def _pool(name, ours, theirs, *makers, **options) -> OpCase:
    return case(name, ours, theirs, *makers, **options)


def _max_pool_cases() -> list[OpCase]:
    def mp2(**kw):
        return (lambda x: F.max_pool2d(x, **kw)), (lambda x: TF.max_pool2d(x, **kw))

    def mp1(**kw):
        return (lambda x: F.max_pool1d(x, **kw)), (lambda x: TF.max_pool1d(x, **kw))

    # Ties inside windows: gradient to the first maximum (row-major), as PyTorch routes it.
    ties = const([[[[1.0, 1.0, 0.0, 2.0], [1.0, 0.5, 2.0, 2.0],
                    [3.0, 3.0, 3.0, 0.0], [3.0, 3.0, -1.0, -1.0]]]])
    return [
        _pool("max_pool2d_2x2", *mp2(kernel_size=2), distinct((2, 2, 4, 6))),
        _pool("max_pool2d_overlapping", *mp2(kernel_size=3, stride=1), distinct((1, 2, 5, 5))),
        _pool("max_pool2d_padding", *mp2(kernel_size=3, stride=2, padding=1),
              distinct((2, 2, 5, 6))),
        _pool("max_pool2d_rect_stride", *mp2(kernel_size=(2, 3), stride=(1, 2)),
              distinct((1, 2, 4, 7))),
        _pool("max_pool2d_ceil_mode_dilation",
              *mp2(kernel_size=2, stride=2, dilation=(1, 2), ceil_mode=True),
              distinct((1, 2, 5, 7))),
        _pool("max_pool2d_unbatched", *mp2(kernel_size=2, stride=1), distinct((2, 3, 4))),
        _pool("max_pool2d_ties", *mp2(kernel_size=2, stride=1), ties, gradcheck=False),
        _pool("max_pool1d_overlapping_padding", *mp1(kernel_size=3, stride=2, padding=1),
              distinct((2, 3, 8))),
        _pool("max_pool1d_unbatched_ceil", *mp1(kernel_size=2, ceil_mode=True),
              distinct((2, 7))),
    ]


def _avg_pool_cases() -> list[OpCase]:
    def ap2(**kw):
        return (lambda x: F.avg_pool2d(x, **kw)), (lambda x: TF.avg_pool2d(x, **kw))

    def ap1(**kw):
        return (lambda x: F.avg_pool1d(x, **kw)), (lambda x: TF.avg_pool1d(x, **kw))

    return [
        _pool("avg_pool2d_2x2", *ap2(kernel_size=2), normal((2, 2, 4, 6))),
        _pool("avg_pool2d_overlapping_padding", *ap2(kernel_size=3, stride=2, padding=1),
              normal((2, 2, 5, 6))),
        _pool("avg_pool2d_ceil_mode", *ap2(kernel_size=3, stride=2, padding=1, ceil_mode=True),
              normal((1, 2, 6, 5))),
        _pool("avg_pool2d_exclude_pad",
              *ap2(kernel_size=(3, 2), stride=1, padding=1, count_include_pad=False),
              normal((1, 2, 4, 4))),
        _pool("avg_pool2d_divisor_override", *ap2(kernel_size=2, divisor_override=3),
              normal((2, 4, 4))),
        _pool("avg_pool1d_overlapping_padding", *ap1(kernel_size=3, stride=2, padding=1),
              normal((2, 3, 8))),
        _pool("avg_pool1d_unbatched_ceil", *ap1(kernel_size=2, ceil_mode=True),
              normal((2, 7))),
    ]


def _adaptive_cases() -> list[OpCase]:
    def aap(size):
        return (lambda x: F.adaptive_avg_pool2d(x, size)), (
            lambda x: TF.adaptive_avg_pool2d(x, size))

    return [
        # 5 → 3 and 7 → 4: windows of unequal size that overlap.
        _pool("adaptive_avg_pool2d_non_divisible", *aap((3, 4)), normal((2, 2, 5, 7))),
        _pool("adaptive_avg_pool2d_larger_output", *aap((5, 3)), normal((1, 2, 3, 2))),
        _pool("adaptive_avg_pool2d_none_dim", *aap((None, 2)), normal((2, 3, 5))),
        _pool("adaptive_avg_pool2d_global", *aap(1), normal((2, 3, 4, 5))),
        _pool("global_avg_pool2d", F.global_avg_pool2d, lambda x: x.mean(dim=(-2, -1)),
              normal((2, 3, 4, 5))),
        _pool("global_avg_pool2d_keepdims", lambda x: F.global_avg_pool2d(x, keepdims=True),
              lambda x: x.mean(dim=(-2, -1), keepdim=True), normal((2, 3, 3, 2))),
    ]


def cases() -> list[OpCase]:
    return [*_conv_cases(), *_max_pool_cases(), *_avg_pool_cases(), *_adaptive_cases()]

