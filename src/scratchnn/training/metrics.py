"""Evaluation metrics: NumPy arrays in, plain Python floats out (JSON-ready).

Sums are done in float64 whatever the input dtype, so a float32 model's predictions do not
lose precision over a large evaluation set. Classification metrics follow scikit-learn with
``labels=range(num_classes)`` and ``zero_division=0``; regression metrics follow
scikit-learn's defaults (``multioutput="uniform_average"``, ``force_finite=True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "classification_metrics",
    "confusion_matrix",
    "precision_recall_f1",
    "regression_metrics",
]


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    # Demand identical shapes: broadcasting (N,) against (N, 1) would silently compare every
    # pair of samples and give a plausible-looking wrong number.
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got y_true {t.shape} "
                         f"and y_pred {p.shape}")
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty; metrics need at least one sample")
    return t, p


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return int(num_classes)


def _labels(arr: np.ndarray, name: str, num_classes: int) -> np.ndarray:
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape} "
                         "(take argmax over the class axis first)")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
        # Integral floats (1.0) are accepted because labels often round-trip through float
        # arrays; anything else is almost certainly a probability passed by mistake.
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise ValueError(f"{name} must hold integer class indices, got "
                             f"{arr[np.argmax(bad)].item()}")
    arr = arr.astype(np.int64)
    out = (arr < 0) | (arr >= num_classes)
    if out.any():
        raise ValueError(f"{name} has label {arr[np.argmax(out)]} outside the valid range "
                         f"[0, {num_classes - 1}] for num_classes={num_classes}")
    return arr


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of positions where ``y_pred`` equals ``y_true`` (arrays of the same shape)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p, dtype=np.float64))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Count matrix of shape ``(C, C)``, int64: rows are true classes, columns predicted.

    Raises:
        ValueError: shapes differ, inputs are not 1-D, or a label is outside ``[0, C)``.
    """
    c = _check_num_classes(num_classes)
    t, p = _pair(y_true, y_pred)
    t = _labels(t, "y_true", c)
    p = _labels(p, "y_pred", c)
    # Encode each (true, pred) pair as one flat index so a single bincount fills the matrix.
    counts = np.bincount(t * c + p, minlength=c * c)
    return counts.astype(np.int64).reshape(c, c)  # (C, C)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # 0 where the denominator is 0 (sklearn's zero_division=0), without a RuntimeWarning.
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _prf_from_cm(cm: np.ndarray) -> dict[str, float]:
    tp = np.diag(cm).astype(np.float64)
    precision = _safe_div(tp, cm.sum(axis=0))  # per predicted class
    recall = _safe_div(tp, cm.sum(axis=1))  # per true class
    f1 = _safe_div(2.0 * precision * recall, precision + recall)
    return {
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
    }


def precision_recall_f1(y_true: Any, y_pred: Any, num_classes: int) -> dict[str, float]:
    """Macro-averaged precision, recall and F1 over classes ``0 .. num_classes - 1``.

    A class that is never predicted has precision 0; one that never occurs has recall 0; F1 is
    0 when precision and recall are both 0. Every class in ``range(num_classes)`` counts in the
    average, even one absent from both ``y_true`` and ``y_pred`` (it contributes 0), exactly
    like scikit-learn's ``labels=range(C), average="macro", zero_division=0``.

    Returns:
        ``{"precision": p, "recall": r, "f1": f}`` as Python floats.
    """
    return _prf_from_cm(confusion_matrix(y_true, y_pred, num_classes))


def classification_metrics(y_true: Any, y_pred: Any, num_classes: int) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1 and the confusion matrix (as nested lists)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    out: dict[str, Any] = {"accuracy": float(np.trace(cm) / cm.sum())}
    out.update(_prf_from_cm(cm))
    out["confusion_matrix"] = cm.tolist()
    return out


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Mean squared error, mean absolute error and R² of predictions.

    Shape: ``(N,)`` or ``(N, K)``; for ``K`` outputs MSE/MAE average all entries and R² is the
    mean of per-output R² (scikit-learn's ``"uniform_average"``).

    R² of a constant target (zero variance, including N = 1) is undefined; like scikit-learn's
    ``force_finite=True`` it is 1.0 when the predictions are exact and 0.0 otherwise, so the
    result is always finite and JSON-safe.

    Returns:
        ``{"mse": ..., "mae": ..., "r2": ...}`` as Python floats.
    """
    t, p = _pair(y_true, y_pred)
    if t.ndim not in (1, 2):
        raise ValueError(f"y_true and y_pred must be 1-D or 2-D, got shape {t.shape}")
    t = t.astype(np.float64).reshape(t.shape[0], -1)  # (N, K)
    p = p.astype(np.float64).reshape(p.shape[0], -1)  # (N, K)
    err = p - t
    ss_res = np.sum(err * err, axis=0)  # (K,)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)  # (K,)
    r2 = np.where(ss_res == 0, 1.0, 0.0)  # constant-target convention, overwritten below
    np.subtract(1.0, ss_res / np.where(ss_tot == 0, 1.0, ss_tot), out=r2, where=ss_tot != 0)
    return {
        "mse": float(np.mean(err * err)),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(r2.mean()),
    }
