"""Targeted tests of the autograd engine: graph lifetime, in-place checks, grad mode, depth,
broadcasting, dtype discipline and numerical stability at extreme inputs."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest

import scratchnn as sn


def f64(values, requires_grad=True):
    return sn.tensor(np.asarray(values, dtype=np.float64), dtype=np.float64,
                     requires_grad=requires_grad)


@contextlib.contextmanager
def strict_numerics():
    """Fail on any NumPy warning or floating-point overflow, division by zero or invalid op.

    Underflow is left alone: exp(-1000) == 0.0 is the exact rounded result that a stable
    sigmoid / softmax / softplus relies on, and NumPy never reports it by default.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            yield


# --------------------------------------------------------------------------- graph lifetime
def test_second_backward_through_freed_graph_raises():
    x = f64([1.0, 2.0, 3.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"already freed.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward_and_doubles_leaf_grads():
    x = f64([1.0, -2.0, 3.0])
    w = f64([0.5, 0.25, -1.0])
    y = (sn.exp(x) * w).sum()
    y.backward(retain_graph=True)
    first_x, first_w = x.grad.data.copy(), w.grad.data.copy()
    np.testing.assert_allclose(first_x, np.exp(x.data) * w.data)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * first_x)
    np.testing.assert_allclose(w.grad.data, 2 * first_w)


def test_leaf_grads_accumulate_across_backward_calls():
    x = f64([1.0, 2.0])
    (x * 2.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2.0 + 2 * x.data)
    x.zero_grad_()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0])


def test_shared_subexpression_gets_every_contribution():
    # b feeds the root directly and through a: a diamond whose order of inputs must not
    # let b's backward run before a's contribution to it has arrived.
    for b_first in (True, False):
        x = f64([0.5, -1.0])
        b = sn.exp(x)
        a = b * 2.0
        root = sn.add(b, a) if b_first else sn.add(a, b)
        root.backward(np.ones(2))
        np.testing.assert_allclose(x.grad.data, 3 * np.exp(x.data))


# --------------------------------------------------------------------------- in-place changes
def test_inplace_change_of_saved_input_raises_at_backward_naming_the_op():
    a, b = f64([1.0, 2.0]), f64([3.0, 4.0])
    y = sn.mul(a, b).sum()
    with sn.no_grad():
        a.add_(1.0)
    with pytest.raises(RuntimeError, match=r"saved for backward by Mul was modified in place"):
        y.backward()


def test_inplace_change_of_saved_output_raises_at_backward_naming_the_op():
    x = f64([1.0, 2.0])
    e = sn.exp(x)
    y = e.sum()
    with sn.no_grad():
        e.mul_(2.0)
    with pytest.raises(RuntimeError, match=r"saved for backward by Exp was modified in place"):
        y.backward()


def test_inplace_change_of_unsaved_input_is_fine():
    a, b = f64([1.0, 2.0]), f64([3.0, 4.0])
    y = sn.add(a, b).sum()  # Add saves nothing
    with sn.no_grad():
        a.add_(1.0)
    y.backward()
    np.testing.assert_allclose(a.grad.data, [1.0, 1.0])


def test_inplace_change_of_leaf_requiring_grad_outside_no_grad_raises():
    x = f64([1.0])
    with pytest.raises(RuntimeError, match="no_grad"):
        x.add_(1.0)


# --------------------------------------------------------------------------- grad mode
def test_no_grad_records_nothing():
    x = f64([1.0, 2.0])
    with sn.no_grad():
        y = sn.exp(x) * 2.0
        assert not sn.is_grad_enabled()
    assert sn.is_grad_enabled()
    assert not y.requires_grad
    assert y.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_as_decorator_restores_grad_mode_even_on_error():
    @sn.no_grad()
    def double(t):
        assert not sn.is_grad_enabled()
        return t * 2.0

    @sn.no_grad()
    def fail():
        raise ValueError("boom")

    x = f64([1.0])
    y = double(x)
    assert not y.requires_grad and y.grad_fn is None
    assert sn.is_grad_enabled()
    with pytest.raises(ValueError):
        fail()
    assert sn.is_grad_enabled()
    assert (x * 2.0).requires_grad


def test_enable_grad_inside_no_grad_records():
    x = f64([1.0])
    with sn.no_grad():
        with sn.enable_grad():
            y = x * 3.0
        z = x * 3.0
    assert y.requires_grad and not z.requires_grad


# --------------------------------------------------------------------------- depth
def test_deep_graph_backward_has_no_recursion_limit():
    x = f64([1.0, -2.0])
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0001**20_000] * 2, rtol=1e-10)


# --------------------------------------------------------------------------- broadcasting
def test_broadcast_gradients_sum_back_to_input_shapes():
    rng = np.random.default_rng(0)
    a = f64(rng.standard_normal((3, 1)))
    b = f64(rng.standard_normal((1, 4)))
    c = f64(rng.standard_normal(4))
    s = f64(rng.standard_normal(()))
    r = rng.standard_normal((3, 4))
    out = a * b + c - s
    out.backward(r)
    assert [t.grad.shape for t in (a, b, c, s)] == [(3, 1), (1, 4), (4,), ()]
    np.testing.assert_allclose(a.grad.data, (r * b.data).sum(1, keepdims=True))
    np.testing.assert_allclose(b.grad.data, (r * a.data).sum(0, keepdims=True))
    np.testing.assert_allclose(c.grad.data, r.sum(0))
    np.testing.assert_allclose(s.grad.data, -r.sum())


def test_zero_dim_results_are_arrays_that_take_inplace_ops():
    x = sn.tensor([1.0, 2.0])
    for t in (x.sum(), sn.exp(sn.tensor(1.0)), x[0], sn.matmul(x, x)):
        assert isinstance(t.data, np.ndarray) and t.shape == ()
        t.copy_(5.0)
        assert t.item() == 5.0


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("scalar", [1.5, np.float64(1.5), np.array(1.5), 2])
def test_float32_tensor_with_python_or_numpy_scalar_stays_float32(scalar):
    x = sn.tensor([1.0, 2.0], requires_grad=True)
    assert x.dtype == np.float32
    for y in (x + scalar, scalar + x, x * scalar, x - scalar, scalar / x, x**scalar,
              sn.maximum(x, scalar), sn.where(x.data > 1, x, scalar)):
        assert y.dtype == np.float32, y
    (x * scalar).sum().backward()
    assert x.grad.dtype == np.float32


def test_float32_and_float64_tensors_do_not_mix():
    x32 = sn.tensor([1.0, 2.0])
    x64 = sn.tensor([1.0, 2.0], dtype=np.float64)
    for op in (sn.add, sn.mul, sn.matmul, sn.maximum):
        with pytest.raises(TypeError, match="float32 and float64"):
            op(x32, x64)


def test_gradient_of_a_float32_leaf_is_float32_after_a_cast():
    x = sn.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * f64([2.0, 3.0], requires_grad=False)).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.data, [2.0, 3.0])


# --------------------------------------------------------------------------- stability
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_of_huge_logits_is_exact_and_silent(dtype):
    x = sn.tensor([1000.0, 0.0], dtype=dtype, requires_grad=True)
    with strict_numerics():
        p = sn.softmax(x)
        p.backward(np.array([1.0, -1.0], dtype=dtype))
    np.testing.assert_array_equal(p.data, [1.0, 0.0])
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])
    assert p.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_of_huge_logits_is_exact_and_silent(dtype):
    x = sn.tensor([[1e4, 0.0, -1e4], [1e30, -1e30, 0.0]], dtype=dtype, requires_grad=True)
    with strict_numerics():
        out = sn.log_softmax(x, axis=-1)
        out.backward(np.ones((2, 3), dtype=dtype))
    # Exactly the shifted logits: log(sum(exp(z))) is log(1) == 0.
    np.testing.assert_array_equal(out.data, x.data - x.data.max(axis=-1, keepdims=True))
    np.testing.assert_array_equal(x.grad.data, [[-2.0, 1.0, 1.0], [-2.0, 1.0, 1.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_at_plus_minus_1000_is_exact_and_silent(dtype):
    x = sn.tensor([-1000.0, 1000.0], dtype=dtype, requires_grad=True)
    with strict_numerics():
        y = sn.sigmoid(x)
        y.backward(np.ones(2, dtype=dtype))
    np.testing.assert_array_equal(y.data, [0.0, 1.0])
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_softplus_at_plus_minus_1000_is_exact_and_silent(dtype, beta):
    x = sn.tensor([-1000.0, 1000.0], dtype=dtype, requires_grad=True)
    with strict_numerics():
        y = sn.softplus(x, beta=beta)
        y.backward(np.ones(2, dtype=dtype))
    # log1p(exp(-1000 beta)) / beta is 1.4e-217 for beta = 0.5 in float64, 0 otherwise; the
    # gradient is sigmoid(beta x).
    bx = beta * np.array([-1000.0, 1000.0])
    softplus = np.logaddexp(0.0, bx) / beta
    sigmoid = np.exp(bx - np.logaddexp(0.0, bx))
    np.testing.assert_allclose(y.data, softplus.astype(dtype), rtol=1e-6, atol=0)
    np.testing.assert_allclose(x.grad.data, sigmoid.astype(dtype), rtol=1e-6, atol=0)


def test_concat_and_stack_refuse_mixed_float_dtypes():
    a = sn.tensor(np.ones(2), dtype=np.float32)
    b = sn.tensor(np.ones(2), dtype=np.float64)
    with pytest.raises(TypeError, match="one dtype"):
        sn.concat([a, b])
    with pytest.raises(TypeError, match="one dtype"):
        sn.stack([a, b])


def test_float32_normal_cdf_of_exact_gelu_is_within_3e7_of_erf():
    # float32 exact GELU computes Φ with Abramowitz & Stegun 7.1.26 (faster than SciPy's erf);
    # float64 keeps SciPy's erf. Both against a float64 reference on a dense grid.
    from scipy import special

    from scratchnn.ops.activation import _normal_cdf

    x = np.linspace(-30.0, 30.0, 600_001)
    exact = 0.5 * special.erfc(-x / np.sqrt(2))
    with strict_numerics():
        approx = _normal_cdf(x.astype(np.float32))
        full = _normal_cdf(x)
    assert approx.dtype == np.float32 and full.dtype == np.float64
    assert np.abs(approx - exact).max() <= 3e-7
    np.testing.assert_allclose(full, exact, rtol=1e-12, atol=0)
    # The lower tail is computed directly (no 1 - Φ cancellation), the upper one saturates.
    lower = (x < -2) & (x > -5)
    np.testing.assert_allclose(approx[lower], exact[lower], rtol=2e-3)
    assert approx[x <= -16].max() == 0.0 and approx[x >= 6].min() == 1.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exact_gelu_at_extreme_inputs_is_exact_and_silent(dtype):
    big = np.finfo(dtype).max
    x = sn.tensor([-big, -1e4, -40.0, 0.0, 40.0, 1e4, big], dtype=dtype, requires_grad=True)
    with strict_numerics():
        y = sn.gelu(x)
        y.backward(np.ones(7, dtype=dtype))
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 0.0, 0.0, 40.0, 1e4, big])
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0])
