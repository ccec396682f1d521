"""Op cases for the rnn family; part of the one case table (``op_cases.CASES``).

The fused sequence ops (``lstm_sequence``, ``gru_sequence``, ``rnn_sequence``) against
``torch.nn.LSTM/GRU/RNN`` run by ``torch.func.functional_call`` with the case's weights. A
reverse direction is the reverse half of a bidirectional torch layer whose forward half has
zero weights; variable lengths go through ``pack_padded_sequence(enforce_sorted=False)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from op_cases import OpCase, case, const, normal
from scratchnn.ops.recurrent import gru_sequence, lstm_sequence, rnn_sequence

T, N, IN, H = 4, 3, 3, 2
LENGTHS = const([3, 1, 4], dtype=np.int64)  # unsorted, one full, one of a single step
TORCH_MODULES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _torch_layer(kind, x, w_ih, w_hh, b_ih, b_hh, h0, c0=None, lengths=None,
                 reverse=False, nonlinearity="tanh"):
    """One torch layer and direction with the given weights: (output, h_n[, c_n])."""
    steps, _, n_in = x.shape
    hidden = w_hh.shape[1]
    extra = {"nonlinearity": nonlinearity} if kind == "rnn" else {}
    module = TORCH_MODULES[kind](n_in, hidden, bias=b_ih is not None, bidirectional=reverse,
                                 dtype=x.dtype, **extra)
    ours = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
    params = {}
    for name, value in ours.items():
        if value is None:
            continue
        if reverse:
            params[f"{name}_l0"] = torch.zeros_like(value).detach()
            params[f"{name}_l0_reverse"] = value
        else:
            params[f"{name}_l0"] = value

    def state(s):
        if s is None:
            return torch.zeros(1 + reverse, x.shape[1], hidden, dtype=x.dtype)
        return torch.stack([torch.zeros_like(s), s]) if reverse else s[None]

    hx = (state(h0), state(c0)) if kind == "lstm" else state(h0)
    inp = x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, h_n = torch.func.functional_call(module, params, (inp, hx))
    if lengths is not None:
        out, _ = pad_packed_sequence(out, total_length=steps)
    k = int(reverse)
    out = out[..., hidden:] if reverse else out
    if kind == "lstm":
        return out, h_n[0][k], h_n[1][k]
    return out, h_n[k]


def _weights(kind: str, bias: bool = True, scale: float = 0.6) -> list:
    g = GATES[kind] * H
    makers = [normal((g, IN), scale), normal((g, H), scale)]
    if bias:
        makers += [normal((g,), scale), normal((g,), scale)]
    return makers


def _lstm(name, *, bias=True, states=True, lengths=False, reverse=False) -> OpCase:
    def ours(x, *rest):
        rest = list(rest)
        w = rest[:4] if bias else rest[:2] + [None, None]
        rest = rest[4 if bias else 2:]
        h0, c0 = (rest.pop(0), rest.pop(0)) if states else (None, None)
        ln = rest.pop(0) if lengths else None
        return w, h0, c0, ln

    def fn(*args):
        w, h0, c0, ln = ours(*args)
        return lstm_sequence(args[0], *w, h0, c0, lengths=ln, reverse=reverse)

    def torch_fn(*args):
        w, h0, c0, ln = ours(*args)
        return _torch_layer("lstm", args[0], *w, h0, c0, ln, reverse)

    makers = [normal((T, N, IN)), *_weights("lstm", bias)]
    if states:
        makers += [normal((N, H)), normal((N, H))]
    if lengths:
        makers.append(LENGTHS)
    return case(name, fn, torch_fn, *makers)


def _gru_or_rnn(kind, name, *, bias=True, state=True, lengths=False, reverse=False,
                nonlinearity="tanh") -> OpCase:
    def split(x, *rest):
        rest = list(rest)
        w = rest[:4] if bias else rest[:2] + [None, None]
        rest = rest[4 if bias else 2:]
        h0 = rest.pop(0) if state else None
        ln = rest.pop(0) if lengths else None
        return w, h0, ln

    def fn(*args):
        w, h0, ln = split(*args)
        if kind == "gru":
            return gru_sequence(args[0], *w, h0, lengths=ln, reverse=reverse)
        return rnn_sequence(args[0], *w, h0, nonlinearity, lengths=ln, reverse=reverse)

    def torch_fn(*args):
        w, h0, ln = split(*args)
        return _torch_layer(kind, args[0], *w, h0, None, ln, reverse, nonlinearity)

    makers = [normal((T, N, IN)), *_weights(kind, bias)]
    if state:
        makers.append(normal((N, H)))
    if lengths:
        makers.append(LENGTHS)
    return case(name, fn, torch_fn, *makers)


def cases() -> list[OpCase]:
    return [
        _lstm("lstm_sequence"),
        _lstm("lstm_sequence_zero_state_no_bias", bias=False, states=False),
        _lstm("lstm_sequence_reverse", reverse=True),
        _lstm("lstm_sequence_lengths", lengths=True),
        _lstm("lstm_sequence_reverse_lengths", lengths=True, reverse=True),
        _gru_or_rnn("gru", "gru_sequence"),
        _gru_or_rnn("gru", "gru_sequence_zero_state_no_bias", bias=False, state=False),
        _gru_or_rnn("gru", "gru_sequence_reverse_lengths", lengths=True, reverse=True),
        _gru_or_rnn("gru", "gru_sequence_lengths", lengths=True),
        _gru_or_rnn("rnn", "rnn_tanh_sequence"),
        _gru_or_rnn("rnn", "rnn_tanh_sequence_reverse_lengths", lengths=True, reverse=True),
        _gru_or_rnn("rnn", "rnn_relu_sequence", nonlinearity="relu"),
        _gru_or_rnn("rnn", "rnn_relu_sequence_lengths_no_bias", bias=False, lengths=True,
                    nonlinearity="relu"),
    ]
