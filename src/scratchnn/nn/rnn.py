"""Recurrent layers ``RNN``, ``LSTM`` and ``GRU`` with PyTorch's arguments, names and layouts.

A PyTorch ``state_dict`` loads directly and gives the same outputs. Each layer and direction is
one fused op (``ops.recurrent``); layers are stacked here, with the two directions'
outputs concatenated and dropout between layers while training.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import DEFAULT_FLOAT, xp
from scratchnn.nn import init
from scratchnn.nn.dropout import dropout as _dropout
from scratchnn.nn.module import Module
from scratchnn.nn.parameter import Parameter
from scratchnn.ops._operands import ensure_tensor
from scratchnn.ops.recurrent import GATES, gru_sequence, lstm_sequence, rnn_sequence
from scratchnn.ops.shape import concat, getitem, reshape, stack, transpose


def _positive_int(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def mask_to_lengths(mask, T: int, N: int):
    """Lengths (N,) from a right-padded boolean mask (N, T), True at real steps."""
    mask = xp.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if mask.shape != (N, T) or mask.dtype != bool:
        raise ValueError(
            f"mask must be a boolean array of shape (N, T) = ({N}, {T}), got {mask.dtype} "
            f"array of shape {mask.shape}"
        )
    lengths = mask.sum(axis=1)
    if not (mask == (xp.arange(T)[None, :] < lengths[:, None])).all():
        raise ValueError("mask must be right-padded: True for each sequence's first steps, "
                         "then False (use lengths= for the same thing)")
    return lengths


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU: parameters, initial states, stacking.

    Args:
        mode: "lstm", "gru", "rnn_tanh" or "rnn_relu".
        input_size: features of each step's input.
        hidden_size: features of the hidden state H.
        num_layers: stacked layers; layer k > 0 reads layer k-1's output.
        bias: learn ``bias_ih`` and ``bias_hh``.
        batch_first: input and output are (N, T, features) instead of (T, N, features);
            the states stay (layers·directions, N, H), as in PyTorch.
        dropout: probability of dropping each output of every layer but the last, in training.
        bidirectional: run a reverse direction too and concatenate the outputs (2H features).
        rng: generator for the initial weights and the dropout masks (None → the default
            generator).
        dtype: parameter dtype (float32 unless given).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, rng: np.random.Generator | None = None,
                 dtype=None) -> None:
        super().__init__()
        self.mode = mode
        self.input_size = _positive_int("input_size", input_size)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Real)
                or not 0 <= dropout < 1):
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.rng = rng
        dtype = np.dtype(dtype) if dtype is not None else DEFAULT_FLOAT
        if dtype.kind != "f":
            raise ValueError(f"{type(self).__name__} parameters must be floating point, "
                             f"got dtype {dtype}")
        gates = GATES[mode] * self.hidden_size
        directions = 2 if self.bidirectional else 1
        # PyTorch's order: per layer, per direction, weight_ih, weight_hh, bias_ih, bias_hh.
        for layer in range(self.num_layers):
            n_in = self.input_size if layer == 0 else self.hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                shapes = {"weight_ih": (gates, n_in), "weight_hh": (gates, self.hidden_size)}
                if self.bias:
                    shapes.update(bias_ih=(gates,), bias_hh=(gates,))
                for name, shape in shapes.items():
                    param = Parameter(xp.empty(shape, dtype=dtype), dtype=dtype)
                    setattr(self, f"{name}_l{layer}{suffix}", param)
        self.reset_parameters(rng)

    def reset_parameters(self, rng: np.random.Generator | None = None) -> None:
        """PyTorch's default: every weight and bias ~ U(-1/√H, 1/√H)."""
        bound = 1 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound, rng)

    def flatten_parameters(self) -> None:
        """A no-op, for code written for PyTorch (whose cuDNN path wants one weight buffer)."""

    def _layer_weights(self, layer: int, reverse: bool) -> list:
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        weights = [getattr(self, name + suffix) for name in names]
        return weights if self.bias else weights + [None, None]

    def _check_input(self, x: Tensor) -> None:
        steps = x.shape[1] if x.ndim == 3 and self.batch_first else x.shape[0] if x.ndim else 0
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size or steps < 1:
            layout = "(N, T, input_size)" if self.batch_first else "(T, N, input_size)"
            raise ValueError(
                f"{self!r} expected input {layout} or (T, input_size) with input_size "
                f"{self.input_size} and T >= 1, got shape {tuple(x.shape)}"
            )
        if x.dtype != self.weight_ih_l0.dtype:
            raise TypeError(
                f"{self!r} has {self.weight_ih_l0.dtype} parameters but got a {x.dtype} input; "
                f"convert the input or the layer (.to(dtype)) explicitly"
            )

    def _states(self, hx, N: int, unbatched: bool, what: str) -> list:
        """One (N, H) tensor (or None) per layer and direction from ``hx`` (L·D, N, H)."""
        count = self.num_layers * (2 if self.bidirectional else 1)
        if hx is None:
            return [None] * count
        hx = ensure_tensor(hx)
        expected = (count, self.hidden_size) if unbatched else (count, N, self.hidden_size)
        if tuple(hx.shape) != expected:
            raise ValueError(f"{self!r} expected {what} of shape {expected}, "
                             f"got {tuple(hx.shape)}")
        if hx.dtype != self.weight_ih_l0.dtype:
            raise TypeError(f"{self!r}: {what} has dtype {hx.dtype}, the parameters "
                            f"{self.weight_ih_l0.dtype}")
        if unbatched:
            hx = reshape(hx, (count, 1, self.hidden_size))  # (L·D, 1, H)
        return [getitem(hx, k) for k in range(count)]

    def _run(self, x: Tensor, states: list, lengths, mask) -> tuple:
        """(output, [h_n per layer·direction], [c_n ...]) for a checked input tensor."""
        unbatched = x.ndim == 2
        if unbatched:
            if lengths is not None or mask is not None:
                raise ValueError("lengths and mask need a batched input (N sequences)")
            x = reshape(x, (x.shape[0], 1, x.shape[1]))  # (T, 1, in)
        elif self.batch_first:
            x = transpose(x, 0, 1)  # (T, N, in): a view
        T, N = x.shape[0], x.shape[1]
        if lengths is not None and mask is not None:
            raise ValueError("give lengths or mask, not both")
        if mask is not None:
            lengths = mask_to_lengths(mask, T, N)
        directions = 2 if self.bidirectional else 1
        finals = []
        for layer in range(self.num_layers):
            outs = []
            for d in range(directions):
                k = layer * directions + d
                init_states = [s[k] for s in states]
                res = self._sequence(x, self._layer_weights(layer, d == 1), init_states,
                                     lengths, d == 1)
                outs.append(res[0])
                finals.append(res[1:])
            x = outs[0] if directions == 1 else concat(outs, axis=2)  # (T, N, D·H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout, True, self.rng)
        if unbatched:
            x = reshape(x, (T, x.shape[2]))  # (T, D·H)
        elif self.batch_first:
            x = transpose(x, 0, 1)  # (N, T, D·H)
        stacked = []
        for finals_k in zip(*finals):  # h_n (and c_n) over layers and directions
            s = stack(list(finals_k), axis=0)  # (L·D, N, H)
            stacked.append(reshape(s, (s.shape[0], self.hidden_size)) if unbatched else s)
        return x, stacked

    def _sequence(self, x, weights, init_states, lengths, reverse):
        raise NotImplementedError("abstract: RNN, LSTM and GRU define _sequence")

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: ``h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)``, act tanh or relu.

    Args: as :class:`RNNBase`, plus ``nonlinearity`` ("tanh" or "relu"), in PyTorch's order.

    Shape: input (T, N, in) (batch_first: (N, T, in)) or (T, in); hx (L·D, N, H) or None;
    lengths (N,) ints or mask (N, T) bools → (output (T, N, D·H), h_n (L·D, N, H)).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False,
                 rng: np.random.Generator | None = None, dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"rnn_{nonlinearity}", input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, rng, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None, lengths=None, mask=None) -> tuple[Tensor, Tensor]:
        x = ensure_tensor(input)
        self._check_input(x)
        states = [self._states(hx, _batch(x, self.batch_first), x.ndim == 2, "hx")]
        output, (h_n,) = self._run(x, states, lengths, mask)
        return output, h_n

    def _sequence(self, x, weights, init_states, lengths, reverse):
        return rnn_sequence(x, *weights, init_states[0], self.nonlinearity, lengths=lengths,
                            reverse=reverse)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch's gates (i, f, g, o).

    Args: as :class:`RNNBase`, in PyTorch's order.

    Shape: input (T, N, in) (batch_first: (N, T, in)) or (T, in); hx (h_0, c_0), each
    (L·D, N, H), or None; lengths (N,) or mask (N, T) → (output (T, N, D·H), (h_n, c_n)).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, rng: np.random.Generator | None = None,
                 dtype=None) -> None:
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, rng, dtype)

    def forward(self, input, hx=None, lengths=None, mask=None):
        x = ensure_tensor(input)
        self._check_input(x)
        n, unbatched = _batch(x, self.batch_first), x.ndim == 2
        if hx is None:
            states = [self._states(None, n, unbatched, "h_0")] * 2
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ValueError(f"{self!r} expected hx = (h_0, c_0), got {type(hx).__name__}")
            states = [self._states(hx[0], n, unbatched, "h_0"),
                      self._states(hx[1], n, unbatched, "c_0")]
        output, (h_n, c_n) = self._run(x, states, lengths, mask)
        return output, (h_n, c_n)

    def _sequence(self, x, weights, init_states, lengths, reverse):
        return lstm_sequence(x, *weights, *init_states, lengths=lengths, reverse=reverse)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014), PyTorch's gates (r, z, n) with
    ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`` and ``h' = (1 - z) ⊙ n + z ⊙ h``.

    Args: as :class:`RNNBase`, in PyTorch's order.

    Shape: as :class:`RNN`.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, rng: np.random.Generator | None = None,
                 dtype=None) -> None:
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, rng, dtype)

    def forward(self, input, hx=None, lengths=None, mask=None) -> tuple[Tensor, Tensor]:
        x = ensure_tensor(input)
        self._check_input(x)
        states = [self._states(hx, _batch(x, self.batch_first), x.ndim == 2, "hx")]
        output, (h_n,) = self._run(x, states, lengths, mask)
        return output, h_n

    def _sequence(self, x, weights, init_states, lengths, reverse):
        return gru_sequence(x, *weights, init_states[0], lengths=lengths, reverse=reverse)


def _batch(x: Tensor, batch_first: bool) -> int:
    """N of an input (1 for an unbatched one)."""
    if x.ndim == 2:
        return 1
    return x.shape[0] if batch_first else x.shape[1]
