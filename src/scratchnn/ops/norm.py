"""Fused normalisation ops with hand-written backward: layer, batch and group norm.

Each op normalises x over some axes, ``x̂ = (x - mean) * rstd`` with ``rstd = 1/√(var + eps)``
and the biased variance, then applies a per-element (layer norm) or per-channel (batch and
group norm) affine map ``x̂ w + b``. Their backward shares one formula: with ``g = dL/dx̂``
and means over the normalised axes, ``dx = rstd (g - mean(g) - x̂ mean(g x̂))``.

The statistics take two passes (mean, then the mean of squared deviations), never
``E[x²] - E[x]²``, which cancels catastrophically in float32 for inputs far from zero.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from scratchnn.autograd.function import Function
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops._operands import ensure_tensor


def _normalize(x, axes: tuple[int, ...], eps: float):
    """(x̂, mean, biased var, rstd) over ``axes``; the statistics keep size-1 dims."""
    # Sums times 1/n: np.mean's Python wrapper costs more than the reduction for small x.
    inv_n = x.dtype.type(1.0 / max(math.prod(x.shape[a] for a in axes), 1))
    mean = xp.add.reduce(x, axis=axes, keepdims=True) * inv_n
    xhat = x - mean
    var = xp.add.reduce(xhat * xhat, axis=axes, keepdims=True) * inv_n
    rstd = 1 / xp.sqrt(var + x.dtype.type(eps))
    xhat *= rstd
    return xhat, mean, var, rstd


def _normalize_backward(g, xhat, rstd, axes: tuple[int, ...], owned: bool):
    """dL/dx from ``g = dL/dx̂``; ``g`` is reused in place when ``owned`` (never the upstream
    gradient itself, which other nodes may share)."""
    mean_g = g.mean(axis=axes, keepdims=True)
    mean_gx = (g * xhat).mean(axis=axes, keepdims=True)
    if owned:
        g -= mean_g
        dx = g
    else:
        dx = g - mean_g
    dx -= xhat * mean_gx
    dx *= rstd
    return dx


def _affine(xhat, weight, bias):
    """``xhat * weight + bias`` (either may be None, already shaped to broadcast); may return
    ``xhat`` itself."""
    if weight is not None:
        out = xhat * weight
        if bias is not None:
            out += bias
        return out
    return xhat + bias if bias is not None else xhat


def _own(out, xhat, weight, bias):
    """What to save as x̂: the output itself when it *is* x̂ (no affine map), so that an
    in-place change of the output is caught at backward time by the version check."""
    return out if weight is None and bias is None else xhat


def _affine_grads(grad, xhat, axes, need_w: bool, need_b: bool, shape):
    """Gradients of the affine weight and bias: sums of ``grad x̂`` and ``grad`` over ``axes``."""
    grad_w = (grad * xhat).sum(axis=axes).reshape(shape) if need_w else None
    grad_b = grad.sum(axis=axes).reshape(shape) if need_b else None
    return grad_w, grad_b


class LayerNorm(Function):
    """Normalise over the last ``n_dims`` dims; weight and bias have those dims' shape."""

    @staticmethod
    def forward(ctx, x, weight, bias, n_dims, eps):
        k = 1
        for size in x.shape[x.ndim - n_dims:]:
            k *= size
        x2 = x.reshape(-1, k)  # (M, K): one row per normalised group
        xhat, _, _, rstd = _normalize(x2, (1,), eps)
        w = weight.reshape(k) if weight is not None else None
        b = bias.reshape(k) if bias is not None else None
        out = _affine(xhat, w, b).reshape(x.shape)
        ctx.save_for_backward(_own(out, xhat, weight, bias), rstd, weight)
        ctx.shape, ctx.p_shape = x.shape, x.shape[x.ndim - n_dims:]
        return out

    @staticmethod
    def backward(ctx, grad):
        xhat, rstd, weight = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad
        xhat = xhat.reshape(rstd.shape[0], -1)  # (M, K)
        g2 = grad.reshape(xhat.shape)  # (M, K)
        grad_w, grad_b = _affine_grads(g2, xhat, (0,), need_w, need_b, ctx.p_shape)
        grad_x = None
        if need_x:
            if weight is not None:
                g = g2 * weight.reshape(-1)
                grad_x = _normalize_backward(g, xhat, rstd, (1,), owned=True)
            else:
                grad_x = _normalize_backward(g2, xhat, rstd, (1,), owned=False)
            grad_x = grad_x.reshape(ctx.shape)
        return grad_x, grad_w, grad_b


class BatchNorm(Function):
    """Per-channel normalisation of (N, C, L) with batch statistics (training, which also
    updates the running statistics in place) or with the running statistics (evaluation)."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        n, c = x.shape[0], x.shape[1]
        x3 = x.reshape(n, c, -1)  # (N, C, L)
        w = weight.reshape(1, c, 1) if weight is not None else None
        b = bias.reshape(1, c, 1) if bias is not None else None
        ctx.shape, ctx.training = x.shape, training
        if training:
            xhat, mean, var, rstd = _normalize(x3, (0, 2), eps)
            if running_mean is not None:
                count = x3.shape[0] * x3.shape[2]
                # The running variance is the unbiased estimate, as in PyTorch.
                _momentum_update(running_mean, mean.reshape(c), momentum)
                _momentum_update(running_var, var.reshape(c) * (count / (count - 1)), momentum)
            out = _affine(xhat, w, b).reshape(x.shape)
            ctx.save_for_backward(_own(out, xhat, weight, bias), rstd, weight)
            return out
        dtype = x.dtype
        mean = running_mean.astype(dtype).reshape(1, c, 1)  # copies: the buffers may change
        rstd = 1 / xp.sqrt(running_var.astype(dtype).reshape(1, c, 1) + dtype.type(eps))
        scale = rstd * w if w is not None else rstd
        shift = -mean * scale
        if b is not None:
            shift += b
        out = x3 * scale
        out += shift
        ctx.save_for_backward(x, mean, rstd, scale)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        need_x, need_w, need_b = ctx.needs_input_grad
        c = ctx.shape[1]
        g3 = grad.reshape(ctx.shape[0], c, -1)  # (N, C, L)
        if ctx.training:
            xhat, rstd, weight = ctx.saved
            xhat = xhat.reshape(g3.shape)  # (N, C, L)
            grad_w, grad_b = _affine_grads(g3, xhat, (0, 2), need_w, need_b, (c,))
            grad_x = None
            if need_x:
                if weight is not None:
                    g = g3 * weight.reshape(1, c, 1)
                    grad_x = _normalize_backward(g, xhat, rstd, (0, 2), owned=True)
                else:
                    grad_x = _normalize_backward(g3, xhat, rstd, (0, 2), owned=False)
                grad_x = grad_x.reshape(ctx.shape)
            return grad_x, grad_w, grad_b
        # Evaluation is an affine map per channel: dx = grad * w * rstd.
        x, mean, rstd, scale = ctx.saved
        grad_x = (g3 * scale).reshape(ctx.shape) if need_x else None
        xhat = (x.reshape(g3.shape) - mean) * rstd if need_w else None
        grad_w, grad_b = _affine_grads(g3, xhat, (0, 2), need_w, need_b, (c,))
        return grad_x, grad_w, grad_b


def _momentum_update(running, value, momentum: float) -> None:
    """``running = (1 - momentum) running + momentum value``, in place, in running's dtype."""
    running *= running.dtype.type(1 - momentum)
    running += (value * momentum).astype(running.dtype, copy=False)


class GroupNorm(Function):
    """Normalise each of ``num_groups`` groups of channels per sample; per-channel affine."""

    @staticmethod
    def forward(ctx, x, weight, bias, num_groups, eps):
        n, c = x.shape[0], x.shape[1]
        xg = x.reshape(n, num_groups, -1)  # (N, G, C/G · L)
        xhat, _, _, rstd = _normalize(xg, (2,), eps)
        w = weight.reshape(1, c, 1) if weight is not None else None
        b = bias.reshape(1, c, 1) if bias is not None else None
        out = _affine(xhat.reshape(n, c, -1), w, b).reshape(x.shape)  # via (N, C, L)
        ctx.save_for_backward(_own(out, xhat, weight, bias), rstd, weight)
        ctx.shape = x.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        xhat, rstd, weight = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad
        n, c = ctx.shape[0], ctx.shape[1]
        xhat = xhat.reshape(rstd.shape[0], rstd.shape[1], -1)  # (N, G, C/G · L)
        g3 = grad.reshape(n, c, -1)  # (N, C, L)
        xhat3 = xhat.reshape(g3.shape)  # (N, C, L)
        grad_w, grad_b = _affine_grads(g3, xhat3, (0, 2), need_w, need_b, (c,))
        grad_x = None
        if need_x:
            if weight is not None:
                g = (g3 * weight.reshape(1, c, 1)).reshape(xhat.shape)  # (N, G, C/G · L)
                grad_x = _normalize_backward(g, xhat, rstd, (2,), owned=True)
            else:
                g = g3.reshape(xhat.shape)  # (N, G, C/G · L)
                grad_x = _normalize_backward(g, xhat, rstd, (2,), owned=False)
            grad_x = grad_x.reshape(ctx.shape)
        return grad_x, grad_w, grad_b


# --------------------------------------------------------------------------- functional forms
def _float_input(name: str, x) -> Tensor:
    x = ensure_tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{name} expects a floating-point input, got dtype {x.dtype}")
    return x


def _param(name: str, what: str, value, shape: tuple[int, ...], x: Tensor):
    """``value`` (Tensor, array or None) checked against ``shape`` and x's dtype."""
    if value is None:
        return None
    if not isinstance(value, Tensor):
        value = xp.asarray(value, dtype=x.dtype)
    elif value.dtype != x.dtype:
        raise TypeError(
            f"{name}: input dtype {x.dtype} does not match {what} dtype {value.dtype}; convert "
            f"one explicitly (scratchnn never upcasts silently)"
        )
    if tuple(value.shape) != shape:
        raise ValueError(f"{name}: {what} must have shape {shape}, got {tuple(value.shape)}")
    return value


def _check_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")
    return float(eps)


def _channels(name: str, x: Tensor) -> int:
    if x.ndim < 2:
        raise ValueError(f"{name} expects input of shape (N, C, ...), got shape {tuple(x.shape)}")
    return x.shape[1]


def layer_norm(x, normalized_shape: int | Sequence[int], weight=None, bias=None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing dims ``normalized_shape``, then ``x̂ * weight + bias``.

    Shape: x (..., *normalized_shape); weight and bias normalized_shape.
    """
    x = _float_input("layer_norm", x)
    shape = ((int(normalized_shape),) if isinstance(normalized_shape, numbers.Integral)
             else tuple(int(s) for s in normalized_shape))
    if not shape or tuple(x.shape[x.ndim - len(shape):]) != shape or x.ndim < len(shape):
        raise ValueError(f"layer_norm: expected input with trailing dims {shape}, "
                         f"got shape {tuple(x.shape)}")
    weight = _param("layer_norm", "weight", weight, shape, x)
    bias = _param("layer_norm", "bias", bias, shape, x)
    return LayerNorm.apply(x, weight, bias, n_dims=len(shape), eps=_check_eps(eps))


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over (N, C), (N, C, L) or (N, C, H, W), channels on axis 1.

    Training normalises with the batch mean and biased variance and, when running statistics
    are given, updates them in place: ``r = (1 - momentum) r + momentum s`` with the batch mean
    and the *unbiased* batch variance. Evaluation normalises with the running statistics and
    changes nothing. The running statistics are never differentiated.
    """
    x = _float_input("batch_norm", x)
    c = _channels("batch_norm", x)
    stats = []
    for what, value in (("running_mean", running_mean), ("running_var", running_var)):
        array = value._data if isinstance(value, Tensor) else value
        if array is not None and tuple(array.shape) != (c,):
            raise ValueError(f"batch_norm: {what} must have shape ({c},) for input of shape "
                             f"{tuple(x.shape)}, got {tuple(array.shape)}")
        stats.append(array)
    if (stats[0] is None) != (stats[1] is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    if training:
        if x.size // c <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {tuple(x.shape)}")
        if not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
            raise ValueError(f"batch_norm: momentum must be in [0, 1], got {momentum!r}")
    elif stats[0] is None:
        raise ValueError("batch_norm: evaluation (training=False) needs running_mean and "
                         "running_var")
    weight = _param("batch_norm", "weight", weight, (c,), x)
    bias = _param("batch_norm", "bias", bias, (c,), x)
    out = BatchNorm.apply(x, weight, bias, running_mean=stats[0], running_var=stats[1],
                          training=bool(training),
                          momentum=float(momentum) if training else 0.0,
                          eps=_check_eps(eps))
    if training:
        for value in (running_mean, running_var):
            if isinstance(value, Tensor):
                value._bump()  # changed in place: a node that saved it must notice
    return out


def group_norm(x, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise each sample over ``num_groups`` equal groups of channels (and all positions).

    Shape: x (N, C, ...) with C divisible by num_groups; weight and bias (C,).
    """
    x = _float_input("group_norm", x)
    c = _channels("group_norm", x)
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral) \
            or num_groups <= 0 or c % num_groups:
        raise ValueError(f"group_norm: num_groups must be a positive divisor of the {c} "
                         f"channels, got {num_groups!r}")
    weight = _param("group_norm", "weight", weight, (c,), x)
    bias = _param("group_norm", "bias", bias, (c,), x)
    return GroupNorm.apply(x, weight, bias, num_groups=int(num_groups), eps=_check_eps(eps))
