"""Fused, numerically stable loss kernels with hand-written backward.

Argument checking lives in ``scratchnn.nn.functional``; these kernels assume valid input.
"""

from __future__ import annotations

import numpy as np

from scratchnn.autograd.function import Function
from scratchnn.backend import xp


def _rows(logits):
    """Logits (N, C, d1, ...) or (N, C) or (C,) as a (M, C) matrix with classes last."""
    if logits.ndim > 2:
        return xp.moveaxis(logits, 1, -1).reshape(-1, logits.shape[1])
    return logits.reshape(-1, logits.shape[-1])


def _unrows(grad_rows, shape):
    if len(shape) > 2:
        moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
        return xp.moveaxis(grad_rows.reshape(moved), -1, 1)
    return grad_rows.reshape(shape)


def _log_softmax_rows(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))


class CrossEntropy(Function):
    """Softmax cross-entropy over class axis 1 with PyTorch's weighting and smoothing rules.

    Per row i with class weights w and smoothing ε over C classes the loss is
    ``-Σ_c a_ic log p_ic`` with ``a_ic = (1-ε) w_{y_i} [c = y_i] + (ε/C) w_c`` (zero for ignored
    rows) for class-index targets, or ``a_ic = w_c ((1-ε) t_ic + ε/C)`` for probability targets.
    "mean" divides by ``Σ_i w_{y_i}`` over kept rows (index targets) or by the row count
    (probability targets), as ``torch.nn.functional.cross_entropy`` does. The gradient with
    respect to the logits is ``p_ic Σ_c' a_ic' - a_ic``.
    """

    @staticmethod
    def forward(ctx, logits, target, weight, ignore_index, smoothing, reduction):
        shape = logits.shape
        n_classes = shape[1] if logits.ndim > 1 else shape[0]
        logp = _log_softmax_rows(_rows(logits))  # (M, C)
        m = logp.shape[0]
        dtype = logits.dtype
        if target.dtype.kind in "iu":
            t = target.reshape(-1)
            keep = t != ignore_index
            tc = xp.where(keep, t, 0)
            w_t = (weight[tc] if weight is not None else xp.ones(m, dtype)) * keep
            w_t = w_t.astype(dtype, copy=False)
            denom = w_t.sum()
            rows = xp.arange(m)
            loss_rows = -(1 - smoothing) * w_t * logp[rows, tc]
            a = None
            if smoothing:
                w_all = weight if weight is not None else xp.ones(n_classes, dtype)
                smooth_rows = -(logp * w_all).sum(axis=1) * keep
                loss_rows = loss_rows + dtype.type(smoothing / n_classes) * smooth_rows
                a = xp.outer(keep.astype(dtype), w_all * dtype.type(smoothing / n_classes))
                a[rows, tc] += (1 - smoothing) * w_t
            ctx.sparse = (rows, tc, w_t)
        else:
            probs = _rows(target)
            if smoothing:
                probs = probs * dtype.type(1 - smoothing) + dtype.type(smoothing / n_classes)
            a = probs * weight if weight is not None else probs
            loss_rows = -(a * logp).sum(axis=1)
            denom = dtype.type(m)
            ctx.sparse = None
        ctx.save_for_backward(logp)
        ctx.a, ctx.shape, ctx.reduction = a, shape, reduction
        # All rows ignored: the mean is defined as 0 (PyTorch gives NaN) so training goes on.
        ctx.denom = denom if denom != 0 else dtype.type(1)
        if reduction == "mean":
            return xp.asarray(loss_rows.sum() / ctx.denom, dtype=dtype)
        if reduction == "sum":
            return xp.asarray(loss_rows.sum(), dtype=dtype)
        out_shape = (shape[0],) + tuple(shape[2:]) if len(shape) > 1 else ()
        return loss_rows.astype(dtype, copy=False).reshape(out_shape)

    @staticmethod
    def backward(ctx, grad):
        (logp,) = ctx.saved
        if ctx.reduction == "mean":
            g = xp.full((logp.shape[0], 1), grad / ctx.denom, dtype=logp.dtype)
        elif ctx.reduction == "sum":
            g = xp.full((logp.shape[0], 1), grad, dtype=logp.dtype)
        else:
            g = grad.reshape(-1, 1)
        p = xp.exp(logp)
        if ctx.a is None:
            rows, tc, w_t = ctx.sparse
            grad_rows = p * w_t[:, None]
            grad_rows[rows, tc] -= w_t
        else:
            grad_rows = p * ctx.a.sum(axis=1, keepdims=True) - ctx.a
        grad_rows *= g
        return _unrows(grad_rows, ctx.shape), None, None, None, None, None


def _reduce(loss, reduction):
    if reduction == "mean":
        return xp.asarray(loss.mean(), dtype=loss.dtype)
    if reduction == "sum":
        return xp.asarray(loss.sum(), dtype=loss.dtype)
    return loss


def _reduce_grad(grad, shape, reduction, dtype):
    if reduction == "mean":
        return xp.full(shape, grad / np.prod(shape, dtype=np.float64), dtype=dtype)
    if reduction == "sum":
        return xp.full(shape, grad, dtype=dtype)
    return grad


class BinaryCrossEntropy(Function):
    """BCE on probabilities; each log is clamped at -100, as in PyTorch, so p = 0 or 1 stays
    finite. The gradient uses ``max(p (1 - p), 1e-12)`` in the denominator for the same reason.
    """

    @staticmethod
    def forward(ctx, p, y, weight, reduction):
        with np.errstate(divide="ignore"):
            log_p = xp.maximum(xp.log(p), -100)
            log_q = xp.maximum(xp.log1p(-p), -100)
        loss = -(y * log_p + (1 - y) * log_q)
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(p, y)
        ctx.weight, ctx.reduction = weight, reduction
        return _reduce(loss.astype(p.dtype, copy=False), reduction)

    @staticmethod
    def backward(ctx, grad):
        p, y = ctx.saved
        g = _reduce_grad(grad, p.shape, ctx.reduction, p.dtype)
        d = (p - y) / xp.maximum(p * (1 - p), p.dtype.type(1e-12))
        if ctx.weight is not None:
            d = d * ctx.weight
        return g * d, None, None, None


class BinaryCrossEntropyWithLogits(Function):
    """BCE on logits z: ``(1 - y) z + (1 + (w_pos - 1) y) softplus(-z)``, stable for any z."""

    @staticmethod
    def forward(ctx, z, y, weight, pos_weight, reduction):
        softplus_neg = xp.maximum(-z, 0) + xp.log1p(xp.exp(-xp.abs(z)))  # log(1 + e^-z)
        coef = 1 + (pos_weight - 1) * y if pos_weight is not None else None
        loss = (1 - y) * z + (coef * softplus_neg if coef is not None else softplus_neg)
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(z, y)
        ctx.weight, ctx.coef, ctx.reduction = weight, coef, reduction
        return _reduce(loss.astype(z.dtype, copy=False), reduction)

    @staticmethod
    def backward(ctx, grad):
        z, y = ctx.saved
        g = _reduce_grad(grad, z.shape, ctx.reduction, z.dtype)
        e = xp.exp(-xp.abs(z))
        sig_neg = xp.where(z >= 0, e / (1 + e), 1 / (1 + e))  # sigmoid(-z), no overflow
        d = (1 - y) - (ctx.coef * sig_neg if ctx.coef is not None else sig_neg)
        if ctx.weight is not None:
            d = d * ctx.weight
        return g * d, None, None, None, None
