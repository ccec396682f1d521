"""``Embedding``: a learnable lookup table from integer ids to vectors."""

from __future__ import annotations

import numbers

import numpy as np

from scratchnn.autograd.grad_mode import no_grad
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import DEFAULT_FLOAT, xp
from scratchnn.nn import init
from scratchnn.nn.module import Module
from scratchnn.nn.parameter import Parameter
from scratchnn.ops.embedding import check_padding_idx, embedding


class Embedding(Module):
    """Rows of ``weight`` (num_embeddings, embedding_dim) looked up by integer index.

    Args:
        num_embeddings: size of the vocabulary (valid indices are 0..num_embeddings-1).
        embedding_dim: size of each vector.
        padding_idx: a row that starts at zero and never receives a gradient, so it stays zero
            through training (negative values count from the end).
        rng: generator for the initial weights, N(0, 1) (None → the default generator).
        dtype: parameter dtype (float32 unless given).

    Shape: indices (*) → (*, embedding_dim).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 rng: np.random.Generator | None = None, dtype=None) -> None:
        super().__init__()
        for name, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.padding_idx = check_padding_idx(padding_idx, self.num_embeddings)
        dtype = np.dtype(dtype) if dtype is not None else DEFAULT_FLOAT
        if dtype.kind != "f":
            raise ValueError(f"Embedding parameters must be floating point, got dtype {dtype}")
        shape = (self.num_embeddings, self.embedding_dim)
        self.weight = Parameter(xp.empty(shape, dtype=dtype), dtype=dtype)
        self.reset_parameters(rng)

    def reset_parameters(self, rng: np.random.Generator | None = None) -> None:
        """PyTorch's default: weight ~ N(0, 1), the padding row zero."""
        init.normal_(self.weight, 0.0, 1.0, rng=rng)
        self._zero_padding_row()

    def _zero_padding_row(self) -> None:
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None,
                        dtype=None) -> Embedding:
        """An Embedding whose weight is ``embeddings`` (shared, not copied, when its dtype is
        kept); ``freeze`` makes it non-trainable. Floats become float32 unless ``dtype`` is
        given, as with ``scratchnn.tensor``; the padding row is left as given, as in PyTorch.

        Shape: embeddings (num_embeddings, embedding_dim).
        """
        weight = Parameter(embeddings, requires_grad=not freeze, dtype=dtype)
        if weight.ndim != 2:
            raise ValueError(f"from_pretrained expects a 2-D (num_embeddings, embedding_dim) "
                             f"array, got shape {tuple(weight.shape)}")
        if weight.dtype.kind != "f":
            raise ValueError(f"Embedding parameters must be floating point, got dtype "
                             f"{weight.dtype}")
        layer = cls.__new__(cls)
        Module.__init__(layer)
        layer.num_embeddings, layer.embedding_dim = weight.shape
        layer.padding_idx = check_padding_idx(padding_idx, layer.num_embeddings)
        layer.weight = weight
        return layer

    def forward(self, indices) -> Tensor:
        return embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        return text
