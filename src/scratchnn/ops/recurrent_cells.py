"""Time loops of the recurrent cells (LSTM, GRU, Elman RNN): forward and BPTT on arrays.

The driver (``ops.recurrent``) computes the input part of every gate for all steps at once and
hands these loops arrays laid out so that each step only does the hidden matmul and the gate
math, in place, into arrays allocated once per call:

- Feature-major: a step's gates are a (G·H, N) block and a state is (H, N), so each gate is a
  contiguous (H, N) slab (fast elementwise math) and the hidden matmul is ``W_hh @ h``.
- Step order: time is already reversed for a reverse direction, so step ``s`` is always the
  ``s``-th step the cell takes.
- The batch is sorted by decreasing length, so the sequences still running at step ``s`` are
  the first ``bs[s]`` columns (``bs`` None: all). The others carry their state unchanged, so
  their gradient passes straight through, and their gate gradients are zero.
- ``Hs[s]`` (and ``Cs[s]``) is the state before step ``s``; ``Hs[0]`` the initial state.
- Gates come from one ``exp`` per step: the driver scales the weight rows of sigmoid gates by
  -1 and those of tanh gates by -2, so ``e = exp(a')`` gives ``σ(x) = 1 / (1 + e)`` and
  ``tanh(x) = 2 / (1 + e) - 1``. ``exp`` is the transcendental NumPy computes fastest, and
  ``exp`` overflowing to inf still gives the right limits (σ → 0, tanh → -1).

Gate layouts are PyTorch's: LSTM (i, f, g, o), GRU (r, z, n). Backward loops take the unscaled
``W_hh`` and return the gradients of the unscaled pre-activations as (G·H, T, N) arrays, so
that ``.reshape(G·H, T·N)`` lines up with the driver's (T·N, ...) inputs for the weight
gradients.
"""

from __future__ import annotations

from scratchnn.backend import xp


def _sigmoid_(a):
    """σ(x) in place, where ``a`` holds ``-x``."""
    xp.exp(a, out=a)
    a += 1
    xp.divide(1, a, out=a)


def _tanh_(a):
    """tanh(x) in place, where ``a`` holds ``-2x``."""
    xp.exp(a, out=a)
    a += 1
    xp.divide(2, a, out=a)
    a -= 1


def _times_sigmoid_grad(d, s, buf) -> None:
    """``d *= s (1 - s)``: the derivative of a sigmoid from its output ``s``."""
    xp.subtract(1, s, out=buf)
    buf *= s
    d *= buf


def _times_tanh_grad(d, t, buf) -> None:
    """``d *= 1 - t²``: the derivative of tanh from its output ``t``."""
    xp.multiply(t, t, out=buf)
    xp.subtract(1, buf, out=buf)
    d *= buf


def _cols(bs, s: int, n: int) -> int:
    """How many sequences (the first columns) run at step ``s``."""
    return n if bs is None else bs[s]


def _carry(states, s: int, b: int) -> None:
    """Sequences that do not run at step ``s`` keep their state."""
    for st in states:
        st[s + 1, :, b:] = st[s, :, b:]


def _grad_buffer(rows: int, T: int, N: int, dtype, bs):
    """(rows, T, N) for gate gradients; zeros where a step does not run a sequence."""
    return xp.empty((rows, T, N), dtype) if bs is None else xp.zeros((rows, T, N), dtype)


# --------------------------------------------------------------------------- LSTM
def lstm_forward(G, w, Hs, Cs, TC, bs) -> None:
    """Run the LSTM: ``G`` (T, 4H, N) scaled input parts become the gates in place.

    ``w`` is the scaled ``W_hh`` (4H, H); ``TC`` (T, H, N) receives tanh(c).
    """
    T, H, N = TC.shape
    tmp = xp.empty((4 * H, N), G.dtype)
    for s in range(T):
        b = _cols(bs, s, N)
        a, m = G[s, :, :b], tmp[:, :b]  # (4H, b)
        xp.matmul(w, Hs[s, :, :b], out=m)
        a += m
        _sigmoid_(a)
        g = a[2 * H:3 * H]
        g *= 2  # σ(2x) → tanh(x)
        g -= 1
        c = Cs[s + 1, :, :b]
        xp.multiply(a[H:2 * H], Cs[s, :, :b], out=c)  # f ⊙ c
        ig = m[:H]
        xp.multiply(a[:H], g, out=ig)
        c += ig
        tc = TC[s, :, :b]
        xp.multiply(c, -2, out=tc)
        _tanh_(tc)
        xp.multiply(a[3 * H:], tc, out=Hs[s + 1, :, :b])  # h = o ⊙ tanh(c)
        if b < N:
            _carry((Hs, Cs), s, b)


def lstm_backward(G, Hs, Cs, TC, w, dY, dh, dc, bs):
    """BPTT through the LSTM; ``dh``, ``dc`` (H, N) go from the last states' to the first's.

    ``dY`` (T, H, N) is the outputs' gradient. Returns the pre-activations' (4H, T, N).
    """
    T, H, N = TC.shape
    dA = _grad_buffer(4 * H, T, N, G.dtype, bs)
    w_t = xp.ascontiguousarray(w.T)  # (H, 4H)
    da_all, u_all = xp.empty((4 * H, N), G.dtype), xp.empty((H, N), G.dtype)
    v_all = xp.empty((2 * H, N), G.dtype)
    for s in range(T - 1, -1, -1):
        b = _cols(bs, s, N)
        dhb, dcb, u, da = dh[:, :b], dc[:, :b], u_all[:, :b], da_all[:, :b]
        dhb += dY[s, :, :b]
        a, tc = G[s, :, :b], TC[s, :, :b]
        i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        di, df, dg, do = da[:H], da[H:2 * H], da[2 * H:3 * H], da[3 * H:]
        xp.multiply(dhb, tc, out=do)
        # dc += dh ⊙ o ⊙ (1 - tanh²(c))
        xp.multiply(tc, tc, out=u)
        xp.subtract(1, u, out=u)
        u *= o
        u *= dhb
        dcb += u
        xp.multiply(dcb, g, out=di)
        xp.multiply(dcb, Cs[s, :, :b], out=df)
        xp.multiply(dcb, i, out=dg)
        _times_tanh_grad(dg, g, u)
        _times_sigmoid_grad(da[:2 * H], a[:2 * H], v_all[:, :b])
        _times_sigmoid_grad(do, o, u)
        dcb *= f
        xp.matmul(w_t, da, out=dhb)
        dA[:, s, :b] = da
    return dA


# --------------------------------------------------------------------------- GRU
def gru_forward(G, GH, w, b_hn, Hs, bs) -> None:
    """Run the GRU: ``G`` (T, 3H, N) scaled input parts become the gates (r, z, n) in place.

    ``GH`` (T, 3H, N) receives the scaled hidden parts ``W_hh h`` (+ ``b_hn`` (H, 1) in the n
    part); ``w`` is the scaled ``W_hh`` (3H, H).
    """
    T, H, N = Hs.shape[0] - 1, Hs.shape[1], Hs.shape[2]
    tmp = xp.empty((H, N), G.dtype)
    for s in range(T):
        b = _cols(bs, s, N)
        a, gh, h = G[s, :, :b], GH[s, :, :b], Hs[s, :, :b]
        xp.matmul(w, h, out=gh)
        ghn = gh[2 * H:]
        if b_hn is not None:
            ghn += b_hn
        rz = a[:2 * H]
        rz += gh[:2 * H]
        _sigmoid_(rz)
        n, u = a[2 * H:], tmp[:, :b]
        xp.multiply(a[:H], ghn, out=u)  # r ⊙ (W_hn h + b_hn)
        n += u
        _tanh_(n)
        h_new = Hs[s + 1, :, :b]
        xp.subtract(h, n, out=h_new)  # h' = n + z ⊙ (h - n)
        h_new *= a[H:2 * H]
        h_new += n
        if b < N:
            _carry((Hs,), s, b)


def gru_backward(G, GH, Hs, w, dY, dh, bs):
    """BPTT through the GRU; ``dh`` (H, N) goes from the last state's gradient to the first's.

    Returns the gradients of the input parts and of the hidden parts of the gates, both
    (3H, T, N); they differ in the n block only (the hidden one is scaled by r).
    """
    T, H, N = Hs.shape[0] - 1, Hs.shape[1], Hs.shape[2]
    dGI = _grad_buffer(3 * H, T, N, G.dtype, bs)
    dGH = _grad_buffer(3 * H, T, N, G.dtype, bs)
    w_t = xp.ascontiguousarray(w.T)  # (H, 3H)
    dgi_all, dgh_all = xp.empty((3 * H, N), G.dtype), xp.empty((3 * H, N), G.dtype)
    u_all, v_all = xp.empty((H, N), G.dtype), xp.empty((H, N), G.dtype)
    for s in range(T - 1, -1, -1):
        b = _cols(bs, s, N)
        dhb, u, v = dh[:, :b], u_all[:, :b], v_all[:, :b]
        dhb += dY[s, :, :b]
        a, h, dgi, dgh = G[s, :, :b], Hs[s, :, :b], dgi_all[:, :b], dgh_all[:, :b]
        r, z, n = a[:H], a[H:2 * H], a[2 * H:]
        dar, daz, dan = dgi[:H], dgi[H:2 * H], dgi[2 * H:]
        xp.subtract(1, z, out=v)
        v *= dhb  # dh ⊙ (1 - z): the gradient reaching n
        xp.subtract(h, n, out=daz)  # dz = dh ⊙ (h - n), times σ' = z (1 - z)
        daz *= v
        daz *= z
        xp.multiply(n, n, out=u)
        xp.subtract(1, u, out=u)
        xp.multiply(u, v, out=dan)
        xp.multiply(dan, r, out=dgh[2 * H:])
        # dr = dan ⊙ (W_hn h + b_hn); GH holds that times -2, hence σ' · (-1/2).
        xp.multiply(dan, GH[s, 2 * H:, :b], out=dar)
        xp.subtract(r, 1, out=u)
        u *= r
        u *= 0.5
        dar *= u
        dgh[:2 * H] = dgi[:2 * H]
        dhb *= z
        xp.matmul(w_t, dgh, out=u)
        dhb += u
        dGI[:, s, :b] = dgi
        dGH[:, s, :b] = dgh
    return dGI, dGH


# --------------------------------------------------------------------------- Elman RNN
def rnn_forward(G, w, Hs, relu: bool, bs) -> None:
    """Run the Elman RNN over ``G`` (T, H, N) scaled input parts, writing the states ``Hs``."""
    T, H, N = G.shape
    for s in range(T):
        b = _cols(bs, s, N)
        h_new = Hs[s + 1, :, :b]
        xp.matmul(w, Hs[s, :, :b], out=h_new)
        h_new += G[s, :, :b]
        if relu:
            xp.maximum(h_new, 0, out=h_new)
        else:
            _tanh_(h_new)
        if b < N:
            _carry((Hs,), s, b)


def rnn_backward(Hs, w, dY, dh, relu: bool, bs):
    """BPTT through the Elman RNN; returns the pre-activations' gradient (H, T, N)."""
    T, H, N = Hs.shape[0] - 1, Hs.shape[1], Hs.shape[2]
    dA = _grad_buffer(H, T, N, Hs.dtype, bs)
    w_t = xp.ascontiguousarray(w.T)  # (H, H)
    da_all, on_all = xp.empty((H, N), Hs.dtype), xp.empty((H, N), dtype=bool)
    for s in range(T - 1, -1, -1):
        b = _cols(bs, s, N)
        dhb, h, da = dh[:, :b], Hs[s + 1, :, :b], da_all[:, :b]
        dhb += dY[s, :, :b]
        if relu:
            xp.greater(h, 0, out=on_all[:, :b])
            xp.multiply(dhb, on_all[:, :b], out=da)
        else:
            xp.multiply(h, h, out=da)
            xp.subtract(1, da, out=da)
            da *= dhb
        xp.matmul(w_t, da, out=dhb)
        dA[:, s, :b] = da
    return dA
