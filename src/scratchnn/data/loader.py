"""DataLoader: iterate over a data set in (optionally shuffled) mini-batches of Tensors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from scratchnn.data.dataset import Dataset, collate


class DataLoader:
    """Yields tuples of scratchnn Tensors, one batch of ``batch_size`` samples at a time.

    Shuffling draws exactly one permutation per epoch from ``rng`` and nothing else, so
    saving ``rng.bit_generator.state`` between epochs is enough to resume exactly.

    Args:
        dataset: a ``Dataset`` (or anything with ``__len__`` and ``__getitem__``).
        batch_size: samples per batch (the last one may be smaller unless ``drop_last``).
        shuffle: visit the samples in a new random order every epoch.
        drop_last: drop the final incomplete batch.
        rng: generator for the shuffle; None means ``scratchnn.random.default_generator()``,
            looked up at the start of each epoch.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        rng: np.random.Generator | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator or None, got {type(rng)}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self._rng = rng

    @property
    def rng(self) -> np.random.Generator:
        """The generator the next epoch's shuffle will draw from."""
        if self._rng is not None:
            return self._rng
        from scratchnn.random import default_generator  # lazy: keeps imports one-way

        return default_generator()

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.drop_last:
            return n // self.batch_size
        return (n + self.batch_size - 1) // self.batch_size

    def _batch_arrays(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        if isinstance(self.dataset, Dataset):
            return self.dataset.get_batch(indices)
        return collate([self.dataset[int(i)] for i in indices])

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        from scratchnn import tensor  # lazy: the Tensor layer is imported only when iterating

        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield tuple(tensor(a) for a in self._batch_arrays(indices))

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last})"
        )
