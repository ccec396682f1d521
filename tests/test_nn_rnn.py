"""Recurrent layers RNN, LSTM and GRU against torch.nn: names, init, outputs, gradients,
variable lengths (packed sequences), dropout between layers, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import scratchnn as sn
from scratchnn import nn, optim
from scratchnn.ops.recurrent import gru_sequence, lstm_sequence, rnn_sequence

OURS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN, "rnn_relu": nn.RNN}
THEIRS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN,
          "rnn_relu": torch.nn.RNN}
TOL = {np.float32: 2e-5, np.float64: 1e-10}
IN, H, T, N = 3, 4, 5, 3


def _pair(kind: str, dtype=np.float32, seed: int = 0, **kw):
    """Our layer with fresh weights, and torch's with the same weights (our state_dict)."""
    extra = {"nonlinearity": "relu"} if kind == "rnn_relu" else {}
    ours = OURS[kind](IN, H, rng=np.random.default_rng(seed), dtype=dtype, **extra, **kw)
    theirs = THEIRS[kind](IN, H, **extra, **kw).to(getattr(torch, np.dtype(dtype).name))
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    return ours, theirs


def _hx(kind, layers, directions, n, rng, dtype, unbatched=False):
    """Random initial states: [h_0] or [h_0, c_0] for the LSTM."""
    shape = (layers * directions, H) if unbatched else (layers * directions, n, H)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(2 if kind == "lstm" else 1)]


def _flat(out):
    """(output, h_n[, c_n]) as a flat list."""
    output, state = out
    return [output, *state] if isinstance(state, tuple) else [output, state]


def _run_both(ours, theirs, kind, x_np, hx_np=None, dtype=np.float32, lengths=None,
              mask_arg=False):
    """Forward and backward (random projection of every output) in both; returns both sides."""
    rng = np.random.default_rng(42)
    x = sn.tensor(x_np, dtype=dtype, requires_grad=True)
    xt = torch.tensor(x_np, requires_grad=True)
    hs = [sn.tensor(h, dtype=dtype, requires_grad=True) for h in hx_np or []]
    hts = [torch.tensor(h, requires_grad=True) for h in hx_np or []]
    our_hx = (tuple(hs) if kind == "lstm" else hs[0]) if hs else None
    their_hx = (tuple(hts) if kind == "lstm" else hts[0]) if hts else None
    kw = {}
    if lengths is not None:
        steps = x_np.shape[1] if ours.batch_first else x_np.shape[0]
        kw = ({"mask": np.arange(steps)[None, :] < np.asarray(lengths)[:, None]} if mask_arg
              else {"lengths": np.asarray(lengths)})
    outs = _flat(ours(x, our_hx, **kw))
    if lengths is None:
        touts = _flat(theirs(xt, their_hx))
    else:
        packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=ours.batch_first,
                                      enforce_sorted=False)
        tout, tstate = theirs(packed, their_hx)
        tout, _ = pad_packed_sequence(tout, batch_first=ours.batch_first, total_length=steps)
        touts = _flat((tout, tstate))
    rs = [rng.standard_normal(o.shape).astype(dtype) for o in outs]
    sum((o * r).sum() for o, r in zip(outs, rs)).backward()
    sum((t * torch.from_numpy(r)).sum() for t, r in zip(touts, rs)).backward()
    return (x, hs, outs), (xt, hts, touts)


def _assert_match(ours, theirs, a, b, dtype):
    tol = TOL[dtype]
    (x, hs, outs), (xt, hts, touts) = a, b
    assert len(outs) == len(touts)
    for k, (o, t) in enumerate(zip(outs, touts)):
        assert o.shape == tuple(t.shape) and o.dtype == dtype, k
        np.testing.assert_allclose(o.data, t.detach().numpy(), rtol=tol, atol=tol,
                                   err_msg=f"output {k}")
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=tol, atol=tol,
                               err_msg="input gradient")
    for k, (h, ht) in enumerate(zip(hs, hts)):
        np.testing.assert_allclose(h.grad.data, ht.grad.numpy(), rtol=tol, atol=tol,
                                   err_msg=f"initial state {k} gradient")
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.data, their_params[name].grad.numpy(), rtol=tol,
                                   atol=tol, err_msg=f"gradient of {name}")


# ----------------------------------------------------------------------------- layout
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("kw", [{}, {"num_layers": 3, "bidirectional": True},
                                {"num_layers": 2, "bias": False}])
def test_parameter_names_shapes_and_repr_match_torch(kind, kw):
    ours, theirs = _pair(kind, **kw)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [
        (n, tuple(p.shape)) for n, p in theirs.named_parameters()
    ]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)


def test_repr_shows_options_like_torch():
    kw = dict(num_layers=2, bias=False, batch_first=True, dropout=0.25, bidirectional=True)
    assert repr(nn.GRU(3, 5, **kw)) == repr(torch.nn.GRU(3, 5, **kw))
    assert repr(nn.RNN(3, 5, nonlinearity="relu")) == "RNN(3, 5, nonlinearity='relu')"


def test_default_init_is_uniform_over_inverse_sqrt_hidden_and_reproducible():
    layer = nn.LSTM(50, 400, rng=np.random.default_rng(3))
    bound = 1 / math.sqrt(400)
    for name, p in layer.named_parameters():
        assert p.dtype == np.float32 and p.requires_grad, name
        assert np.abs(p.data).max() <= bound, name
    w = layer.weight_hh_l0.data
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound  # U(-b, b) has std b/√3
    again = nn.LSTM(50, 400, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(again.weight_hh_l0.data, w)
    assert nn.GRU(2, 3, dtype=np.float64).weight_ih_l0.dtype == np.float64


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_torch_state_dict_loads_and_gives_the_same_outputs(kind):
    torch.manual_seed(0)
    theirs = THEIRS[kind](IN, H, num_layers=2, bidirectional=True)
    ours = OURS[kind](IN, H, num_layers=2, bidirectional=True)
    missing, unexpected = ours.load_state_dict(
        {k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert missing == [] and unexpected == []
    x = np.random.default_rng(1).standard_normal((T, N, IN)).astype(np.float32)
    for o, t in zip(_flat(ours(x)), _flat(theirs(torch.from_numpy(x)))):
        np.testing.assert_allclose(o.data, t.detach().numpy(), rtol=2e-5, atol=2e-5)


# ----------------------------------------------------------------------------- parity
CONFIGS = [
    {},
    {"num_layers": 2},
    {"bidirectional": True},
    {"num_layers": 2, "bidirectional": True, "batch_first": True},
    {"num_layers": 2, "bias": False, "batch_first": True},
]


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn", "rnn_relu"])
@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items())
                         or "default")
@pytest.mark.parametrize("with_hx", [False, True])
def test_module_matches_torch_outputs_and_all_gradients(kind, kw, with_hx):
    ours, theirs = _pair(kind, **kw)
    rng = np.random.default_rng(7)
    shape = (N, T, IN) if kw.get("batch_first") else (T, N, IN)
    x = rng.standard_normal(shape).astype(np.float32)
    directions = 2 if kw.get("bidirectional") else 1
    hx = _hx(kind, kw.get("num_layers", 1), directions, N, rng, np.float32) if with_hx else None
    a, b = _run_both(ours, theirs, kind, x, hx)
    _assert_match(ours, theirs, a, b, np.float32)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_float64_parity_in_train_and_eval_mode(kind, mode):
    ours, theirs = _pair(kind, np.float64, num_layers=2, bidirectional=True)
    getattr(ours, mode)()
    getattr(theirs, mode)()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((T, N, IN))
    a, b = _run_both(ours, theirs, kind, x, _hx(kind, 2, 2, N, rng, np.float64),
                     dtype=np.float64)
    _assert_match(ours, theirs, a, b, np.float64)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("with_hx", [False, True])
def test_unbatched_input(kind, with_hx):
    ours, theirs = _pair(kind, np.float64, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((T, IN))
    hx = _hx(kind, 2, 2, 1, rng, np.float64, unbatched=True) if with_hx else None
    a, b = _run_both(ours, theirs, kind, x, hx, dtype=np.float64)
    _assert_match(ours, theirs, a, b, np.float64)
    assert a[2][0].shape == (T, 2 * H) and a[2][1].shape == (4, H)


# ----------------------------------------------------------------------------- lengths
LENGTHS = [3, 5, 1]  # unsorted; one full, one a single step


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn", "rnn_relu"])
@pytest.mark.parametrize("kw", [{}, {"num_layers": 2, "bidirectional": True},
                                {"bidirectional": True, "batch_first": True}])
@pytest.mark.parametrize("mask_arg", [False, True], ids=["lengths", "mask"])
def test_variable_lengths_match_packed_sequences(kind, kw, mask_arg):
    ours, theirs = _pair(kind, np.float64, **kw)
    rng = np.random.default_rng(10)
    shape = (N, T, IN) if kw.get("batch_first") else (T, N, IN)
    x = rng.standard_normal(shape)
    directions = 2 if kw.get("bidirectional") else 1
    hx = _hx(kind, kw.get("num_layers", 1), directions, N, rng, np.float64)
    a, b = _run_both(ours, theirs, kind, x, hx, np.float64, LENGTHS, mask_arg)
    _assert_match(ours, theirs, a, b, np.float64)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_padding_does_not_leak(kind):
    layer = OURS[kind](IN, H, num_layers=2, bidirectional=True, batch_first=True,
                       rng=np.random.default_rng(11))
    rng = np.random.default_rng(12)
    x = rng.standard_normal((N, T, IN)).astype(np.float32)
    lengths = np.array(LENGTHS)
    pad = np.arange(T)[None, :] >= lengths[:, None]  # (N, T)
    other = x.copy()
    other[pad] = 100 * rng.standard_normal((pad.sum(), IN))
    a, b = _flat(layer(x, lengths=lengths)), _flat(layer(other, lengths=lengths))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u.data, v.data)
    assert not np.any(a[0].data[pad]) and np.all(a[0].data[~pad] != 0)
    # Each sequence alone, unpadded, gives the same output and final states.
    for i, n in enumerate(lengths):
        alone = _flat(layer(x[i:i + 1, :n]))
        np.testing.assert_allclose(alone[0].data[0], a[0].data[i, :n], rtol=1e-5, atol=1e-6)
        for s, s_all in zip(alone[1:], a[1:]):
            np.testing.assert_allclose(s.data[:, 0], s_all.data[:, i], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_dropout_between_layers_in_training_only(kind):
    p = 0.4
    layer = OURS[kind](IN, H, num_layers=2, dropout=p, rng=np.random.default_rng(13),
                       dtype=np.float64)
    x = sn.tensor(np.random.default_rng(14).standard_normal((T, N, IN)), dtype=np.float64,
                  requires_grad=True)
    # By hand: layer 0, dropout with a generator in the same state, layer 1 (none after it).
    layer.rng = np.random.default_rng(15)
    out = layer(x)[0]
    fn = lstm_sequence if kind == "lstm" else gru_sequence
    w0 = [getattr(layer, f"{n}_l0") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    w1 = [getattr(layer, f"{n}_l1") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    y0 = fn(x, *w0)[0]
    dropped = nn.functional.dropout(y0, p, True, np.random.default_rng(15))
    expected = fn(dropped, *w1)[0]
    np.testing.assert_array_equal(out.data, expected.data)
    assert np.isclose((dropped.data == 0).mean(), p, atol=0.2)

    r = np.random.default_rng(16).standard_normal(out.shape)
    (out * r).sum().backward()
    ours_grads = [x.grad.data.copy()] + [w.grad.data.copy() for w in w0 + w1]
    for t in [x, *w0, *w1]:
        t.grad = None
    (expected * r).sum().backward()
    for g, t in zip(ours_grads, [x, *w0, *w1]):
        np.testing.assert_array_equal(g, t.grad.data)

    # Eval mode: no dropout, and the same as torch in eval mode.
    theirs = THEIRS[kind](IN, H, num_layers=2, dropout=p).double().eval()
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.state_dict().items()})
    layer.eval()
    np.testing.assert_allclose(layer(x)[0].data, theirs(torch.from_numpy(x.data))[0]
                               .detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(layer(x)[0].data, layer(x)[0].data)


def test_dropout_statistics_preserve_the_mean():
    # With identity-like weights a second ReLU layer sees the first's output through dropout.
    p, hidden = 0.3, 200
    layer = nn.RNN(1, hidden, num_layers=2, nonlinearity="relu", dropout=p, bias=False,
                   rng=np.random.default_rng(17))
    with sn.no_grad():
        layer.weight_ih_l0.data[...] = 1.0
        layer.weight_hh_l0.data[...] = 0.0
        layer.weight_ih_l1.data[...] = np.eye(hidden)
        layer.weight_hh_l1.data[...] = 0.0
    x = np.ones((1, 500, 1), np.float32)
    out = layer(x)[0].data  # (1, 500, hidden): layer 1 of a dropped-out vector of ones
    assert abs((out == 0).mean() - p) < 0.01
    assert abs(out.mean() - 1.0) < 0.02
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / (1 - p)], rtol=1e-6)
    np.testing.assert_array_equal(layer.eval()(x)[0].data, 1.0)


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_bad_value():
    layer = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"input_size 3.*\(5, 2, 7\)"):
        layer(np.zeros((5, 2, 7), np.float32))
    with pytest.raises(TypeError, match="float64"):
        layer(sn.tensor(np.zeros((5, 2, 3)), dtype=np.float64))
    h = np.zeros((2, 2, 4), np.float32)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(2, 2, 4\)"):
        layer(np.zeros((5, 3, 3), np.float32), (h, h))
    with pytest.raises(ValueError, match="h_0, c_0"):
        layer(np.zeros((5, 2, 3), np.float32), h)
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 5\]"):
        layer(np.zeros((5, 2, 3), np.float32), lengths=np.array([6, 2]))
    with pytest.raises(ValueError, match="right-padded"):
        layer(np.zeros((5, 2, 3), np.float32), mask=np.array([[1, 0, 1, 0, 0]] * 2, bool))
    with pytest.raises(ValueError, match="not both"):
        layer(np.zeros((5, 2, 3), np.float32), lengths=[5, 5], mask=np.ones((2, 5), bool))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        nn.GRU(3, 4, dropout=1.0)
    with pytest.raises(ValueError, match="hidden_size"):
        nn.GRU(3, 0)
    with pytest.raises(ValueError, match=r"w_hh must have shape \(6, 2\), got \(8, 2\)"):
        gru_sequence(np.zeros((2, 1, 3)), np.zeros((6, 3)), np.zeros((8, 2)))
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn_sequence(np.zeros((2, 1, 3)), np.zeros((2, 3)), np.zeros((2, 2)),
                     nonlinearity="gelu")


def test_frozen_input_gets_no_gradient_and_parameters_do():
    layer = nn.GRU(IN, H, rng=np.random.default_rng(18))
    x = sn.tensor(np.random.default_rng(19).standard_normal((T, N, IN)).astype(np.float32))
    out, h_n = layer(x)
    (out.sum() + h_n.sum()).backward()
    assert x.grad is None
    assert all(p.grad is not None and np.any(p.grad.data) for p in layer.parameters())


def test_changed_weights_and_second_backward_raise_clear_errors():
    layer = nn.LSTM(IN, H, rng=np.random.default_rng(20))
    x = np.random.default_rng(21).standard_normal((T, N, IN)).astype(np.float32)
    out = layer(x)[0]
    with sn.no_grad():
        layer.weight_hh_l0.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        out.sum().backward()
    out = layer(x)[0]
    out.sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        out.sum().backward()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_learns_to_remember_the_first_step_of_variable_length_sequences(kind):
    # Label: the sign of the first input; later steps are noise, so the state must hold it.
    rng = np.random.default_rng(22)

    def batch(n):
        x = rng.standard_normal((n, 8, 1)).astype(np.float32)
        return x, (x[:, 0, 0] > 0).astype(np.int64), rng.integers(3, 9, n)

    model = OURS[kind](1, 12, batch_first=True, rng=rng)
    head = nn.Linear(12, 2, rng=rng)
    opt = optim.Adam([*model.parameters(), *head.parameters()], lr=0.02)
    for _ in range(150):
        x, y, lengths = batch(64)
        _, state = model(x, lengths=lengths)
        h_n = state[0] if kind == "lstm" else state
        loss = nn.functional.cross_entropy(head(h_n[0]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y, lengths = batch(500)
    _, state = model(x, lengths=lengths)
    h_n = state[0] if kind == "lstm" else state
    accuracy = (head(h_n[0]).data.argmax(axis=1) == y).mean()
    assert accuracy > 0.95


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_gradients_reach_whichever_parameters_are_trainable(kind):
    # One parameter trainable at a time: the fused op must still hand back its gradient.
    ours, theirs = _pair(kind, np.float64)
    x = np.random.default_rng(23).standard_normal((T, N, IN))
    their_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        ours.requires_grad_(False).zero_grad()
        theirs.zero_grad()
        param.requires_grad_(True)
        _run_both(ours, theirs, kind, x, dtype=np.float64)
        np.testing.assert_allclose(param.grad.data, their_params[name].grad.numpy(),
                                   rtol=1e-10, atol=1e-10, err_msg=name)
