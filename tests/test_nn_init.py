"""nn.init: statistics on big tensors, gains and fans against PyTorch, in-place contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import scratchnn as sn
from scratchnn import nn
from scratchnn.nn import init


def _param(*shape, dtype=np.float32):
    return nn.Parameter(np.zeros(shape, dtype=dtype), dtype=dtype)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize(
    "nonlinearity,param",
    [("linear", None), ("conv2d", None), ("conv_transpose1d", None), ("sigmoid", None),
     ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
     ("leaky_relu", math.sqrt(5)), ("selu", None)],
)
def test_calculate_gain_matches_torch(nonlinearity, param):
    expected = torch.nn.init.calculate_gain(nonlinearity, param)
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("shape", [(7, 3), (16, 8, 3), (32, 4, 3, 5), (2, 3, 1, 2, 2)])
def test_fans_match_torch(shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init._calculate_fan_in_and_fan_out(np.empty(shape)) == expected


def test_xavier_uniform_bounds_and_std():
    w = init.xavier_uniform_(_param(600, 400), gain=2.0, rng=_rng())
    bound = 2.0 * math.sqrt(6 / (600 + 400))
    assert np.abs(w.data).max() <= bound
    assert np.abs(w.data).max() > 0.999 * bound  # fills the whole interval
    assert w.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert abs(w.data.mean()) < 0.01 * bound


def test_xavier_normal_std():
    w = init.xavier_normal_(_param(300, 500), rng=_rng())
    assert w.data.std() == pytest.approx(math.sqrt(2 / 800), rel=0.01)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0.0), ("leaky_relu", 0.2),
                                            ("leaky_relu", 0.0), ("tanh", 0.0)])
def test_kaiming_normal_std(mode, nonlinearity, a):
    w = init.kaiming_normal_(_param(128, 64, 3, 3), a=a, mode=mode,
                             nonlinearity=nonlinearity, rng=_rng())
    fan = 64 * 9 if mode == "fan_in" else 128 * 9
    gain = torch.nn.init.calculate_gain(nonlinearity, a)
    assert w.data.std() == pytest.approx(gain / math.sqrt(fan), rel=0.01)
    assert abs(w.data.mean()) < 0.01 * gain / math.sqrt(fan)


@pytest.mark.parametrize("mode,fan", [("fan_in", 300), ("fan_out", 700)])
def test_kaiming_uniform_bound(mode, fan):
    w = init.kaiming_uniform_(_param(700, 300), mode=mode, nonlinearity="relu", rng=_rng())
    bound = math.sqrt(2) * math.sqrt(3 / fan)
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.999 * bound
    assert w.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)


@pytest.mark.parametrize("shape", [(50, 200), (200, 50), (64, 64), (16, 4, 3, 3)])
def test_orthogonal(shape):
    gain = 1.5
    w = init.orthogonal_(_param(*shape, dtype=np.float64), gain=gain, rng=_rng())
    flat = w.data.reshape(shape[0], -1)
    rows, cols = flat.shape
    gram = flat @ flat.T if rows <= cols else flat.T @ flat
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-10)


def test_trunc_normal_within_bounds_with_truncnorm_stats():
    mean, std, a, b = 0.5, 2.0, -1.0, 3.0
    w = init.trunc_normal_(_param(1000, 500), mean, std, a, b, rng=_rng())
    assert w.data.min() >= a and w.data.max() <= b
    dist = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert w.data.mean() == pytest.approx(dist.mean(), abs=0.01)
    assert w.data.std() == pytest.approx(dist.std(), rel=0.01)
    # Far in a tail (no rejection loop to stall) every value still lands in [a, b].
    tail = init.trunc_normal_(_param(1000), 0.0, 1.0, 6.0, 7.0, rng=_rng())
    assert tail.data.min() >= 6.0 and tail.data.max() <= 7.0


def test_normal_uniform_constant():
    n = init.normal_(_param(1000, 1000), mean=3.0, std=0.5, rng=_rng())
    assert n.data.mean() == pytest.approx(3.0, abs=0.005)
    assert n.data.std() == pytest.approx(0.5, rel=0.01)
    u = init.uniform_(_param(1000, 1000), -2.0, 4.0, rng=_rng())
    assert u.data.min() >= -2.0 and u.data.max() <= 4.0
    assert u.data.mean() == pytest.approx(1.0, abs=0.01)
    np.testing.assert_array_equal(init.constant_(_param(3), 0.25).data, [0.25] * 3)
    np.testing.assert_array_equal(init.ones_(_param(2)).data, [1.0, 1.0])
    np.testing.assert_array_equal(init.zeros_(init.ones_(_param(2))).data, [0.0, 0.0])


@pytest.mark.parametrize(
    "fn",
    [lambda t, r: init.normal_(t, rng=r), lambda t, r: init.uniform_(t, rng=r),
     lambda t, r: init.xavier_uniform_(t, rng=r), lambda t, r: init.xavier_normal_(t, rng=r),
     lambda t, r: init.kaiming_uniform_(t, rng=r), lambda t, r: init.kaiming_normal_(t, rng=r),
     lambda t, r: init.orthogonal_(t, rng=r), lambda t, r: init.trunc_normal_(t, rng=r)],
)
def test_reproducible_in_place_and_dtype_kept(fn):
    a, b, c = _param(8, 6), _param(8, 6), _param(8, 6, dtype=np.float64)
    array, version = a.data, a._version
    assert fn(a, _rng(5)) is a
    assert a.data is array and a._version > version  # in place, version bumped
    fn(b, _rng(5))
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(fn(b, _rng(6)).data, a.data)
    assert fn(c, _rng(5)).dtype == np.float64
    sn.manual_seed(3)
    d = fn(_param(8, 6), None).data.copy()
    sn.manual_seed(3)
    np.testing.assert_array_equal(fn(_param(8, 6), None).data, d)


def test_init_does_not_record_a_graph():
    w = _param(3, 3)
    init.normal_(w, rng=_rng())
    assert w.is_leaf and w.requires_grad and w.grad is None


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: init.kaiming_normal_(_param(3, 3), mode="fan_avg"), "fan_avg"),
        (lambda: init.kaiming_uniform_(_param(3, 3), nonlinearity="swish"), "swish"),
        (lambda: init.calculate_gain("leaky_relu", "big"), "big"),
        (lambda: init.normal_(_param(3), std=-1.0), "-1.0"),
        (lambda: init.trunc_normal_(_param(3), std=-0.5), "-0.5"),
        (lambda: init.trunc_normal_(_param(3), a=2.0, b=1.0), "a=2.0, b=1.0"),
        (lambda: init.trunc_normal_(_param(3), a=1.0, b=1.0), "a=1.0, b=1.0"),
        (lambda: init.uniform_(_param(3), 1.0, 0.0), "a=1.0, b=0.0"),
        (lambda: init.xavier_uniform_(_param(5)), r"\(5,\)"),
        (lambda: init.orthogonal_(_param(5)), r"\(5,\)"),
    ],
)
def test_bad_arguments_name_the_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()
