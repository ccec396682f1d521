"""Activations and the softmax family, each stable at extreme inputs without NumPy warnings."""

from __future__ import annotations

import math

from scratchnn.autograd.function import Function
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import erfc, xp
from scratchnn.ops._operands import ensure_tensor


class ReLU(Function):
    @staticmethod
    def forward(ctx, x):
        out = xp.maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (out > 0)


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return xp.where(x > 0, x, x * x.dtype.type(slope))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return xp.where(x > 0, grad, grad * grad.dtype.type(ctx.slope)), None


def _sigmoid(x):
    # exp of a non-positive number only: no overflow for any input.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        out = _sigmoid(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * out * (1 - out)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        out = xp.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (1 - out * out)


_GELU_C = math.sqrt(2 / math.pi)
_GELU_K = 0.044715


def _gelu_tanh_inner(x):
    """``c (x + k x³)`` in a fresh array (x·x·x: ``x**3`` goes through a slow ``pow``)."""
    f = x.dtype.type
    inner = x * x
    inner *= f(_GELU_C * _GELU_K)
    inner += f(_GELU_C)
    inner *= x
    return inner


# Abramowitz & Stegun 7.1.26: erfc(z) ≈ t (a1 + t (a2 + ... + t a5)) e^{-z²}, t = 1/(1 + p z),
# z >= 0, absolute error <= 1.5e-7 (below float32's resolution of Φ near 1).
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
#: Beyond this z, e^{-z²} underflows to exactly 0 in float32 (and z² cannot overflow).
_AS_Z_MAX = 11.0


def _normal_cdf(x):
    """Φ(x) = erfc(-x/√2) / 2, the standard normal CDF, in a fresh array.

    float64 goes through SciPy's erfc. float32 uses A&S 7.1.26 on |x|/√2 and the symmetry
    Φ(x) = 1 - Φ(-x) (the lower tail computed directly, without cancellation), within 3e-7 of
    the exact value (float32 resolves 6e-8 near 1): NumPy's vectorised exp makes it ~1.5x
    faster than SciPy's float32 erfc, which is most of exact GELU's cost in a BERT layer.
    """
    if x.dtype != xp.float32:
        return 0.5 * erfc(x * x.dtype.type(-1 / math.sqrt(2)))
    f = xp.float32
    z = xp.abs(x)
    z *= f(1 / math.sqrt(2))
    xp.minimum(z, f(_AS_Z_MAX), out=z)
    t = z * f(_AS_P)
    t += f(1)
    xp.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = (f(a) for a in _AS_A)
    tail = t * a5  # Horner: ((((a5 t + a4) t + a3) t + a2) t + a1) t
    for a in (a4, a3, a2, a1):
        tail += a
        tail *= t
    z *= z
    xp.negative(z, out=z)
    xp.exp(z, out=z)
    tail *= z
    tail *= f(0.5)  # Φ(-|x|) = erfc(|x|/√2) / 2
    xp.subtract(f(1), tail, out=tail, where=x >= 0)  # Φ(|x|) = 1 - Φ(-|x|)
    return tail


class GELU(Function):
    """GELU, exact (``x Φ(x)``) or with the tanh approximation of GPT-2."""

    @staticmethod
    def forward(ctx, x, approximate):
        ctx.approximate = approximate
        if approximate == "tanh":
            # Keeps t = tanh(c (x + k x³)) too: recomputing it is most of backward's work.
            t = xp.tanh(_gelu_tanh_inner(x))
            ctx.save_for_backward(x, t)
            out = t + 1
            out *= x
            out *= x.dtype.type(0.5)
            return out
        cdf = _normal_cdf(x)
        ctx.save_for_backward(x, cdf)  # Φ(x) again in backward: keep it rather than redo it
        return x * cdf

    @staticmethod
    def backward(ctx, grad):
        x = ctx.saved[0]
        if ctx.approximate == "tanh":
            # d/dx = 0.5 (1 + t) + 0.5 x (1 - t²) c (1 + 3 k x²).
            t = ctx.saved[1]
            f = x.dtype.type
            d = x * x
            d *= f(3 * _GELU_K * _GELU_C)
            d += f(_GELU_C)
            out = t * t
            xp.subtract(1, out, out=out)
            out *= x
            out *= d
            out += 1
            out += t
            out *= f(0.5)
            out *= grad
            return out, None
        cdf = ctx.saved[1]
        f = x.dtype.type
        # φ(x) = e^{-x²/2} / √(2π), 0 in any float beyond |x| = 40 (where x² cannot overflow).
        pdf = xp.clip(x, f(-40), f(40))
        pdf *= pdf
        pdf *= f(-0.5)
        xp.exp(pdf, out=pdf)
        pdf *= x
        pdf *= f(1 / math.sqrt(2 * math.pi))
        pdf += cdf
        pdf *= grad
        return pdf, None


class Softplus(Function):
    """``log(1 + exp(beta x)) / beta``, linear above ``threshold`` as in PyTorch."""

    @staticmethod
    def forward(ctx, x, beta, threshold):
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        bx = x * x.dtype.type(beta)
        soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / x.dtype.type(beta)
        return xp.where(bx > threshold, x, soft)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        bx = x * x.dtype.type(ctx.beta)
        return xp.where(bx > ctx.threshold, grad, grad * _sigmoid(bx)), None, None


def _shifted(x, axis):
    return x - x.max(axis=axis, keepdims=True)


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        e = xp.exp(_shifted(x, axis))
        out = e / e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        gy = grad * out
        return gy - out * gy.sum(axis=ctx.axis, keepdims=True), None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        z = _shifted(x, axis)
        out = z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad - xp.exp(out) * grad.sum(axis=ctx.axis, keepdims=True), None


def relu(x) -> Tensor:
    return ReLU.apply(ensure_tensor(x))


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    return LeakyReLU.apply(ensure_tensor(x), float(negative_slope))


def sigmoid(x) -> Tensor:
    return Sigmoid.apply(ensure_tensor(x))


def tanh(x) -> Tensor:
    return Tanh.apply(ensure_tensor(x))


def gelu(x, approximate: str = "none") -> Tensor:
    """GELU; ``approximate="tanh"`` gives GPT-2's approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(ensure_tensor(x), approximate)


def softplus(x, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    return Softplus.apply(ensure_tensor(x), float(beta), float(threshold))


def softmax(x, axis: int = -1) -> Tensor:
    return Softmax.apply(ensure_tensor(x), axis)


def log_softmax(x, axis: int = -1) -> Tensor:
    return LogSoftmax.apply(ensure_tensor(x), axis)
