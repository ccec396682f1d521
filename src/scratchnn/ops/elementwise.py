"""Elementwise arithmetic: add, sub, mul, div, neg, pow, exp, log, sqrt, abs, maximum,
minimum, where, clip, cast."""

from __future__ import annotations

import numpy as np

from scratchnn.autograd.function import Function
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops._operands import binary, constant_like, ensure_tensor


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        return (
            grad * b if ctx.needs_input_grad[0] else None,
            grad * a if ctx.needs_input_grad[1] else None,
        )


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        grad_a = grad / b
        grad_b = -grad_a * a / b if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    """``a ** b``; the gradient for ``b`` uses ``log(a)`` and needs ``a > 0``."""

    @staticmethod
    def forward(ctx, a, b):
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved
        grad_a = grad_b = None
        zero = grad.dtype.type(0)
        # As torch: no gradient for a where b == 0, none for b where a == 0 and b >= 0 (the
        # formulas would give 0 * inf = nan there).
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.needs_input_grad[0]:
                grad_a = xp.where(b == 0, zero, grad * b * a ** (b - 1))
            if ctx.needs_input_grad[1]:
                grad_b = xp.where((a == 0) & (b >= 0), zero, grad * out * xp.log(a))
        return grad_a, grad_b


class PowScalar(Function):
    """``a ** p`` for a Python number ``p`` (the common case: one saved array fewer)."""

    @staticmethod
    def forward(ctx, a, p):
        ctx.p = p
        ctx.save_for_backward(a)
        return a**p

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved
        p = ctx.p
        if p == 0:  # constant 1; a ** -1 would make 0 * inf = nan at a == 0
            return xp.zeros_like(grad)
        if p == 2:
            return grad * (2 * a)
        return grad * (p * a ** (p - 1))


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = xp.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            # log(0) = -inf and log(<0) = nan are the honest answers; no warning spam.
            return xp.log(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad / a


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        with np.errstate(invalid="ignore"):
            out = xp.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad / (2 * out)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return xp.abs(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * xp.sign(a)


class Maximum(Function):
    """Elementwise max; on ties the gradient is split evenly between the two inputs."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return xp.maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        share = (a > b) + 0.5 * (a == b)
        share = share.astype(grad.dtype)
        return grad * share, grad * (1 - share)


class Minimum(Function):
    """Elementwise min; on ties the gradient is split evenly between the two inputs."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return xp.minimum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        share = (a < b) + 0.5 * (a == b)
        share = share.astype(grad.dtype)
        return grad * share, grad * (1 - share)


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.condition = condition
        return xp.where(condition, a, b)

    @staticmethod
    def backward(ctx, grad):
        cond = ctx.condition
        zero = grad.dtype.type(0)
        return (
            None,
            xp.where(cond, grad, zero) if ctx.needs_input_grad[1] else None,
            xp.where(cond, zero, grad) if ctx.needs_input_grad[2] else None,
        )


class Clip(Function):
    """Clamp to [low, high]; the gradient passes where low <= x <= high (as in PyTorch)."""

    @staticmethod
    def forward(ctx, a, low, high):
        ctx.save_for_backward(a)
        ctx.low, ctx.high = low, high
        return xp.clip(a, low, high)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved
        # Out of place: array bounds may broadcast ``a`` to a larger shape.
        keep = True
        if ctx.low is not None:
            keep = keep & (a >= ctx.low)
        if ctx.high is not None:
            keep = keep & (a <= ctx.high)
        return grad * keep, None, None


class Cast(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.in_dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.in_dtype), None


class Clone(Function):
    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


def add(a, b) -> Tensor:
    return Add.apply(*binary(a, b))


def sub(a, b) -> Tensor:
    return Sub.apply(*binary(a, b))


def mul(a, b) -> Tensor:
    return Mul.apply(*binary(a, b))


def div(a, b) -> Tensor:
    return Div.apply(*binary(a, b))


def neg(a) -> Tensor:
    return Neg.apply(ensure_tensor(a))


def pow(a, b) -> Tensor:  # noqa: A001 - mirrors torch.pow
    """``a ** b``; a Python-number exponent takes a cheaper path."""
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if a._data.dtype.kind != "f":
            return Tensor._wrap(a._data**b, False)
        # np.float64 is a float too, but a NumPy scalar would upcast float32 data.
        return PowScalar.apply(a, float(b) if isinstance(b, float) else b)
    return Pow.apply(*binary(a, b))


def exp(a) -> Tensor:
    return Exp.apply(ensure_tensor(a))


def log(a) -> Tensor:
    return Log.apply(ensure_tensor(a))


def sqrt(a) -> Tensor:
    return Sqrt.apply(ensure_tensor(a))


def abs(a) -> Tensor:  # noqa: A001 - mirrors torch.abs
    return Abs.apply(ensure_tensor(a))


def maximum(a, b) -> Tensor:
    return Maximum.apply(*binary(a, b))


def minimum(a, b) -> Tensor:
    return Minimum.apply(*binary(a, b))


def where(condition, a, b) -> Tensor:
    """``a`` where ``condition`` is true, else ``b`` (condition carries no gradient)."""
    cond = condition._data if isinstance(condition, Tensor) else xp.asarray(condition)
    if cond.dtype != bool:
        raise TypeError(f"where() needs a bool condition, got dtype {cond.dtype}")
    a, b = binary(a, b)
    return Where.apply(cond, a, b)


def clip(a, min=None, max=None) -> Tensor:  # noqa: A002 - mirrors torch.clamp
    """Clamp to ``[min, max]``; either bound may be None."""
    a = ensure_tensor(a)
    if min is None and max is None:
        raise ValueError("clip() needs at least one of min and max")
    low = None if min is None else constant_like(min, a)
    high = None if max is None else constant_like(max, a)
    return Clip.apply(a, low, high)


def cast(a, dtype) -> Tensor:
    """``a`` as ``dtype``; float-to-float casts pass the gradient through."""
    a = ensure_tensor(a)
    dtype = np.dtype(dtype)
    if dtype == a._data.dtype:
        return a
    if dtype.kind != "f":
        return Tensor._wrap(a._data.astype(dtype), False)
    if a._data.dtype.kind != "f":
        return Tensor._wrap(a._data.astype(dtype), False)
    return Cast.apply(a, dtype)


def clone(a) -> Tensor:
    return Clone.apply(ensure_tensor(a))
