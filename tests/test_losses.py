"""Losses beyond the op case table (tests/op_cases_nn.py): modules, stability at extreme
inputs without warnings, dtype, and the argument errors."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import scratchnn as sn
import scratchnn.nn as nn
import scratchnn.nn.functional as F

RNG = np.random.default_rng(1234)

N, C = 6, 4


def _logits(shape=(N, C)):
    return RNG.normal(size=shape) * 2


def _labels(shape=(N,), ignore=False):
    y = RNG.integers(0, C, size=shape)
    if ignore:
        y.flat[::3] = -100
    return y


WEIGHT = RNG.random(C) + 0.5


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


SAME_SHAPE_LOSSES = [
    ("mse_loss", nn.MSELoss),
    ("l1_loss", nn.L1Loss),
    ("huber_loss", nn.HuberLoss),
    ("binary_cross_entropy", nn.BCELoss),
    ("binary_cross_entropy_with_logits", nn.BCEWithLogitsLoss),
]


@pytest.mark.parametrize(("name", "module"), SAME_SHAPE_LOSSES,
                         ids=[name for name, _ in SAME_SHAPE_LOSSES])
@pytest.mark.parametrize(("pred_shape", "target_shape"), [((6, 1), (6,)), ((6,), (6, 1))])
def test_every_same_shape_loss_refuses_to_broadcast(name, module, pred_shape, target_shape):
    # Probabilities in (0, 1), so binary_cross_entropy's range check cannot be what fails.
    pred = np.full(pred_shape, 0.25, dtype=np.float32)
    target = np.ones(target_shape, dtype=np.float32)
    message = (rf"^{name}: prediction shape {re.escape(str(pred_shape))} does not match target "
               rf"shape {re.escape(str(target_shape))} \(no broadcasting in losses\)")
    with pytest.raises(ValueError, match=message):
        getattr(F, name)(sn.tensor(pred), sn.tensor(target))
    with pytest.raises(ValueError, match=message):
        module()(sn.tensor(pred), sn.tensor(target))
    # The same values in matching shapes are accepted.
    loss = getattr(F, name)(sn.tensor(pred), sn.tensor(target.reshape(pred_shape)))
    assert loss.shape == () and np.isfinite(loss.item())


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
