"""Embedding lookup: gather rows of a weight matrix; backward scatter-adds rows of the gradient.

The scatter-add is the hot spot of training an embedding. ``np.add.at`` handles repeated
indices but is slow (about 10 ms for 32×64 indices into a 10k×256 table); sorting the indices
once and adding rows in bulk is 3-4× faster (see ``_scatter_add_rows``).
"""

from __future__ import annotations

import numbers

from scratchnn.autograd.function import Function
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops._operands import ensure_tensor

#: Groups of one index with more occurrences than this are summed by ``add.reduceat``; the
#: rest in rounds of plain fancy-index additions (one round per occurrence rank).
_ROUNDS = 16


def _scatter_add_rows(index, rows, num_rows: int):
    """``out[index[i]] += rows[i]`` for every i, repeated indices summed, into zeros.

    Shape: index (M,), rows (M, D) → (num_rows, D).
    """
    out = xp.zeros((num_rows, rows.shape[1]), dtype=rows.dtype)
    if index.size == 0:
        return out
    order = xp.argsort(index, kind="stable")
    sorted_index = index[order]
    first = xp.empty(index.size, dtype=bool)  # True where a new index starts
    first[0] = True
    xp.not_equal(sorted_index[1:], sorted_index[:-1], out=first[1:])
    starts = xp.flatnonzero(first)
    counts = xp.diff(xp.append(starts, index.size))
    # The k-th occurrences of distinct indices are distinct rows, so one fancy ``+=`` per rank k
    # is exact; a few very frequent indices (padding, common tokens) would need many rounds.
    large = xp.repeat(counts > _ROUNDS, counts)
    rank = xp.arange(index.size) - xp.repeat(starts, counts)
    rank[large] = -1
    top = rank == 0
    out[sorted_index[top]] = rows[order[top]]
    for k in range(1, min(int(counts.max()), _ROUNDS)):
        sel = rank == k
        if not sel.any():
            break
        out[sorted_index[sel]] += rows[order[sel]]
    if large.any():
        group_starts = xp.flatnonzero(first[large])
        large_index = sorted_index[large]
        out[large_index[group_starts]] = xp.add.reduceat(rows[order[large]], group_starts,
                                                         axis=0)
    return out


class Embedding(Function):
    """``weight[indices]``; the weight's gradient leaves the ``padding_idx`` row at zero."""

    @staticmethod
    def forward(ctx, indices, weight, padding_idx):
        ctx.save_for_backward(indices)
        ctx.num_embeddings, ctx.padding_idx = weight.shape[0], padding_idx
        return xp.take(weight, indices, axis=0)  # (*indices.shape, D)

    @staticmethod
    def backward(ctx, grad):
        if not ctx.needs_input_grad[1]:
            return None, None
        (indices,) = ctx.saved
        rows = grad.reshape(-1, grad.shape[-1])  # (M, D)
        grad_w = _scatter_add_rows(indices.reshape(-1), rows, ctx.num_embeddings)
        if ctx.padding_idx is not None:
            grad_w[ctx.padding_idx] = 0
        return None, grad_w


def check_padding_idx(padding_idx, num_embeddings: int) -> int | None:
    """``padding_idx`` in [0, num_embeddings) (negative ones count from the end), or None."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral) \
            or not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"padding_idx must be an int in [-{num_embeddings}, {num_embeddings}) "
                         f"for num_embeddings={num_embeddings}, got {padding_idx!r}")
    return int(padding_idx) % num_embeddings


def embedding(input, weight, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` at the integer ``input`` indices; the ``padding_idx`` row gets no
    gradient.

    Shape: input (*) of ints in [0, num_embeddings); weight (num_embeddings, D) → (*, D).
    """
    indices = ensure_tensor(input)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding expects integer indices, got dtype {indices.dtype}")
    weight = ensure_tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"embedding expects a weight of shape (num_embeddings, embedding_dim), "
                         f"got shape {tuple(weight.shape)}")
    n = weight.shape[0]
    data = indices.data
    if data.size and (data.min() < 0 or data.max() >= n):
        bad = data[(data < 0) | (data >= n)].reshape(-1)[0]
        raise IndexError(f"embedding index {int(bad)} is out of range for num_embeddings={n} "
                         f"(valid indices are 0..{n - 1})")
    return Embedding.apply(indices, weight, padding_idx=check_padding_idx(padding_idx, n))
