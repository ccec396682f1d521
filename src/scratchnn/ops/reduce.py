"""Reductions over axes: sum, mean, max, min, var (each with ``keepdims``)."""

from __future__ import annotations

import builtins

from scratchnn.autograd.function import Function
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops._operands import ensure_tensor


def _axes(axis, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative axes (None means all)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    out = []
    for a in axis:
        if not -ndim <= a < builtins.max(ndim, 1):  # this module's max is the op
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dims")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))


def _expand_back(grad, axes, keepdims, shape):
    """Broadcast a reduced gradient back to the input's shape."""
    if not keepdims and axes:
        grad = xp.expand_dims(grad, axes)
    return xp.broadcast_to(grad, shape)


def _count(shape, axes) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.axes, ctx.keepdims, ctx.shape = axes, keepdims, x.shape
        return x.sum(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _expand_back(grad, ctx.axes, ctx.keepdims, ctx.shape), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.axes, ctx.keepdims, ctx.shape = axes, keepdims, x.shape
        ctx.n = _count(x.shape, axes)
        return x.mean(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        grad = grad / grad.dtype.type(ctx.n)
        return _expand_back(grad, ctx.axes, ctx.keepdims, ctx.shape), None, None


class _Extreme(Function):
    """max / min over axes; tied extremes share the gradient evenly (as ``torch.amax``)."""

    reduce = None

    @classmethod
    def forward(cls, ctx, x, axes, keepdims):
        out = cls.reduce(x, axis=axes, keepdims=True)
        ctx.save_for_backward(x, out)
        ctx.axes, ctx.keepdims = axes, keepdims
        return out if keepdims else out.reshape(
            tuple(n for i, n in enumerate(x.shape) if i not in axes)
        )

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved
        mask = x == out
        count = mask.sum(axis=ctx.axes, keepdims=True)
        if not ctx.keepdims:
            grad = xp.expand_dims(grad, ctx.axes)
        return grad * mask / count.astype(grad.dtype), None, None


class Max(_Extreme):
    reduce = staticmethod(xp.max)


class Min(_Extreme):
    reduce = staticmethod(xp.min)


class Var(Function):
    """Variance with ``correction`` (1 = unbiased, 0 = biased), as ``torch.var``."""

    @staticmethod
    def forward(ctx, x, axes, keepdims, correction):
        n = _count(x.shape, axes)
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        ctx.save_for_backward(centred)
        ctx.axes, ctx.keepdims = axes, keepdims
        ctx.denom = x.dtype.type(builtins.max(n - correction, 0))
        sq = (centred * centred).sum(axis=axes, keepdims=keepdims)
        return sq / ctx.denom

    @staticmethod
    def backward(ctx, grad):
        (centred,) = ctx.saved
        if not ctx.keepdims:
            grad = xp.expand_dims(grad, ctx.axes)
        return grad * centred * (2 / ctx.denom), None, None, None


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - mirrors torch.sum
    x = ensure_tensor(x)
    return Sum.apply(x, _axes(axis, x.ndim), keepdims)


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    x = ensure_tensor(x)
    if x._data.dtype.kind != "f":
        raise TypeError(f"mean() needs a float tensor, got {x.dtype}; use .float() first")
    return Mean.apply(x, _axes(axis, x.ndim), keepdims)


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - mirrors torch.max
    x = ensure_tensor(x)
    return Max.apply(x, _axes(axis, x.ndim), keepdims)


def min(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - mirrors torch.min
    x = ensure_tensor(x)
    return Min.apply(x, _axes(axis, x.ndim), keepdims)


def var(x, axis=None, keepdims: bool = False, correction: int = 1) -> Tensor:
    x = ensure_tensor(x)
    return Var.apply(x, _axes(axis, x.ndim), keepdims, correction)
