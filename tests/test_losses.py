"""Losses: gradient checks, PyTorch parity (forward and backward), stability, argument errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import scratchnn as sn
import scratchnn.nn as nn
import scratchnn.nn.functional as F
from gradcheck import gradcheck

RNG = np.random.default_rng(1234)

# (name, scratchnn fn, torch fn, input maker) — inputs: (arrays, differentiable flags).
N, C = 6, 4


def _logits(shape=(N, C)):
    return RNG.normal(size=shape) * 2


def _labels(shape=(N,), ignore=False):
    y = RNG.integers(0, C, size=shape)
    if ignore:
        y.flat[::3] = -100
    return y


def _probs(shape=(N, C)):
    p = RNG.random(shape) + 0.1
    return p / p.sum(axis=1, keepdims=True)


WEIGHT = RNG.random(C) + 0.5

CASES = [
    ("ce_mean", lambda z, y: F.cross_entropy(z, y), lambda z, y: TF.cross_entropy(z, y),
     lambda: [_logits(), _labels()]),
    ("ce_sum", lambda z, y: F.cross_entropy(z, y, reduction="sum"),
     lambda z, y: TF.cross_entropy(z, y, reduction="sum"), lambda: [_logits(), _labels()]),
    ("ce_none", lambda z, y: F.cross_entropy(z, y, reduction="none"),
     lambda z, y: TF.cross_entropy(z, y, reduction="none"), lambda: [_logits(), _labels()]),
    ("ce_weight_ignore", lambda z, y: F.cross_entropy(z, y, weight=WEIGHT),
     lambda z, y: TF.cross_entropy(z, y, weight=torch.tensor(WEIGHT, dtype=z.dtype)),
     lambda: [_logits(), _labels(ignore=True)]),
    ("ce_smoothing", lambda z, y: F.cross_entropy(z, y, label_smoothing=0.2),
     lambda z, y: TF.cross_entropy(z, y, label_smoothing=0.2), lambda: [_logits(), _labels()]),
    ("ce_weight_smoothing_ignore",
     lambda z, y: F.cross_entropy(z, y, weight=WEIGHT, label_smoothing=0.1),
     lambda z, y: TF.cross_entropy(z, y, weight=torch.tensor(WEIGHT, dtype=z.dtype),
                                   label_smoothing=0.1),
     lambda: [_logits(), _labels(ignore=True)]),
    ("ce_smoothing_none_ignore",
     lambda z, y: F.cross_entropy(z, y, label_smoothing=0.3, reduction="none"),
     lambda z, y: TF.cross_entropy(z, y, label_smoothing=0.3, reduction="none"),
     lambda: [_logits(), _labels(ignore=True)]),
    ("ce_spatial", lambda z, y: F.cross_entropy(z, y, weight=WEIGHT),
     lambda z, y: TF.cross_entropy(z, y, weight=torch.tensor(WEIGHT, dtype=z.dtype)),
     lambda: [_logits((3, C, 2, 5)), _labels((3, 2, 5))]),
    ("ce_probs", lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1),
     lambda z, t: TF.cross_entropy(z, t, label_smoothing=0.1), lambda: [_logits(), _probs()]),
    ("ce_unbatched", lambda z, y: F.cross_entropy(z, y), lambda z, y: TF.cross_entropy(z, y),
     lambda: [_logits((C,)), np.array(2)]),
    ("nll", lambda z, y: F.nll_loss(sn.log_softmax(z, 1), y, weight=WEIGHT),
     lambda z, y: TF.nll_loss(TF.log_softmax(z, 1), y, weight=torch.tensor(WEIGHT, dtype=z.dtype)),
     lambda: [_logits(), _labels(ignore=True)]),
    ("nll_none", lambda z, y: F.nll_loss(z, y, reduction="none"),
     lambda z, y: TF.nll_loss(z, y, reduction="none"), lambda: [_logits(), _labels()]),
    ("mse", F.mse_loss, TF.mse_loss, lambda: [_logits(), _logits()]),
    ("mse_sum", lambda a, b: F.mse_loss(a, b, "sum"),
     lambda a, b: TF.mse_loss(a, b, reduction="sum"), lambda: [_logits(), _logits()]),
    ("l1", F.l1_loss, TF.l1_loss, lambda: [_logits(), _logits() + 0.05]),
    ("huber", lambda a, b: F.huber_loss(a, b, delta=0.7),
     lambda a, b: TF.huber_loss(a, b, delta=0.7), lambda: [_logits(), _logits()]),
    ("bce", F.binary_cross_entropy, TF.binary_cross_entropy,
     lambda: [RNG.uniform(0.05, 0.95, (N, 3)), RNG.random((N, 3))]),
    ("bce_weight_none", lambda p, y: F.binary_cross_entropy(p, y, np.arange(3.0), "none"),
     lambda p, y: TF.binary_cross_entropy(p, y, torch.arange(3.0, dtype=p.dtype), reduction="none"),
     lambda: [RNG.uniform(0.05, 0.95, (N, 3)), RNG.integers(0, 2, (N, 3)).astype(float)]),
    ("bce_logits", F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
     lambda: [_logits((N, 3)) * 3, RNG.random((N, 3))]),
    ("bce_logits_pos_weight",
     lambda z, y: F.binary_cross_entropy_with_logits(z, y, pos_weight=np.array([0.5, 2.0, 3.0])),
     lambda z, y: TF.binary_cross_entropy_with_logits(
         z, y, pos_weight=torch.tensor([0.5, 2.0, 3.0], dtype=z.dtype)),
     lambda: [_logits((N, 3)), RNG.integers(0, 2, (N, 3)).astype(float)]),
]
IDS = [c[0] for c in CASES]


def _inputs(make):
    arrays = make()
    return arrays, [a.dtype.kind == "f" and i == 0 for i, a in enumerate(arrays)]


@pytest.mark.parametrize("name, fn, _tfn, make", CASES, ids=IDS)
def test_gradcheck(name, fn, _tfn, make):
    arrays, diff = _inputs(make)
    gradcheck(fn, arrays, diff, np.random.default_rng(0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, fn, tfn, make", CASES, ids=IDS)
def test_torch_parity(name, fn, tfn, make, dtype):
    arrays, _ = _inputs(make)
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    x = sn.tensor(arrays[0], dtype=dtype, requires_grad=True)
    rest = [sn.tensor(a, dtype=a.dtype) for a in arrays[1:]]
    out = fn(x, *rest)
    xt = torch.tensor(arrays[0], requires_grad=True)
    out_t = tfn(xt, *[torch.tensor(a) for a in arrays[1:]])
    r = np.random.default_rng(5).standard_normal(out.shape).astype(dtype)
    (out * sn.tensor(r, dtype=dtype)).sum().backward()
    (out_t * torch.tensor(r)).sum().backward()
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    assert out.dtype == dtype and x.grad.dtype == dtype
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), **tol)


def test_loss_modules_match_functional():
    z, y = _logits(), _labels()
    module = nn.CrossEntropyLoss(weight=WEIGHT, label_smoothing=0.1)
    expected = F.cross_entropy(z, y, weight=WEIGHT, label_smoothing=0.1)
    np.testing.assert_allclose(module(sn.tensor(z), sn.tensor(y)).data, expected.data)
    a, b = _logits(), _logits()
    np.testing.assert_allclose(nn.MSELoss()(sn.tensor(a), sn.tensor(b)).data,
                               F.mse_loss(sn.tensor(a), sn.tensor(b)).data)


# ----------------------------------------------------------------- extreme inputs


def test_cross_entropy_exact_for_huge_logits():
    z = sn.tensor([[1e30, 0.0, -1e30], [0.0, 1000.0, 0.0]], requires_grad=True)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        loss = F.cross_entropy(z, sn.tensor([1, 1]), reduction="none")
        loss.sum().backward()
    np.testing.assert_allclose(loss.data, [1e30, 0.0], rtol=1e-6)
    assert np.isfinite(z.grad.data).all()
    np.testing.assert_allclose(z.grad.data, [[1, -1, 0], [0, 0, 0]], atol=1e-6)


def test_bce_with_logits_stable_at_extremes():
    z = sn.tensor([1000.0, -1000.0, 1000.0, -1000.0], requires_grad=True)
    y = sn.tensor([1.0, 0.0, 0.0, 1.0])
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        loss = F.binary_cross_entropy_with_logits(z, y, reduction="none")
        loss.sum().backward()
    np.testing.assert_allclose(loss.data, [0.0, 0.0, 1000.0, 1000.0])
    np.testing.assert_allclose(z.grad.data, [0.0, 0.0, 1.0, -1.0])


def test_bce_clamps_log_at_minus_100():
    p = sn.tensor([0.0, 1.0, 1.0], requires_grad=True)
    y = sn.tensor([1.0, 0.0, 1.0])
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        loss = F.binary_cross_entropy(p, y, reduction="none")
        loss.sum().backward()
    expected = TF.binary_cross_entropy(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([1.0, 0, 1]),
                                       reduction="none")
    np.testing.assert_allclose(loss.data, expected.numpy())
    np.testing.assert_allclose(loss.data, [100.0, 100.0, 0.0])
    assert np.isfinite(p.grad.data).all()


def test_all_ignored_rows_give_zero_not_nan():
    z = sn.tensor(_logits(), requires_grad=True)
    loss = F.cross_entropy(z, sn.tensor(np.full(N, -100)))
    loss.backward()
    assert loss.item() == 0.0
    assert not z.grad.data.any()


def test_float32_stays_float32_with_float64_weights():
    z = sn.tensor(_logits(), requires_grad=True)
    loss = F.cross_entropy(z, sn.tensor(_labels()), weight=WEIGHT)  # WEIGHT is float64
    loss.backward()
    assert loss.dtype == np.float32 and z.grad.dtype == np.float32


# ----------------------------------------------------------------- argument errors


def test_prediction_n1_against_target_n_raises():
    with pytest.raises(ValueError, match=r"\(6, 1\).*\(6,\)"):
        F.mse_loss(sn.tensor(np.zeros((6, 1))), sn.tensor(np.zeros(6)))


def test_integer_labels_to_mse_hint_one_hot():
    with pytest.raises(ValueError, match="one-hot"):
        F.mse_loss(sn.tensor(np.zeros((6, 3))), sn.tensor(np.array([0, 1, 2, 0, 1, 2])))


def test_class_index_out_of_range_names_range():
    with pytest.raises(ValueError, match=r"class index 7.*0\.\.3"):
        F.cross_entropy(sn.tensor(_logits()), sn.tensor(np.array([0, 1, 7, 0, 1, 2])))
    with pytest.raises(ValueError, match=r"class index -1"):
        F.cross_entropy(sn.tensor(_logits()), sn.tensor(np.array([0, 1, -1, 0, 1, 2])))


def test_target_shape_mismatch_for_cross_entropy():
    with pytest.raises(ValueError, match=r"expected target shape \(6,\)"):
        F.cross_entropy(sn.tensor(_logits()), sn.tensor(np.zeros((6, 1), dtype=np.int64)))


def test_bad_reduction_and_smoothing():
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(sn.tensor([1.0]), sn.tensor([1.0]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(sn.tensor(_logits()), sn.tensor(_labels()), label_smoothing=1.5)


def test_bce_rejects_values_outside_unit_interval():
    with pytest.raises(ValueError, match="probabilities"):
        F.binary_cross_entropy(sn.tensor([1.5]), sn.tensor([1.0]))


def test_one_hot():
    out = F.one_hot(np.array([2, 0, 1]), 4, dtype=np.float32)
    np.testing.assert_array_equal(out.data, np.eye(4, dtype=np.float32)[[2, 0, 1]])
    assert F.one_hot(np.array([1, 2])).dtype == np.int64
    with pytest.raises(ValueError, match="class index 4"):
        F.one_hot(np.array([4]), 3)
