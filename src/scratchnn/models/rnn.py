"""A recurrent sequence model: token embedding or feature projection, RNN/LSTM/GRU, pooling,
and a linear head."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scratchnn import nn
from scratchnn.autograd.tensor import Tensor
from scratchnn.ops.shape import concat

__all__ = ["CELLS", "POOLINGS", "RNNConfig", "RNNModel"]

CELLS: tuple[str, ...] = ("lstm", "gru", "rnn")
#: 'last': the last layer's state at each sequence's last real step (both directions'
#: final states when bidirectional); 'mean': the mean of the outputs over the real steps.
POOLINGS: tuple[str, ...] = ("last", "mean")
#: Embedding width used when a token model is configured without one.
DEFAULT_EMBEDDING_DIM = 64


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class RNNConfig:
    """Shape of an :class:`RNNModel`. Give exactly one of ``input_size`` and ``vocab_size``.

    Args:
        num_outputs: width of the output (classes, or 1 for regression).
        cell: 'lstm', 'gru' or 'rnn' (Elman, tanh).
        input_size: features per step of a numeric sequence.
        vocab_size: size of the token vocabulary (id ``padding_idx`` is padding).
        embedding_dim: token embedding width; for numeric input, the width of a linear
            projection of each step's features (None: the features go straight in).
        hidden_size: the recurrent state width H.
        num_layers: stacked recurrent layers.
        bidirectional: also run each layer backwards (the head sees 2H features).
        dropout: dropout probability on the embedded input, between recurrent layers and
            before the head, in [0, 1).
        pooling: one of :data:`POOLINGS`.
        padding_idx: the padding token id (token input only).
    """

    num_outputs: int
    cell: str = "lstm"
    input_size: int | None = None
    vocab_size: int | None = None
    embedding_dim: int | None = None
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    pooling: str = "last"
    padding_idx: int = 0

    def __post_init__(self) -> None:
        if (self.input_size is None) == (self.vocab_size is None):
            raise ValueError(f"give exactly one of input_size (numeric steps) and vocab_size "
                             f"(tokens), got input_size={self.input_size!r}, "
                             f"vocab_size={self.vocab_size!r}")
        if self.vocab_size is not None and self.embedding_dim is None:
            object.__setattr__(self, "embedding_dim", DEFAULT_EMBEDDING_DIM)
        for name in ("num_outputs", "input_size", "vocab_size", "embedding_dim",
                     "hidden_size", "num_layers"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, "
                             f"got {self.pooling!r}")
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional must be True or False, got {self.bidirectional!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.vocab_size is not None and (not _is_int(self.padding_idx)
                                            or not 0 <= self.padding_idx < self.vocab_size):
            raise ValueError(f"padding_idx must be in [0, {self.vocab_size}), "
                             f"got {self.padding_idx!r}")

    @property
    def tokens(self) -> bool:
        """Whether the input is token ids (else numeric features per step)."""
        return self.vocab_size is not None

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return dataclasses.asdict(self)

    asdict = to_dict

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RNNConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown RNNConfig field(s) {unknown}; valid fields are: "
                             f"{', '.join(sorted(names))}")
        return cls(**dict(d))


def _lengths_from_padding(ids: np.ndarray, pad: int) -> np.ndarray:
    """Per row, 1 + the index of the last non-padding id (at least 1: an all-padding row runs
    one step on the zero padding vector)."""
    real = ids != pad  # (N, T)
    last = ids.shape[1] - np.argmax(real[:, ::-1], axis=1)
    return np.where(real.any(axis=1), last, 1).astype(np.int64)


class RNNModel(nn.Module):
    """``Embedding | Linear projection -> Dropout -> RNN/LSTM/GRU -> pooling -> Dropout ->
    Linear``, batch first. Padding never leaks: the recurrent layers get each sequence's length,
    so 'last' is the state at the last real step and 'mean' averages the real steps only.

    Args:
        config: the architecture.
        rng: generator for the initial weights and the dropout masks (None: the default one).

    Shape:
        token input: ids (N, T), right-padded with ``padding_idx`` (integers, or floats holding
        integers, as the Trainer feeds them); lengths are read off the padding unless given.
        Numeric input: (N, T, input_size), or flat rows (N, T·input_size).
        Output (N, num_outputs).
    """

    def __init__(self, config: RNNConfig, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(config, RNNConfig):
            raise TypeError(f"config must be an RNNConfig, got {type(config).__name__}")
        if rng is None:
            from scratchnn.random import default_generator

            rng = default_generator()
        self.config = c = config
        if c.tokens:
            self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim,
                                          padding_idx=c.padding_idx, rng=rng)
            width = c.embedding_dim
        elif c.embedding_dim is not None:
            self.embedding = nn.Linear(c.input_size, c.embedding_dim, rng=rng)
            width = c.embedding_dim
        else:
            self.embedding = nn.Identity()
            width = c.input_size
        self.dropout = nn.Dropout(c.dropout, rng=rng)
        cells = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
        self.rnn = cells[c.cell](width, c.hidden_size, num_layers=c.num_layers,
                                 batch_first=True, dropout=c.dropout if c.num_layers > 1 else 0.0,
                                 bidirectional=c.bidirectional, rng=rng)
        directions = 2 if c.bidirectional else 1
        self.head = nn.Linear(directions * c.hidden_size, c.num_outputs, rng=rng)

    def _token_input(self, x: Any, lengths: Any) -> tuple[Tensor, np.ndarray]:
        """Embedded (N, T', E) and lengths (N,), cut to the longest real sequence T'."""
        c = self.config
        raw = np.asarray(x.data if isinstance(x, Tensor) else x)
        if raw.ndim != 2:
            raise ValueError(f"RNNModel with vocab_size expects token ids of shape (N, T), "
                             f"got {raw.shape}")
        ids = raw.astype(np.int64)
        if raw.dtype.kind == "f" and not np.array_equal(ids, raw):
            raise ValueError("RNNModel token ids must be whole numbers")
        if ids.size and (ids.min() < 0 or ids.max() >= c.vocab_size):
            bad = ids.min() if ids.min() < 0 else ids.max()
            raise ValueError(f"token id {bad} out of range [0, {c.vocab_size})")
        if lengths is None:
            lengths = _lengths_from_padding(ids, c.padding_idx)
        lengths = self._check_lengths(lengths, ids.shape)
        ids = ids[:, :int(lengths.max())] if ids.shape[1] else ids  # (N, T')
        return self.embedding(ids), lengths

    def _feature_input(self, x: Any, lengths: Any) -> tuple[Tensor, np.ndarray | None]:
        c = self.config
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float32))
        if x.ndim == 2 and x.shape[1] % c.input_size == 0 and x.shape[1]:
            x = x.reshape(x.shape[0], x.shape[1] // c.input_size, c.input_size)  # (N, T, F)
        if x.ndim != 3 or x.shape[2] != c.input_size or x.shape[1] == 0:
            raise ValueError(f"RNNModel expects input of shape (N, T, {c.input_size}) or flat "
                             f"(N, T·{c.input_size}), got {tuple(x.shape)}")
        if lengths is not None:
            lengths = self._check_lengths(lengths, x.shape[:2])
        return self.embedding(x), lengths

    @staticmethod
    def _check_lengths(lengths: Any, shape: tuple[int, ...]) -> np.ndarray:
        lengths = np.asarray(lengths.data if isinstance(lengths, Tensor) else lengths)
        n, t = shape[0], shape[1]
        if lengths.shape != (n,) or lengths.dtype.kind not in "iu":
            raise ValueError(f"lengths must be {n} integers, got {lengths.dtype} array of "
                             f"shape {lengths.shape}")
        if n and (lengths.min() < 1 or lengths.max() > t):
            raise ValueError(f"lengths must be in [1, {t}], got values in "
                             f"[{lengths.min()}, {lengths.max()}]")
        return lengths.astype(np.int64)

    def forward(self, x: Any, lengths: Any = None) -> Tensor:
        """Token ids (N, T) or features (N, T, F) / (N, T·F) -> (N, num_outputs)."""
        c = self.config
        if c.tokens:
            h, lengths = self._token_input(x, lengths)
        else:
            h, lengths = self._feature_input(x, lengths)
        h = self.dropout(h)  # (N, T, E)
        steps = h.shape[1]
        full = lengths is None or bool((lengths == steps).all())
        out, state = self.rnn(h, lengths=None if full else lengths)  # out (N, T, D·H)
        h_n = state[0] if c.cell == "lstm" else state  # (L·D, N, H)
        if c.pooling == "last":
            pooled = concat([h_n[-2], h_n[-1]], axis=1) if c.bidirectional else h_n[-1]
        else:
            # Outputs past a sequence's end are zero, so the sum covers the real steps only.
            n_steps = np.full(out.shape[0], steps) if full else lengths
            pooled = out.sum(axis=1) / Tensor(n_steps[:, None].astype(out.dtype))  # (N, D·H)
        return self.head(self.dropout(pooled))

    def extra_repr(self) -> str:
        c = self.config
        source = f"vocab_size={c.vocab_size}" if c.tokens else f"input_size={c.input_size}"
        return (f"cell={c.cell!r}, {source}, hidden_size={c.hidden_size}, "
                f"num_layers={c.num_layers}, bidirectional={c.bidirectional}, "
                f"pooling={c.pooling!r}")
