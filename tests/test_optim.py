"""Optimizers: parity with torch.optim, untouched frozen params, checkpoints, dtypes, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.numpy
import torch

import scratchnn as sn
from scratchnn.nn.parameter import Parameter
from scratchnn.optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    RMSprop,
    flatten_state_dict,
    param_groups_for_weight_decay,
    unflatten_state_dict,
)

SHAPES = [(3, 4), (5,), (2, 3, 2)]
STEPS = 5
# Gradient scales that rise and fall, so that AMSGrad's running maximum differs from v.
SCALES = [1.0, 0.1, 3.0, 0.5, 2.0, 0.2, 1.5, 0.7]

CASES = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.05}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
    (SGD, {"lr": 0.1, "momentum": 0.8, "maximize": True, "weight_decay": 0.01}),
    (Adam, {"lr": 0.01}),
    (Adam, {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-3, "weight_decay": 0.1}),
    (Adam, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    (Adam, {"lr": 0.01, "maximize": True}),
    (AdamW, {"lr": 0.01}),
    (AdamW, {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True, "eps": 1e-3}),
    (RMSprop, {"lr": 0.01}),
    (RMSprop, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1, "eps": 1e-3}),
    (RMSprop, {"lr": 0.01, "centered": True, "momentum": 0.5}),
    (RMSprop, {"lr": 0.01, "centered": True, "maximize": True, "alpha": 0.9}),
    (Adagrad, {"lr": 0.1}),
    (Adagrad, {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1,
               "initial_accumulator_value": 0.1}),
    (Adagrad, {"lr": 0.1, "maximize": True, "eps": 1e-3}),
]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for cls, kw in CASES]


def _torch_cls(cls):
    return getattr(torch.optim, cls.__name__)


def _grads(rng, steps, dtype=np.float64):
    """One list of gradients per step (a different scale each step)."""
    return [
        [(rng.standard_normal(s) * SCALES[t]).astype(dtype) for s in SHAPES] for t in range(steps)
    ]


def _make_pair(rng, dtype=np.float64):
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [Parameter(a.copy(), dtype=dtype) for a in arrays]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    return ours, theirs


def _set_grads(ours, theirs, grads, skip=()):
    for i, (p, q, g) in enumerate(zip(ours, theirs, grads)):
        if i in skip:
            p.grad, q.grad = None, None
        else:
            p.grad = sn.Tensor(g.copy(), dtype=g.dtype)
            q.grad = torch.from_numpy(g.copy())


def _assert_close(ours, theirs, rtol=1e-6, atol=1e-12):
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=IDS)
def test_matches_torch_over_steps(cls, kwargs):
    rng = np.random.default_rng(0)
    ours, theirs = _make_pair(rng)
    opt, ref = cls(ours, **kwargs), _torch_cls(cls)(theirs, **kwargs)
    for t, grads in enumerate(_grads(rng, STEPS)):
        # Parameter 1 has no grad on the first two steps: torch skips it, so must we.
        _set_grads(ours, theirs, grads, skip=(1,) if t < 2 else ())
        opt.step()
        ref.step()
        _assert_close(ours, theirs)
    # The state has torch's names and values (e.g. exp_avg, momentum_buffer, step).
    for p, q in zip(ours, theirs):
        ours_state, ref_state = opt.state.get(p, {}), ref.state[q]
        assert set(ours_state) == set(ref_state)
        for name, value in ours_state.items():
            expected = ref_state[name]
            expected = expected.numpy() if torch.is_tensor(expected) else expected
            np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(("cls", "kwargs"), CASES[1::3], ids=IDS[1::3])
def test_two_param_groups_with_their_own_lr(cls, kwargs):
    rng = np.random.default_rng(1)
    ours, theirs = _make_pair(rng)
    kwargs = dict(kwargs)
    opt = cls([{"params": ours[:1], "lr": 0.3}, {"params": ours[1:]}], **kwargs)
    ref = _torch_cls(cls)([{"params": theirs[:1], "lr": 0.3}, {"params": theirs[1:]}], **kwargs)
    for grads in _grads(rng, STEPS):
        _set_grads(ours, theirs, grads)
        opt.step()
        ref.step()
        _assert_close(ours, theirs)
    assert [g["lr"] for g in opt.param_groups] == [0.3, kwargs["lr"]]


UNTOUCHED_CASES = [
    (SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
    (Adam, {"lr": 0.1, "weight_decay": 0.1}),
    (AdamW, {"lr": 0.1, "weight_decay": 0.5}),
    (RMSprop, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1, "centered": True}),
    (Adagrad, {"lr": 0.1, "weight_decay": 0.1}),
]


@pytest.mark.parametrize(
    ("cls", "kwargs"), UNTOUCHED_CASES, ids=[c.__name__ for c, _ in UNTOUCHED_CASES]
)
def test_frozen_and_gradless_params_are_never_touched(cls, kwargs):
    rng = np.random.default_rng(2)
    live = Parameter(rng.standard_normal((3, 3)))
    frozen = Parameter(rng.standard_normal((3, 3)), requires_grad=False)
    gradless = Parameter(rng.standard_normal(4))
    before = {id(p): p.data.copy() for p in (live, frozen, gradless)}
    opt = cls([live, frozen, gradless], **kwargs)
    for _ in range(3):
        live.grad = sn.Tensor(rng.standard_normal((3, 3)).astype(np.float32))
        # A frozen parameter may still carry a grad (e.g. assigned by hand): ignore it.
        frozen.grad = sn.Tensor(rng.standard_normal((3, 3)).astype(np.float32))
        gradless.grad = None
        opt.step()
    for p in (frozen, gradless):
        np.testing.assert_array_equal(p.data, before[id(p)])
        assert p._version == 0
        assert p not in opt.state
    assert not np.array_equal(live.data, before[id(live)])
    assert live._version == 3
    assert list(opt.state_dict()["state"]) == [0]


STATEFUL_CASES = [
    (SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
    (Adam, {"lr": 0.1}),
    (AdamW, {"lr": 0.1, "weight_decay": 0.5}),
    (RMSprop, {"lr": 0.1, "momentum": 0.9}),
    (Adagrad, {"lr": 0.1}),
]


@pytest.mark.parametrize("how", ["grad_none", "frozen_with_stale_grad"])
@pytest.mark.parametrize(
    ("cls", "kwargs"), STATEFUL_CASES, ids=[c.__name__ for c, _ in STATEFUL_CASES]
)
def test_a_param_with_state_is_untouched_once_gradless_or_frozen(cls, kwargs, how):
    # Momentum, moving averages and weight decay would all move the parameter on a step
    # without a fresh gradient if the optimizer applied its state regardless.
    rng = np.random.default_rng(9)
    paused = Parameter(rng.standard_normal((3, 4)).astype(np.float32))
    live = Parameter(rng.standard_normal(5).astype(np.float32))
    opt = cls([paused, live], **kwargs)
    for _ in range(3):
        for p in (paused, live):
            p.grad = sn.Tensor(rng.standard_normal(p.shape).astype(np.float32))
        opt.step()
    assert opt.state[paused]  # it has state (momentum buffer, moments or sums) now
    state_before = {k: np.array(v, copy=True) for k, v in opt.state[paused].items()}
    data_before, live_before = paused.data.copy(), live.data.copy()
    version = paused._version
    if how == "grad_none":
        paused.grad = None
    else:
        paused.requires_grad_(False)
        assert paused.grad is not None  # the stale grad from the last step is still there
        assert np.any(paused.grad.data != 0)
    for _ in range(2):
        live.grad = sn.Tensor(rng.standard_normal(5).astype(np.float32))
        opt.step()
    assert np.array_equal(paused.data, data_before)
    assert paused._version == version
    assert set(opt.state[paused]) == set(state_before)
    for name, value in opt.state[paused].items():  # step counts and buffers as they were
        assert np.array_equal(np.asarray(value), state_before[name]), name
    assert not np.array_equal(live.data, live_before)
    # Back in training (a fresh grad, requires_grad again), it moves once more.
    paused.requires_grad_(True)
    paused.grad = sn.Tensor(np.ones(paused.shape, np.float32))
    opt.step()
    assert not np.array_equal(paused.data, data_before)


@pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_checkpoint_round_trip_resumes_bit_exactly(cls, kwargs, dtype, tmp_path):
    rng = np.random.default_rng(3)
    grads = _grads(rng, 5, dtype)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    straight = [Parameter(a.copy(), dtype=dtype) for a in init]
    resumed = [Parameter(a.copy(), dtype=dtype) for a in init]
    opt_a, opt_b = cls(straight, **kwargs), cls(resumed, **kwargs)
    for t in range(2):
        for params, opt in ((straight, opt_a), (resumed, opt_b)):
            for p, g in zip(params, grads[t]):
                p.grad = sn.Tensor(g.copy(), dtype=dtype)
            opt.step()
    arrays, meta = flatten_state_dict(opt_b.state_dict())
    safetensors.numpy.save_file(arrays, str(tmp_path / "optim.safetensors"))
    meta = json.loads(json.dumps(meta))
    arrays = safetensors.numpy.load_file(str(tmp_path / "optim.safetensors"))
    # A fresh optimizer on copies of the parameters, as after a restart.
    restored = [Parameter(p.data.copy(), dtype=dtype) for p in resumed]
    opt_c = cls(restored, **kwargs)
    opt_c.load_state_dict(unflatten_state_dict(arrays, meta))
    for t in range(2, 5):
        for params, opt in ((straight, opt_a), (restored, opt_c)):
            for p, g in zip(params, grads[t]):
                p.grad = sn.Tensor(g.copy(), dtype=dtype)
            opt.step()
    for p, q in zip(straight, restored):
        assert q.dtype == dtype
        np.testing.assert_array_equal(p.data, q.data)
    assert opt_c.param_groups[0].keys() == opt_a.param_groups[0].keys()


def test_state_dict_is_a_snapshot_and_has_torch_layout():
    ours, _ = _make_pair(np.random.default_rng(4))
    opt = Adam([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.5}])
    for p in ours:
        p.grad = sn.Tensor(np.ones(p.shape))
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.5
    assert sd["state"][0]["step"] == 1
    saved = sd["state"][0]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], saved)


def test_load_state_dict_validates_groups_and_shapes():
    rng = np.random.default_rng(5)
    a, b = (Parameter(rng.standard_normal(s)) for s in [(2, 2), (3,)])
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    a.grad, b.grad = sn.Tensor(np.ones((2, 2))), sn.Tensor(np.ones(3))
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="1 parameter groups, this optimizer has 2"):
        SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="param group 0 has 2 parameters .* has 1"):
        SGD([a], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"shape \(2, 2\).*shape \(3,\)"):
        SGD([b, a], lr=0.1, momentum=0.9).load_state_dict(sd)


def test_float32_params_and_state_stay_float32():
    rng = np.random.default_rng(6)
    for cls, kwargs in CASES:
        p = Parameter(rng.standard_normal((4, 3)).astype(np.float32))
        # NumPy float64 hyperparameters must not upcast float32 parameters.
        kwargs = {k: (np.float64(v) if isinstance(v, float) else v) for k, v in kwargs.items()}
        opt = cls([p], **kwargs)
        for _ in range(3):
            p.grad = sn.Tensor(rng.standard_normal((4, 3)).astype(np.float32))
            opt.step()
        assert p.dtype == np.float32, cls.__name__
        for name, value in opt.state.get(p, {}).items():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32, (cls.__name__, name)


def test_float32_adam_tracks_torch_float32():
    rng = np.random.default_rng(7)
    ours, theirs = _make_pair(rng, np.float32)
    opt, ref = Adam(ours, lr=0.01, weight_decay=0.1), torch.optim.Adam(theirs, lr=0.01,
                                                                     weight_decay=0.1)
    for grads in _grads(rng, STEPS, np.float32):
        _set_grads(ours, theirs, grads)
        opt.step()
        ref.step()
    _assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_step_bumps_version_so_stale_graphs_raise():
    w = Parameter(np.ones(3))
    (w * w).sum().backward()
    opt = SGD([w], lr=0.1)
    pending = (w * w).sum()
    opt.step()
    assert w._version == 1
    with pytest.raises(RuntimeError, match="modified in place"):
        pending.backward()


def test_zero_grad_and_closure():
    w = Parameter(np.ones(3))
    opt = SGD([w], lr=0.5)
    w.grad = sn.Tensor(np.ones(3))
    grad_array = w.grad.data
    opt.zero_grad(set_to_none=False)
    assert w.grad.data is grad_array and not grad_array.any()
    opt.zero_grad()
    assert w.grad is None

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 3.0
    np.testing.assert_array_equal(w.data, np.zeros(3))  # 1 - 0.5 * 2


def test_param_groups_for_weight_decay_splits_by_ndim():
    rng = np.random.default_rng(8)
    weight = Parameter(rng.standard_normal((4, 3)))
    bias = Parameter(rng.standard_normal(3))
    conv = Parameter(rng.standard_normal((2, 2, 2)))
    frozen = Parameter(rng.standard_normal((5, 5)), requires_grad=False)
    named = [("w", weight), ("b", bias), ("conv", conv), ("tied", weight), ("f", frozen)]
    groups = param_groups_for_weight_decay(named, 0.5)
    assert [[id(p) for p in g["params"]] for g in groups] == [[id(weight), id(conv)], [id(bias)]]
    assert [g["weight_decay"] for g in groups] == [0.5, 0.0]
    w0, b0 = weight.data.copy(), bias.data.copy()
    opt = AdamW(groups, lr=0.1)
    for p in (weight, bias, conv):
        p.grad = sn.Tensor(np.zeros(p.shape))  # zero gradient: only the decay moves p
    opt.step()
    np.testing.assert_allclose(weight.data, w0 * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_array_equal(bias.data, b0)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: SGD([p], lr=-0.1), "lr must be >= 0, got -0.1"),
        (lambda p: SGD([p], lr=0.1, momentum=-0.5), "momentum must be >= 0, got -0.5"),
        (lambda p: SGD([p], lr=0.1, weight_decay=-1e-4), "weight_decay must be >= 0, got -0.0001"),
        (lambda p: SGD([p], lr=0.1, nesterov=True), "nesterov=True needs momentum > 0.*got mom"),
        (lambda p: SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
         "dampening=0.1"),
        (lambda p: SGD([{"params": [p], "lr": -2.0}], lr=0.1), "lr must be >= 0, got -2.0"),
        (lambda p: Adam([p], betas=(1.0, 0.999)), r"betas\[0\] must be in \[0, 1\), got 1.0"),
        (lambda p: Adam([p], betas=(0.9, -0.1)), r"betas\[1\] must be in \[0, 1\), got -0.1"),
        (lambda p: Adam([p], eps=-1e-8), "eps must be >= 0, got -1e-08"),
        (lambda p: AdamW([p], weight_decay=-0.01), "weight_decay must be >= 0, got -0.01"),
        (lambda p: RMSprop([p], alpha=1.5), r"alpha must be in \[0, 1\], got 1.5"),
        (lambda p: RMSprop([p], momentum=-0.1), "momentum must be >= 0, got -0.1"),
        (lambda p: Adagrad([p], lr_decay=-1.0), "lr_decay must be >= 0, got -1.0"),
        (lambda p: Adagrad([p], initial_accumulator_value=-1.0),
         "initial_accumulator_value must be >= 0, got -1.0"),
        (lambda p: SGD([], lr=0.1), "empty parameter list"),
        (lambda p: SGD([p, p], lr=0.1), "more than one param group"),
    ],
)
def test_invalid_hyperparameters_raise_value_error_naming_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make(Parameter(np.zeros(2)))
