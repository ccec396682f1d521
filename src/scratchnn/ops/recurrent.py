"""Fused recurrent layers: one LSTM, GRU or Elman-RNN layer in one direction, as one graph node.

Forward computes the input part of every gate for all steps in one matmul call (``W_ih @ X``
batched over steps, so that each step's gates come out as one contiguous (G·H, N) block), then
runs the time loop of ``ops.recurrent_cells``, which only does the hidden matmul and the gate
math. Backward is hand-written BPTT on arrays; the weight gradients are again one matmul each
over all steps, (G·H, T·N) @ (T·N, in or H). Variable lengths follow PyTorch's packed
sequences: a sequence's last state is the one at its last real step, the reverse direction
starts there, and outputs past the end are zero.

Each op returns one array packing the outputs and the final states along time,
(T + 1, N, H) or (T + 2, N, H) for the LSTM; the functional forms slice it apart.
"""

from __future__ import annotations

import numpy as np

from scratchnn.autograd.function import Function
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops import recurrent_cells as cells
from scratchnn.ops._operands import ensure_tensor
from scratchnn.ops.shape import getitem

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


class _Order:
    """Where each sequence and step sits in the loop: batch sorted by decreasing length,
    time reversed for the reverse direction."""

    def __init__(self, lengths, T: int, reverse: bool) -> None:
        self.reverse = reverse
        self.order = self.inv = self.bs = self.valid = None
        if lengths is not None:
            self.order = xp.argsort(-lengths, kind="stable")
            self.inv = xp.argsort(self.order)
            times = xp.arange(T)
            step_time = times[::-1] if reverse else times
            self.bs = (lengths[None, :] > step_time[:, None]).sum(axis=1).tolist()
            self.valid = times[:, None] < lengths[None, :]  # (T, N) real steps

    def to_steps(self, a):
        """(T, N, ...) in time and batch order → step order, sorted batch."""
        if self.order is not None:
            a = a[:, self.order]
        return a[::-1] if self.reverse else a

    def from_steps(self, a, out) -> None:
        """Inverse of ``to_steps``, written into ``out``."""
        if self.reverse:
            a = a[::-1]
        if self.order is None:
            out[...] = a
        else:
            xp.take(a, self.inv, axis=1, out=out)

    def sort(self, a):
        return a if self.order is None or a is None else a[self.order]

    def unsort(self, a):
        return a if self.order is None else a[self.inv]


def _scale(mode: str, H: int, dtype):
    """Per gate row: -1 for sigmoid gates, -2 for tanh gates (see ``recurrent_cells``)."""
    if mode == "lstm":
        scale = xp.full(4 * H, -1, dtype)
        scale[2 * H:3 * H] = -2
    elif mode == "gru":
        scale = xp.full(3 * H, -1, dtype)
        scale[2 * H:] = -2
    else:
        scale = xp.full(H, -2 if mode == "rnn_tanh" else 1, dtype)
    return scale


def _initial(state, order, H: int, N: int, dtype):
    """An initial state (N, H) or None as the loop's (H, N), in sorted batch order."""
    if state is None:
        return xp.zeros((H, N), dtype)
    return order.sort(state).T


def _forward(ctx, mode, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse):
    T, N, n_in = x.shape
    H = w_hh.shape[1]
    dtype = x.dtype
    order = _Order(lengths, T, reverse)
    scale = _scale(mode, H, dtype)
    w_in = w_ih * scale[:, None]  # (G·H, in)
    # The input part of every gate for every step in one (batched) matmul. The biases (all
    # but the GRU's b_hn, which r multiplies) ride along as weights of a column of ones,
    # which also hands their gradient back from the weight-gradient matmul.
    xs = xp.empty((T, N, n_in + (b_ih is not None)), dtype)  # (T, N, in [+ 1]), step order
    xs[:, :, :n_in] = order.to_steps(x)
    b_hn = None
    if b_ih is not None:
        bias = b_ih + b_hh
        if mode == "gru":
            bias[2 * H:] = b_ih[2 * H:]
            b_hn = (b_hh[2 * H:] * scale[2 * H:])[:, None]  # (H, 1)
        xs[:, :, n_in] = 1
        w_in = xp.concatenate([w_in, (bias * scale)[:, None]], axis=1)  # (G·H, in + 1)
    G = xp.matmul(w_in, xs.transpose(0, 2, 1))  # (T, G·H, N)
    w = w_hh * scale[:, None]  # (G·H, H)

    Hs = xp.empty((T + 1, H, N), dtype)
    Hs[0] = _initial(h0, order, H, N, dtype)
    n_states = 2 if mode == "lstm" else 1
    with np.errstate(over="ignore"):  # exp → inf is fine (see recurrent_cells)
        if mode == "lstm":
            Cs = xp.empty((T + 1, H, N), dtype)
            Cs[0] = _initial(c0, order, H, N, dtype)
            TC = xp.empty((T, H, N), dtype)
            cells.lstm_forward(G, w, Hs, Cs, TC, order.bs)
            arrays = (G, Hs, Cs, TC)
        elif mode == "gru":
            GH = xp.empty_like(G)
            cells.gru_forward(G, GH, w, b_hn, Hs, order.bs)
            arrays = (G, GH, Hs)
        else:
            cells.rnn_forward(G, w, Hs, mode == "rnn_relu", order.bs)
            arrays = (Hs,)
    # Saved, not attributes, so that backward() frees them (the gates and states are big).
    ctx.save_for_backward(w_ih, w_hh, xs, *arrays)
    ctx.mode, ctx.order = mode, order

    packed = xp.empty((T + n_states, N, H), dtype)
    order.from_steps(Hs[1:].transpose(0, 2, 1), packed[:T])  # (T, N, H)
    if order.valid is not None:
        packed[:T] *= order.valid[:, :, None]
    packed[T] = order.unsort(Hs[T].T)
    if mode == "lstm":
        packed[T + 1] = order.unsort(Cs[T].T)
    return packed


def _loop_grad(grad, order):
    """The gradient of a final state (N, H) as the loop's (H, N), a copy it may change."""
    return xp.array(order.sort(grad).T, order="C", copy=True)


def _backward(ctx, grad):
    w_ih, w_hh, xs, *arrays = ctx.saved
    mode, order = ctx.mode, ctx.order
    T, N, n_in = xs.shape[0], xs.shape[1], w_ih.shape[1]
    H = grad.shape[2]
    dY = xp.ascontiguousarray(order.to_steps(grad[:T]).transpose(0, 2, 1))  # (T, H, N)
    dh = _loop_grad(grad[T], order)
    if mode == "lstm":
        G, Hs, Cs, TC = arrays
        dc = _loop_grad(grad[T + 1], order)
        dGI = dGH = cells.lstm_backward(G, Hs, Cs, TC, w_hh, dY, dh, dc, order.bs)
    elif mode == "gru":
        G, GH, Hs = arrays
        dGI, dGH = cells.gru_backward(G, GH, Hs, w_hh, dY, dh, order.bs)
    else:
        (Hs,) = arrays
        dGI = dGH = cells.rnn_backward(Hs, w_hh, dY, dh, mode == "rnn_relu", order.bs)

    need = ctx.needs_input_grad
    dGI2 = dGI.reshape(-1, T * N)  # (G·H, T·N), columns in the order of xs's rows
    dGH2 = dGH.reshape(-1, T * N)  # (G·H, T·N)
    grads = [None] * 7
    if need[0]:
        dx = xp.empty((T, N, n_in), xs.dtype)
        order.from_steps((dGI2.T @ w_ih).reshape(T, N, n_in), dx)  # (T, N, in)
        grads[0] = dx
    if need[1] or need[3] or (need[4] and dGH is dGI):
        dw = dGI2 @ xs.reshape(T * N, -1)  # (G·H, in [+ 1]): the ones give the bias's
        grads[1] = dw[:, :n_in] if need[1] else None
        grads[3] = dw[:, n_in] if need[3] else None
    if need[2]:
        h_prev = Hs[:T].transpose(0, 2, 1).reshape(T * N, H)  # states before each step
        grads[2] = dGH2 @ h_prev
    if need[4]:
        grads[4] = dw[:, n_in] if dGH is dGI else dGH2.sum(axis=1)
    if need[5]:
        grads[5] = order.unsort(dh.T)
    if mode == "lstm" and need[6]:
        grads[6] = order.unsort(dc.T)
    return tuple(grads)


class LSTMSequence(Function):
    """One LSTM layer and direction over a sequence; packs (outputs, h_n, c_n)."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths=None, reverse=False):
        return _forward(ctx, "lstm", x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse)

    @staticmethod
    def backward(ctx, grad):
        return _backward(ctx, grad)


class GRUSequence(Function):
    """One GRU layer and direction over a sequence; packs (outputs, h_n)."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, lengths=None, reverse=False):
        return _forward(ctx, "gru", x, w_ih, w_hh, b_ih, b_hh, h0, None, lengths, reverse)

    @staticmethod
    def backward(ctx, grad):
        return _backward(ctx, grad)[:6]


class RNNSequence(Function):
    """One Elman-RNN layer and direction over a sequence; packs (outputs, h_n)."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, mode="rnn_tanh", lengths=None,
                reverse=False):
        return _forward(ctx, mode, x, w_ih, w_hh, b_ih, b_hh, h0, None, lengths, reverse)

    @staticmethod
    def backward(ctx, grad):
        return _backward(ctx, grad)[:6]


# --------------------------------------------------------------------------- functional
def lengths_array(lengths, T: int, N: int):
    """Check sequence lengths (N,) in [1, T]; None when every sequence is full (no packing)."""
    if lengths is None:
        return None
    lengths = xp.asarray(lengths.data if isinstance(lengths, Tensor) else lengths)
    if lengths.shape != (N,) or lengths.dtype.kind not in "iu":
        raise ValueError(
            f"lengths must be an integer array of shape ({N},), got {lengths.dtype} array of "
            f"shape {lengths.shape}"
        )
    if lengths.size and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths must be in [1, {T}] (the sequence length), got {lengths}")
    return None if bool((lengths == T).all()) else lengths.astype(np.int64)


def _check(name, mode, x, w_ih, w_hh, b_ih, b_hh, states):
    """Tensors for the arguments, after checking their shapes and dtypes against x."""
    x = ensure_tensor(x)
    if x.ndim != 3 or x.shape[0] < 1:
        raise ValueError(f"{name} expected input (T, N, in) with T >= 1, got {x.shape}")
    T, N, n_in = x.shape
    w_ih, w_hh = ensure_tensor(w_ih), ensure_tensor(w_hh)
    H = w_hh.shape[-1]
    GH = GATES[mode] * H
    expected = {"w_ih": (GH, n_in), "w_hh": (GH, H), "b_ih": (GH,), "b_hh": (GH,)}
    out = {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}
    for key, state in states.items():
        expected[key] = (N, H)
        out[key] = state
    if (b_ih is None) != (b_hh is None):
        raise ValueError(f"{name} needs both biases or neither")
    for key, value in out.items():
        if value is None:
            continue
        value = out[key] = ensure_tensor(value)
        if value.shape != expected[key]:
            raise ValueError(f"{name}: {key} must have shape {expected[key]}, got {value.shape}")
        if value.dtype != x.dtype:
            raise TypeError(
                f"{name}: {key} has dtype {value.dtype} but the input has {x.dtype}; convert "
                f"explicitly (scratchnn never upcasts silently)"
            )
    return x, out


def _unpack(packed, T: int, n_states: int) -> tuple:
    return (getitem(packed, slice(0, T)),) + tuple(
        getitem(packed, T + k) for k in range(n_states)
    )


def lstm_sequence(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, lengths=None,
                  reverse: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer in one direction: ``(output, h_n, c_n)``, PyTorch's gate order (i, f, g, o).

    Shape: x (T, N, in); w_ih (4H, in); w_hh (4H, H); b_ih, b_hh (4H,); h0, c0 (N, H)
    (None: zeros); lengths (N,) ints in [1, T] or None → output (T, N, H), h_n, c_n (N, H).
    """
    x, a = _check("lstm_sequence", "lstm", x, w_ih, w_hh, b_ih, b_hh, {"h0": h0, "c0": c0})
    lengths = lengths_array(lengths, x.shape[0], x.shape[1])
    packed = LSTMSequence.apply(x, a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], a["h0"],
                                a["c0"], lengths=lengths, reverse=bool(reverse))
    return _unpack(packed, x.shape[0], 2)


def gru_sequence(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, lengths=None,
                 reverse: bool = False) -> tuple[Tensor, Tensor]:
    """One GRU layer in one direction: ``(output, h_n)``, PyTorch's gates (r, z, n) with
    ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``.

    Shape: x (T, N, in); w_ih (3H, in); w_hh (3H, H); b_ih, b_hh (3H,); h0 (N, H)
    (None: zeros); lengths (N,) or None → output (T, N, H), h_n (N, H).
    """
    x, a = _check("gru_sequence", "gru", x, w_ih, w_hh, b_ih, b_hh, {"h0": h0})
    lengths = lengths_array(lengths, x.shape[0], x.shape[1])
    packed = GRUSequence.apply(x, a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], a["h0"],
                               lengths=lengths, reverse=bool(reverse))
    return _unpack(packed, x.shape[0], 1)


def rnn_sequence(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, nonlinearity: str = "tanh",
                 lengths=None, reverse: bool = False) -> tuple[Tensor, Tensor]:
    """One Elman-RNN layer in one direction: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.

    Shape: x (T, N, in); w_ih (H, in); w_hh (H, H); b_ih, b_hh (H,); h0 (N, H) (None: zeros);
    lengths (N,) or None → output (T, N, H), h_n (N, H).
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    mode = f"rnn_{nonlinearity}"
    x, a = _check("rnn_sequence", mode, x, w_ih, w_hh, b_ih, b_hh, {"h0": h0})
    lengths = lengths_array(lengths, x.shape[0], x.shape[1])
    packed = RNNSequence.apply(x, a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], a["h0"],
                               mode=mode, lengths=lengths, reverse=bool(reverse))
    return _unpack(packed, x.shape[0], 1)
