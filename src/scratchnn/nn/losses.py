"""Loss functions (functional form), with the argument checks that keep them honest.

A loss never broadcasts a prediction against a target of another shape: a (N, 1) prediction
against a (N,) target would silently become an N×N comparison.
"""

from __future__ import annotations

import numpy as np

from scratchnn import ops
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops._operands import constant_like, ensure_tensor
from scratchnn.ops.loss import BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_float_input(name: str, x: Tensor) -> None:
    if x.dtype.kind != "f":
        raise TypeError(f"{name} expects a float prediction, got dtype {x.dtype}")


def _check_same_shape(name: str, input: Tensor, target) -> None:
    if tuple(input.shape) == tuple(target.shape):
        return
    hint = ""
    t_dtype = target.dtype
    if t_dtype.kind in "iu" and tuple(target.shape) == tuple(input.shape[:-1]):
        hint = (
            f"; the target looks like integer class labels for {input.shape[-1]} outputs: "
            f"one-hot them (scratchnn.nn.functional.one_hot) or use cross_entropy"
        )
    elif input.ndim == target.ndim + 1 and input.shape[-1] == 1:
        hint = "; reshape the target to (N, 1) or squeeze the prediction's last axis"
    raise ValueError(
        f"{name}: prediction shape {tuple(input.shape)} does not match target shape "
        f"{tuple(target.shape)} (no broadcasting in losses){hint}"
    )


def _target_array(target, like: Tensor):
    """The target in the prediction's dtype: a constant array unless it requires grad (then
    it stays a Tensor and receives a gradient, as in PyTorch)."""
    if isinstance(target, Tensor) and target.requires_grad:
        return target
    return constant_like(target, like)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Mean squared error; ``input`` and ``target`` must have the same shape."""
    _check_reduction(reduction)
    input, target = ensure_tensor(input), ensure_tensor(target)
    _check_float_input("mse_loss", input)
    _check_same_shape("mse_loss", input, target)
    diff = input - _target_array(target, input)
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Mean absolute error; ``input`` and ``target`` must have the same shape."""
    _check_reduction(reduction)
    input, target = ensure_tensor(input), ensure_tensor(target)
    _check_float_input("l1_loss", input)
    _check_same_shape("l1_loss", input, target)
    return _reduce(ops.abs(input - _target_array(target, input)), reduction)


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Quadratic for errors below ``delta``, linear above (``torch.nn.functional.huber_loss``)."""
    _check_reduction(reduction)
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    input, target = ensure_tensor(input), ensure_tensor(target)
    _check_float_input("huber_loss", input)
    _check_same_shape("huber_loss", input, target)
    err = ops.abs(input - _target_array(target, input))
    quad = ops.minimum(err, delta)
    loss = 0.5 * quad * quad + delta * (err - quad)
    return _reduce(loss, reduction)


def _check_class_target(name: str, input: Tensor, target: Tensor, ignore_index: int) -> int:
    """Check class-index targets against (N, C, d1, ...) logits; returns C."""
    if input.ndim == 0:
        raise ValueError(f"{name} expects logits with a class axis, got a 0-d tensor")
    n_classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    expected = (input.shape[0],) + tuple(input.shape[2:]) if input.ndim > 1 else ()
    if tuple(target.shape) != expected:
        raise ValueError(
            f"{name}: class-index target of shape {tuple(target.shape)} does not match logits "
            f"of shape {tuple(input.shape)}; expected target shape {expected}"
        )
    t = target.data
    bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
    if bad.any():
        value = int(t[bad].flat[0])
        raise ValueError(
            f"{name}: target contains class index {value}, but valid class indices are "
            f"0..{n_classes - 1} (or ignore_index={ignore_index})"
        )
    return n_classes


def _check_weight(name: str, weight, n_classes: int, like: Tensor):
    if weight is None:
        return None
    w = constant_like(weight, like)
    if w.shape != (n_classes,):
        raise ValueError(f"{name}: weight must have shape ({n_classes},), got {w.shape}")
    return w


def cross_entropy(
    input: Tensor,
    target,
    weight=None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Softmax cross-entropy of logits against class indices or class probabilities.

    Args:
        input: logits (N, C), (N, C, d1, ...) or (C,).
        target: class indices (int; shape (N,), (N, d1, ...) or ()) or probabilities (float,
            the same shape as ``input``).
        weight: per-class weights (C,).
        ignore_index: rows whose target equals it contribute nothing (index targets only).
        label_smoothing: ε in [0, 1]: mixes the target with the uniform distribution.
        reduction: "mean" (weighted mean over kept rows), "sum" or "none".

    Exact and finite for huge logits. When every row is ignored the mean is 0, not NaN.
    """
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    input, target = ensure_tensor(input), ensure_tensor(target)
    _check_float_input("cross_entropy", input)
    if target.dtype.kind in "iu":
        n_classes = _check_class_target("cross_entropy", input, target, ignore_index)
        t = target.data
    elif target.dtype.kind == "f":
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(
                f"cross_entropy: probability target of shape {tuple(target.shape)} does not "
                f"match logits of shape {tuple(input.shape)}"
            )
        n_classes = input.shape[1] if input.ndim > 1 else input.shape[0]
        t = constant_like(target, input)
    else:
        raise TypeError(f"cross_entropy: target must be int or float, got {target.dtype}")
    w = _check_weight("cross_entropy", weight, n_classes, input)
    return CrossEntropy.apply(input, t, w, ignore_index, float(label_smoothing), reduction)


def nll_loss(
    input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean"
) -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C) against class indices (N,)."""
    _check_reduction(reduction)
    input, target = ensure_tensor(input), ensure_tensor(target)
    _check_float_input("nll_loss", input)
    if target.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold class indices, got dtype {target.dtype}")
    n_classes = _check_class_target("nll_loss", input, target, ignore_index)
    w = _check_weight("nll_loss", weight, n_classes, input)
    if input.ndim > 2:  # classes last, then one row per position
        perm = (0, *range(2, input.ndim), 1)
        input = ops.permute(input, perm).reshape(-1, n_classes)
    elif input.ndim == 1:
        input = input.reshape(1, n_classes)
    t = target.data.reshape(-1)
    keep = t != ignore_index
    tc = xp.where(keep, t, 0)
    w_t = (w[tc] if w is not None else xp.ones(t.shape, input.dtype)) * keep
    w_t = w_t.astype(input.dtype, copy=False)
    picked = input[xp.arange(t.shape[0]), tc]  # (M,)
    loss = -(picked * w_t)
    if reduction == "none":
        return loss.reshape(target.shape)
    if reduction == "sum":
        return loss.sum()
    denom = w_t.sum()
    return loss.sum() / (denom if denom != 0 else input.dtype.type(1))


def _check_binary(name, input, target, weight):
    input, target = ensure_tensor(input), ensure_tensor(target)
    _check_float_input(name, input)
    _check_same_shape(name, input, target)
    y = constant_like(target, input)
    w = None
    if weight is not None:
        w = constant_like(weight, input)
        try:
            np.broadcast_shapes(w.shape, tuple(input.shape))
        except ValueError:
            raise ValueError(
                f"{name}: weight of shape {w.shape} does not broadcast to {tuple(input.shape)}"
            ) from None
    return input, y, w


def binary_cross_entropy(input: Tensor, target, weight=None, reduction: str = "mean") -> Tensor:
    """BCE on probabilities in [0, 1]; each log term is clamped at -100 (as PyTorch does), so
    a probability of exactly 0 or 1 gives a large finite loss rather than inf.
    """
    _check_reduction(reduction)
    input, y, w = _check_binary("binary_cross_entropy", input, target, weight)
    p = input.data
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(
            f"binary_cross_entropy expects probabilities in [0, 1], got values in "
            f"[{p.min():.4g}, {p.max():.4g}]; use binary_cross_entropy_with_logits for logits"
        )
    return BinaryCrossEntropy.apply(input, y, w, reduction)


def binary_cross_entropy_with_logits(
    input: Tensor, target, weight=None, reduction: str = "mean", pos_weight=None
) -> Tensor:
    """Sigmoid + BCE fused: stable for any logit. ``pos_weight`` scales the positive term."""
    _check_reduction(reduction)
    input, y, w = _check_binary("binary_cross_entropy_with_logits", input, target, weight)
    pw = None if pos_weight is None else constant_like(pos_weight, input)
    return BinaryCrossEntropyWithLogits.apply(input, y, w, pw, reduction)


def one_hot(labels, num_classes: int = -1, dtype=None) -> Tensor:
    """Class indices (...,) → one-hot (..., C). int64 like PyTorch unless ``dtype`` is given
    (``dtype=np.float32`` gives a ready MSE target)."""
    labels = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot expects integer class indices, got dtype {labels.dtype}")
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)].flat[0]
        raise ValueError(
            f"one_hot: class index {int(bad)} is outside the valid range 0..{num_classes - 1}"
        )
    out = xp.zeros(labels.shape + (num_classes,), dtype=dtype or np.int64)
    xp.put_along_axis(out, labels[..., None].astype(np.int64), 1, axis=-1)
    return Tensor(out, dtype=out.dtype)
