"""Seeded train/validation/test splits of row indices, optionally stratified by label."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _check_fraction(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def _round_half_up(x: float) -> int:
    # Python's round() rounds half to even: 2.5 -> 2, which would surprise here.
    return math.floor(x + 0.5)


def _sizes(m: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """How many of ``m`` rows go to (val, test).

    Every group with at least 3 rows puts at least one row in each non-empty split, and
    train always keeps at least one row.
    """
    n_val = _round_half_up(val_fraction * m)
    n_test = _round_half_up(test_fraction * m)
    if m >= 3:
        n_val = max(n_val, 1) if val_fraction > 0 else 0
        n_test = max(n_test, 1) if test_fraction > 0 else 0
    # Give rows back to train (from the bigger of val/test first) until train has one.
    while m > 0 and n_val + n_test > m - 1:
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def min_group_rows(val_fraction: float, test_fraction: float) -> int:
    """The fewest rows a stratification group (class) needs to have at least one row in train
    and in each split with a non-zero fraction (smaller groups go to train only)."""
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    m = 1
    while True:
        n_val, n_test = _sizes(m, val_fraction, test_fraction)
        if (n_val > 0 or val_fraction == 0) and (n_test > 0 or test_fraction == 0):
            return m
        m += 1


def _group_rows(labels: Any, n: int) -> list[np.ndarray]:
    """Row indices of each distinct label, in order of first appearance."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"stratify labels must have shape ({n},), got {arr.shape}")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError("stratify labels contain NaN; drop the rows with a missing label first")
    groups: dict[Any, list[int]] = {}
    for i, v in enumerate(arr.tolist()):
        if v is None:
            raise ValueError(
                f"stratify labels contain a missing value (row {i}); drop those rows first"
            )
        groups.setdefault(v, []).append(i)
    return [np.asarray(rows, dtype=np.int64) for rows in groups.values()]


def train_val_test_split(
    n: int,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    stratify: Any = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split row indices ``0..n-1`` into disjoint, sorted (train, val, test) int64 arrays.

    Args:
        n: number of rows.
        val_fraction, test_fraction: shares of the rows for validation and test; each in
            [0, 1) and together below 1.
        stratify: optional labels (N,); each class is then split in the given proportions.
        rng: generator for the shuffle (default: ``scratchnn.random.default_generator()``).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}"
        )
    if rng is None:
        from scratchnn.random import default_generator

        rng = default_generator()
    groups = [np.arange(n, dtype=np.int64)] if stratify is None else _group_rows(stratify, n)
    train, val, test = [], [], []
    for rows in groups:
        rows = rows[rng.permutation(len(rows))]
        n_val, n_test = _sizes(len(rows), val_fraction, test_fraction)
        test.append(rows[:n_test])
        val.append(rows[n_test:n_test + n_val])
        train.append(rows[n_test + n_val:])

    def join(parts: list[np.ndarray]) -> np.ndarray:
        return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)

    return join(train), join(val), join(test)
