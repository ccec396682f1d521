"""Gradient clipping and flattening parameters into one vector."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from scratchnn.autograd.tensor import Tensor

__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "parameters_to_vector",
    "vector_to_parameters",
]


def _as_list(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[np.ndarray]:
    """The gradient arrays of the parameters that have one."""
    out = []
    for p in _as_list(parameters):
        if p.grad is not None:
            out.append(p.grad._data if isinstance(p.grad, Tensor) else p.grad)
    return out


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale gradients in place so that their total norm is at most ``max_norm``.

    The total norm is the ``norm_type`` norm of all gradients taken together (``inf``: the
    largest absolute value). Gradients are multiplied by ``min(1, max_norm / (total + 1e-6))``,
    as in PyTorch. Parameters whose grad is None are skipped.

    Returns:
        The total norm before clipping, as a Python float.
    """
    norm_type = float(norm_type)
    if not max_norm >= 0.0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    if not norm_type > 0.0:
        raise ValueError(f"norm_type must be > 0 or inf, got {norm_type}")
    grads = _grads(parameters)
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        # The norm of the per-tensor norms, as PyTorch computes it.
        norms = np.array([_norm(g, norm_type) for g in grads], dtype=np.float64)
        total = float(np.sum(norms**norm_type) ** (1.0 / norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is non-finite ({total}), "
            "so it cannot be clipped; pass error_if_nonfinite=False to clip anyway"
        )
    coef = max_norm / (total + 1e-6)
    # ``not coef >= 1`` also scales by a NaN coefficient, as PyTorch does for a NaN norm.
    if not coef >= 1.0:
        # An infinite norm gives coef 0 and inf * 0 = nan, as in PyTorch: no warning needed.
        with np.errstate(invalid="ignore"):
            for g in grads:
                g *= g.dtype.type(coef)
    return total


def _norm(g: np.ndarray, norm_type: float) -> float:
    """The ``norm_type`` norm of one gradient array, flattened."""
    flat = g.reshape(-1)
    if norm_type == 2.0:
        # dot is a BLAS call: faster than squaring into a temporary and summing.
        return math.sqrt(float(np.dot(flat, flat)))
    if norm_type == 1.0:
        return float(np.sum(np.abs(flat)))
    return float(np.sum(np.abs(flat) ** norm_type) ** (1.0 / norm_type))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place."""
    if not clip_value >= 0.0:
        raise ValueError(f"clip_value must be >= 0, got {clip_value}")
    for g in _grads(parameters):
        v = g.dtype.type(clip_value)
        np.clip(g, -v, v, out=g)


def parameters_to_vector(parameters: Tensor | Iterable[Tensor]) -> Tensor:
    """All parameters' data flattened and concatenated into one new 1-D tensor (no grad)."""
    params = _as_list(parameters)
    if not params:
        raise ValueError("parameters_to_vector needs at least one parameter")
    return Tensor(np.concatenate([p._data.reshape(-1) for p in params]), dtype=params[0].dtype)


def vector_to_parameters(vec: Tensor | np.ndarray, parameters: Iterable[Tensor]) -> None:
    """Copy slices of a 1-D vector into the parameters' data, in order (in place)."""
    array = vec._data if isinstance(vec, Tensor) else np.asarray(vec)
    params = _as_list(parameters)
    total = sum(p._data.size for p in params)
    if array.ndim != 1 or array.size != total:
        raise ValueError(f"expected a 1-D vector of {total} elements, got shape {array.shape}")
    offset = 0
    for p in params:
        n = p._data.size
        p._data[...] = array[offset:offset + n].reshape(p._data.shape)
        p._version += 1
        offset += n
