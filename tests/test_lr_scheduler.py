"""Learning-rate schedulers: torch's sequences, warmup-cosine values, JSON resume, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from scratchnn.nn.parameter import Parameter
from scratchnn.optim import SGD
from scratchnn.optim import lr_scheduler as ours_sched

STEPS = 30
LRS = (0.1, 0.02)  # two param groups, so per-group base lrs are exercised


def _optimizers():
    ours = SGD([{"params": [Parameter(np.zeros(2))], "lr": LRS[0]},
                {"params": [Parameter(np.zeros(3))], "lr": LRS[1]}], lr=1.0)
    theirs = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": LRS[0]},
                              {"params": [torch.nn.Parameter(torch.zeros(3))], "lr": LRS[1]}])
    return ours, theirs


def _run(opt, sched, steps=STEPS, metrics=None):
    """The lr of every group after construction and after each step (optimizer step first)."""
    seq = [sched.get_last_lr()]
    for t in range(steps):
        opt.step()
        sched.step() if metrics is None else sched.step(metrics[t])
        seq.append(sched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == pytest.approx(seq[-1], rel=1e-12)
    return np.array(seq)


SCHEDULERS = [
    ("StepLR", {"step_size": 4, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [3, 8, 8, 20], "gamma": 0.3}),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001}),  # 30 steps: past T_max too
    ("CosineAnnealingLR", {"T_max": 30}),
    ("LambdaLR", {"lr_lambda": lambda e: 0.9**e / (1 + e)}),
]


@pytest.mark.parametrize(("name", "kwargs"), SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_lr_sequence_matches_torch(name, kwargs):
    ours, theirs = _optimizers()
    got = _run(ours, getattr(ours_sched, name)(ours, **kwargs))
    expected = _run(theirs, getattr(torch.optim.lr_scheduler, name)(theirs, **kwargs))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)
    assert got.shape == (STEPS + 1, 2)


METRICS = [
    1.0, 0.9, 0.9, 0.9, 0.95, 0.91, 0.92, 0.93, 0.899, 0.9, 0.9, 0.9, 0.85, 0.86, 0.87, 0.88,
    0.89, 0.9, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75, 0.76, 0.77, 0.78, 0.79, 0.8, 0.81,
]
PLATEAU = [
    {"patience": 2},
    {"threshold": 0.0, "patience": 1},  # an equal metric is not an improvement
    {"mode": "max", "patience": 1, "factor": 0.5, "cooldown": 2},
    {"threshold": 0.05, "threshold_mode": "abs", "patience": 1, "min_lr": 0.004},
    {"threshold": 0.02, "patience": 0, "min_lr": [0.01, 0.0], "factor": 0.5, "cooldown": 1},
]


@pytest.mark.parametrize("kwargs", PLATEAU)
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    ours, theirs = _optimizers()
    got = _run(ours, ours_sched.ReduceLROnPlateau(ours, **kwargs), metrics=METRICS)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kwargs)
    expected = _run(theirs, sched, metrics=METRICS)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert len(np.unique(got[:, 0])) >= 3  # the lr was actually reduced, more than once


def test_linear_warmup_cosine_key_values():
    ours, _ = _optimizers()
    sched = ours_sched.LinearWarmupCosine(ours, warmup_steps=10, total_steps=110, min_lr=0.001)
    seq = _run(ours, sched, steps=130)[:, 0]
    assert seq[0] == 0.0                                  # warmup starts at 0
    assert seq[5] == pytest.approx(0.05, rel=1e-12)       # half way up
    assert seq[10] == pytest.approx(0.1, rel=1e-12)       # base lr at the end of warmup
    assert seq[60] == pytest.approx(0.001 + 0.099 / 2, rel=1e-12)   # cosine half way
    assert seq[110] == pytest.approx(0.001, rel=1e-12)    # min_lr at total_steps ...
    assert np.all(seq[110:] == seq[130])                  # ... and after
    assert np.all(np.diff(seq[:11]) > 0) and np.all(np.diff(seq[10:111]) < 0)
    # The second group warms up to its own base lr.
    assert sched.get_last_lr()[1] == pytest.approx(0.001)


def test_linear_warmup_cosine_start_factor_and_no_warmup():
    ours, _ = _optimizers()
    sched = ours_sched.LinearWarmupCosine(ours, 4, 8, start_factor=0.25)
    seq = _run(ours, sched, steps=8)[:, 1]
    np.testing.assert_allclose(seq[:5], [0.005, 0.00875, 0.0125, 0.01625, 0.02], rtol=1e-12)
    assert seq[6] == pytest.approx(0.01, rel=1e-12) and seq[8] == 0.0
    ours, theirs = _optimizers()
    got = _run(ours, ours_sched.LinearWarmupCosine(ours, 0, 20), steps=20)
    expected = _run(theirs, torch.optim.lr_scheduler.CosineAnnealingLR(theirs, 20), steps=20)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize(
    "make",
    [
        lambda o: ours_sched.StepLR(o, 3, 0.5),
        lambda o: ours_sched.MultiStepLR(o, [2, 5], 0.5),
        lambda o: ours_sched.CosineAnnealingLR(o, 7, 0.001),
        lambda o: ours_sched.LinearWarmupCosine(o, 3, 12, min_lr=[0.01, 0.0]),
        lambda o: ours_sched.LambdaLR(o, lambda e: 1 / (1 + e)),
    ],
)
def test_state_dict_json_round_trip_resumes_the_schedule(make):
    opt_a, _ = _optimizers()
    sched_a = make(opt_a)
    for _ in range(5):
        sched_a.step()
    saved_opt = json.loads(json.dumps(opt_a.state_dict()["param_groups"]))
    saved = json.loads(json.dumps(sched_a.state_dict()))
    opt_b, _ = _optimizers()
    sched_b = make(opt_b)  # built fresh, so its lr is the step-0 value until loaded
    sched_b.load_state_dict(saved)
    assert [g["lr"] for g in opt_b.param_groups] == [g["lr"] for g in saved_opt]
    for _ in range(10):
        sched_a.step()
        sched_b.step()
        assert sched_b.get_last_lr() == sched_a.get_last_lr()


def test_reduce_lr_on_plateau_state_round_trip_with_infinite_best():
    opt_a, _ = _optimizers()
    sched_a = ours_sched.ReduceLROnPlateau(opt_a, patience=1)
    fresh = json.loads(json.dumps(sched_a.state_dict(), allow_nan=False))
    assert fresh["best"] == "inf"
    for m in METRICS[:12]:
        sched_a.step(m)
    saved = json.loads(json.dumps(sched_a.state_dict(), allow_nan=False))
    opt_b, _ = _optimizers()
    sched_b = ours_sched.ReduceLROnPlateau(opt_b, patience=1)
    sched_b.load_state_dict(saved)
    for m in METRICS[12:]:
        sched_a.step(m)
        sched_b.step(m)
        assert sched_b.get_last_lr() == sched_a.get_last_lr()
    sched_b.load_state_dict(fresh)
    assert sched_b.best == math.inf


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda o: ours_sched.StepLR(o, 0), "step_size must be a positive int, got 0"),
        (lambda o: ours_sched.CosineAnnealingLR(o, -1), "T_max must be > 0, got -1"),
        (lambda o: ours_sched.LinearWarmupCosine(o, 10, 10), "total_steps must be .* got 10"),
        (lambda o: ours_sched.LinearWarmupCosine(o, -1, 10), "warmup_steps .* got -1"),
        (lambda o: ours_sched.LinearWarmupCosine(o, 1, 10, start_factor=2.0),
         r"start_factor must be in \[0, 1\], got 2.0"),
        (lambda o: ours_sched.LinearWarmupCosine(o, 1, 10, min_lr=[0.1]), "expected 2 values"),
        (lambda o: ours_sched.ReduceLROnPlateau(o, factor=1.5), r"factor .* got 1.5"),
        (lambda o: ours_sched.ReduceLROnPlateau(o, mode="best"), "got 'best'"),
        (lambda o: ours_sched.ReduceLROnPlateau(o, threshold_mode="x"), "got 'x'"),
        (lambda o: ours_sched.ReduceLROnPlateau(o, patience=-1), "patience .* got -1"),
    ],
)
def test_invalid_scheduler_arguments_raise(make, match):
    opt, _ = _optimizers()
    with pytest.raises(ValueError, match=match):
        make(opt)


def test_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="needs an Optimizer, got list"):
        ours_sched.StepLR([], 3)
