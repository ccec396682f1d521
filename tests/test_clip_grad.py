"""Gradient clipping and parameter flattening against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import scratchnn as sn
from scratchnn.nn.parameter import Parameter
from scratchnn.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    parameters_to_vector,
    vector_to_parameters,
)

SHAPES = [(4, 3), (3,), (2, 2, 5)]


def _pair(grads, dtype):
    """Our parameters and torch's, with the same gradients (None where a grad is None)."""
    ours, theirs = [], []
    for g, shape in zip(grads, SHAPES):
        p, q = Parameter(np.zeros(shape, dtype)), torch.nn.Parameter(torch.zeros(shape))
        q.data = q.data.to(torch.float64 if dtype == np.float64 else torch.float32)
        if g is not None:
            p.grad = sn.Tensor(g.astype(dtype), dtype=dtype)
            q.grad = torch.from_numpy(g.astype(dtype))
        ours.append(p)
        theirs.append(q)
    return ours, theirs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(dtype, norm_type, max_norm):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s) * 2 for s in SHAPES]
    grads[1] = None  # a parameter without a gradient is skipped
    ours, theirs = _pair(grads, dtype)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    assert isinstance(total, float)
    assert total == pytest.approx(expected.item(), rel=rtol)
    for p, q in zip(ours, theirs):
        if q.grad is None:
            assert p.grad is None
            continue
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=rtol, atol=1e-12)
    if max_norm < total:  # clipped: the new norm is max_norm (up to the 1e-6 guard)
        assert clip_grad_norm_(ours, max_norm, norm_type) == pytest.approx(max_norm, rel=1e-4)


def test_clip_grad_norm_nonfinite():
    grads = [np.ones(s) for s in SHAPES]
    grads[0][0, 0] = np.nan
    ours, theirs = _pair(grads, np.float64)
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_(ours, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert math.isnan(total) and math.isnan(expected.item())
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.data, q.grad.numpy())  # NaN where torch has NaN


def test_clip_grad_norm_no_grads_and_bad_arguments():
    p = Parameter(np.zeros(3))
    assert clip_grad_norm_([p], 1.0) == 0.0
    assert clip_grad_norm_(p, 1.0) == 0.0  # a single tensor is accepted
    with pytest.raises(ValueError, match="max_norm must be >= 0, got -1"):
        clip_grad_norm_([p], -1)
    with pytest.raises(ValueError, match="norm_type must be > 0 or inf, got 0.0"):
        clip_grad_norm_([p], 1.0, norm_type=0)


def test_clip_grad_value_matches_torch():
    rng = np.random.default_rng(1)
    ours, theirs = _pair([rng.standard_normal(s) * 2 for s in SHAPES], np.float32)
    clip_grad_value_(ours, 0.7)
    torch.nn.utils.clip_grad_value_(theirs, 0.7)
    for p, q in zip(ours, theirs):
        assert p.grad.dtype == np.float32
        np.testing.assert_array_equal(p.grad.data, q.grad.numpy())
    assert max(np.abs(p.grad.data).max() for p in ours) == np.float32(0.7)
    with pytest.raises(ValueError, match="clip_value must be >= 0, got -0.1"):
        clip_grad_value_(ours, -0.1)


def test_parameters_to_vector_round_trip():
    rng = np.random.default_rng(2)
    params = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    vec = parameters_to_vector(params)
    expected = torch.nn.utils.parameters_to_vector([torch.from_numpy(p.data) for p in params])
    np.testing.assert_array_equal(vec.data, expected.numpy())
    assert vec.dtype == np.float32 and not vec.requires_grad
    vector_to_parameters(vec * 2, params)
    np.testing.assert_array_equal(parameters_to_vector(params).data, vec.data * 2)
    assert all(p._version == 1 for p in params)
    with pytest.raises(ValueError, match="expected a 1-D vector of 35 elements, got shape"):
        vector_to_parameters(np.zeros(3), params)
