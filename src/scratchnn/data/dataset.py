"""Map-style data sets: indexable collections of samples, with a batched fast path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _to_array(x: Any) -> np.ndarray:
    """A NumPy view of an array, a scratchnn Tensor (via ``.data``) or a number."""
    if isinstance(x, np.ndarray):
        return x
    data = getattr(x, "data", None)
    if isinstance(data, np.ndarray):  # a scratchnn Tensor: use its array, never its graph
        return data
    return np.asarray(x)


def collate(samples: Sequence[Any]) -> tuple[np.ndarray, ...]:
    """Stack a list of samples (each a tuple of fields, or a single field) into batch arrays."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    first = samples[0]
    if not isinstance(first, (tuple, list)):
        return (np.stack([_to_array(s) for s in samples]),)
    width = len(first)
    for s in samples:
        if not isinstance(s, (tuple, list)) or len(s) != width:
            raise ValueError(f"every sample must have {width} fields like the first, got {s!r}")
    return tuple(np.stack([_to_array(s[k]) for s in samples]) for k in range(width))


class Dataset:
    """Abstract map-style data set: subclasses define ``__len__`` and ``__getitem__``."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ (abstract)")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__ (abstract)")

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """Return the samples at ``indices`` stacked into arrays (override to go faster)."""
        return collate([self[int(i)] for i in indices])


class TensorDataset(Dataset):
    """A data set of arrays (or Tensors) sharing their first dimension; sample i is row i."""

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(_to_array(a) for a in arrays)
        for k, a in enumerate(self.arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset array {k} is 0-d; each needs a first dimension")
        sizes = [a.shape[0] for a in self.arrays]
        if len(set(sizes)) != 1:
            raise ValueError(
                f"TensorDataset arrays must have the same first dimension, got sizes {sizes}"
            )

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        return tuple(a[index] for a in self.arrays)

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """One fancy index per array: no per-sample Python loop."""
        return tuple(a[indices] for a in self.arrays)


class Subset(Dataset):
    """The rows ``indices`` of another data set (e.g. one split of it)."""

    def __init__(self, dataset: Dataset, indices: Any) -> None:
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ValueError(
                f"Subset indices must be a 1-D integer array, got {idx.dtype} {idx.shape}"
            )
        n = len(dataset)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"Subset indices must be in [0, {n}), got range "
                             f"[{idx.min()}, {idx.max()}]")
        self.dataset = dataset
        self.indices = idx.astype(np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """Map to the parent's rows and use its (possibly fast) batch path."""
        parent = self.indices[indices]
        if isinstance(self.dataset, Dataset):
            return self.dataset.get_batch(parent)
        return collate([self.dataset[int(i)] for i in parent])
