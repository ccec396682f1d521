"""Key/value cache for autoregressive decoding, in buffers allocated once.

A decoder that caches appends each call's keys and values after the ones already held, so a
new token costs one position instead of the whole prefix. Concatenating onto the cache at
every token would copy all earlier positions each time (per layer, keys and values); here the
buffers have room for ``capacity`` positions from the start and each call writes only its own.

The cache holds values, not graph: positions from earlier calls enter later calls as
constants. Within one call the new keys and values stay in the graph, so a forward that fills
the cache still back-propagates like one that does not.
"""

from __future__ import annotations

from scratchnn.autograd import grad_mode
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops.shape import concat

__all__ = ["KVCache"]


def _const(array) -> Tensor:
    """A tensor around a view of the buffers, as it is (no dtype conversion, no graph)."""
    return Tensor._wrap(array, False)


class KVCache:
    """Keys and values of the positions seen so far, for every layer.

    Args:
        n_layer: number of attention layers.
        batch, n_head, head_dim: the layout of one layer's keys, (batch, n_head, P, head_dim).
        capacity: the most positions it can hold (a model's context length).
        dtype: the keys' dtype.

    ``cache[i]`` is layer ``i``'s ``(k, v)`` for the ``len`` positions held, each
    ``(batch, n_head, length, head_dim)`` (views of the buffers, not copies). A model writes
    into it with :meth:`update` (every layer) and then :meth:`advance` (once per call).
    """

    def __init__(self, n_layer: int, batch: int, n_head: int, head_dim: int, capacity: int,
                 dtype) -> None:
        shape = (n_layer, batch, n_head, capacity, head_dim)
        self._keys = xp.empty(shape, dtype=dtype)
        self._values = xp.empty(shape, dtype=dtype)
        self.length = 0

    @property
    def n_layer(self) -> int:
        return self._keys.shape[0]

    @property
    def layout(self) -> tuple[int, int, int]:
        """(batch, n_head, head_dim) of every layer's keys and values."""
        _, batch, n_head, _, head_dim = self._keys.shape
        return batch, n_head, head_dim

    @property
    def capacity(self) -> int:
        return self._keys.shape[3]

    @property
    def dtype(self):
        return self._keys.dtype

    def __len__(self) -> int:
        return self.n_layer

    def __getitem__(self, layer: int) -> tuple[Tensor, Tensor]:
        n = self.length
        return _const(self._keys[layer, :, :, :n]), _const(self._values[layer, :, :, :n])

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store this call's keys and values (B, n_head, T, head_dim) after the cached ones.

        Returns the keys and values of all ``length + T`` positions, for attention. Without
        autograd they are views of the buffers; when ``k`` or ``v`` needs a gradient, the
        cached part is joined to them as a constant.
        """
        start, stop = self.length, self.length + k.shape[2]
        if stop > self.capacity:
            raise ValueError(f"KV cache holds at most {self.capacity} positions; "
                             f"{start} cached + {k.shape[2]} new = {stop}")
        keys, values = self._keys[layer], self._values[layer]  # (B, nh, capacity, hd)
        keys[:, :, start:stop] = k.data
        values[:, :, start:stop] = v.data
        if grad_mode.is_grad_enabled() and (k.requires_grad or v.requires_grad):
            if start == 0:
                return k, v
            return (concat([_const(keys[:, :, :start]), k], axis=2),
                    concat([_const(values[:, :, :start]), v], axis=2))
        return _const(keys[:, :, :stop]), _const(values[:, :, :stop])

    def advance(self, n: int) -> None:
        """Count the ``n`` positions every layer has just stored with :meth:`update`."""
        self.length += n

    def __repr__(self) -> str:
        batch, n_head, head_dim = self.layout
        return (f"KVCache(n_layer={self.n_layer}, length={self.length}, capacity="
                f"{self.capacity}, batch={batch}, n_head={n_head}, head_dim={head_dim})")
