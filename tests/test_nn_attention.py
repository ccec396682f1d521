"""MultiheadAttention against torch.nn.MultiheadAttention, and the attention functional's
masking contracts (fully masked rows, KV-cache alignment, dropout)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import scratchnn as sn
from scratchnn import nn
from scratchnn.nn import functional as F
from scratchnn.ops.attention import causal_mask

TOL = {np.float32: 2e-5, np.float64: 1e-10}
E, H, L, S, N = 8, 2, 4, 5, 3


def _pair(dtype=np.float64, **kw):
    """The same layer on both sides, with random weights (zero biases would hide bugs)."""
    rng = np.random.default_rng(0)
    ours = nn.MultiheadAttention(E, H, rng=rng, dtype=dtype, **kw)
    ref = torch.nn.MultiheadAttention(E, H, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype,
                                      **kw)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for p in ours.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.5
    ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    return ours, ref


def _inputs(dtype, batch_first=False, kdim=E, vdim=E, batched=True, seed=1):
    rng = np.random.default_rng(seed)

    def make(length, width):
        shape = (N, length, width) if batch_first else (length, N, width)
        return rng.standard_normal(shape if batched else (length, width)).astype(dtype)

    return make(L, E), make(S, kdim), make(S, vdim)


def _run(ours, ref, arrays, dtype, **kw):
    """Forward and backward of a random projection of output (and weights) on both sides."""
    xs = [sn.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    tkw = {k: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v
           for k, v in kw.items()}
    out, w = ours(*xs, **kw)
    tout, tw = ref(*ts, **tkw)
    tol = TOL[dtype]
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=tol, atol=tol)
    rng = np.random.default_rng(2)
    r = rng.standard_normal(out.shape).astype(dtype)
    loss, tloss = (out * r).sum(), (tout * torch.from_numpy(r)).sum()
    if kw.get("need_weights", True):
        np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=tol, atol=tol)
        rw = rng.standard_normal(w.shape).astype(dtype)
        loss, tloss = loss + (w * rw).sum(), tloss + (tw * torch.from_numpy(rw)).sum()
    else:
        assert w is None and tw is None
    loss.backward()
    tloss.backward()
    for i, (x, t) in enumerate(zip(xs, ts)):
        np.testing.assert_allclose(x.grad.data, t.grad.numpy(), rtol=tol, atol=tol,
                                   err_msg=f"grad of input {i}")
    for (name, p), tp in zip(ours.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=tol, atol=tol,
                                   err_msg=f"grad of {name}")
    return out


def _padding(n=N, s=S):
    """(N, S) key padding, True = ignore: sample i ignores its last i keys (none all-masked)."""
    return np.arange(s)[None, :] >= (s - np.arange(n))[:, None]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("need_weights, average", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_parity_key_padding_mask(dtype, need_weights, average, batch_first):
    ours, ref = _pair(dtype, batch_first=batch_first)
    _run(ours, ref, _inputs(dtype, batch_first), dtype, key_padding_mask=_padding(),
         need_weights=need_weights, average_attn_weights=average)


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("mask_kind", ["bool_2d", "float_2d", "bool_3d", "float_kpm"])
def test_mha_parity_attn_masks(need_weights, mask_kind):
    dtype = np.float64
    ours, ref = _pair(dtype)
    rng = np.random.default_rng(3)
    kw = {}
    if mask_kind == "bool_2d":
        kw["attn_mask"] = ~causal_mask(L, S, offset=S - L)  # True = not allowed
    elif mask_kind == "float_2d":
        kw["attn_mask"] = rng.standard_normal((L, S))
    elif mask_kind == "bool_3d":
        m = rng.random((N * H, L, S)) < 0.4
        m[..., 0] = False
        kw["attn_mask"] = m
    else:
        kw["key_padding_mask"] = np.where(_padding(), -np.inf, rng.standard_normal((N, S)))
        kw["attn_mask"] = np.where(causal_mask(L, S, offset=S - L), 0.0, -np.inf)
    _run(ours, ref, _inputs(dtype), dtype, need_weights=need_weights, **kw)


def test_mha_parity_is_causal_hint_self_attention():
    ours, ref = _pair(np.float64, batch_first=True)
    x = _inputs(np.float64, batch_first=True)[0]
    mask = ~causal_mask(L, L)
    _run(ours, ref, [x, x, x], np.float64, attn_mask=mask, is_causal=True, need_weights=False)
    # Without attn_mask (PyTorch insists on it as a hint) the causal mask is built here.
    x = sn.tensor(x, dtype=np.float64)
    out, _ = ours(x, x, x, is_causal=True, need_weights=False)
    out_ref, _ = ours(x, x, x, attn_mask=mask, need_weights=False)
    np.testing.assert_allclose(out.data, out_ref.data, rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_mha_parity_kdim_vdim_and_no_bias(bias):
    dtype = np.float64
    ours, ref = _pair(dtype, kdim=3, vdim=6, bias=bias)
    assert ours.in_proj_weight is None and ours.k_proj_weight.shape == (E, 3)
    _run(ours, ref, _inputs(dtype, kdim=3, vdim=6), dtype, key_padding_mask=_padding())


def test_mha_parity_unbatched():
    ours, ref = _pair(np.float64)
    _run(ours, ref, _inputs(np.float64, batched=False), np.float64,
         key_padding_mask=np.array([False, False, True, False, True]),
         average_attn_weights=False)


def test_mha_fully_masked_row_is_zero_without_warnings():
    ours, ref = _pair(np.float64)
    kpm = _padding()
    kpm[1] = True  # sample 1 may attend to nothing: PyTorch gives NaN there, we give zeros
    arrays = _inputs(np.float64)
    xs = [sn.tensor(a, dtype=np.float64, requires_grad=True) for a in arrays]
    for need_weights in (True, False):
        for x in xs:
            x.grad = None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out, w = ours(*xs, key_padding_mask=kpm, need_weights=need_weights)
            (out * out).sum().backward()
        # The attention output of sample 1 is zero, so its output is out_proj's bias.
        np.testing.assert_array_equal(out.data[:, 1], np.broadcast_to(ours.out_proj.bias.data,
                                                                      (L, E)))
        if need_weights:
            np.testing.assert_array_equal(w.data[1], 0.0)
        for x in xs:
            assert np.isfinite(x.grad.data).all()
        np.testing.assert_array_equal(xs[1].grad.data[:, 1], 0.0)  # masked keys: no gradient
        tout, _ = ref(*(torch.from_numpy(a) for a in arrays), key_padding_mask=torch.from_numpy(
            kpm), need_weights=need_weights)
        for i in (0, 2):  # the other samples still match PyTorch
            np.testing.assert_allclose(out.data[:, i], tout.detach().numpy()[:, i], rtol=1e-10,
                                       atol=1e-12)


def test_mha_dropout_train_vs_eval():
    rng_seed = 5
    layer = nn.MultiheadAttention(E, H, dropout=0.5, rng=np.random.default_rng(rng_seed))
    x = sn.tensor(_inputs(np.float32)[0])
    layer.eval()
    out_eval, w_eval = layer(x, x, x)
    plain = nn.MultiheadAttention(E, H, rng=np.random.default_rng(rng_seed))
    np.testing.assert_array_equal(out_eval.data, plain(x, x, x)[0].data)
    layer.train()
    _, w_train = layer(x, x, x, average_attn_weights=False)
    # Dropped weights are 0 and the kept ones are scaled by 1/(1 - p) = 2.
    w_full = layer.eval()(x, x, x, average_attn_weights=False)[1].data
    kept = w_train.data != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(w_train.data[kept], 2 * w_full[kept], rtol=1e-6)


def test_mha_errors():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    layer = nn.MultiheadAttention(E, H)
    x = sn.tensor(_inputs(np.float32)[0])
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        layer(x, x, x, key_padding_mask=np.zeros((N, L + 1), dtype=bool))
    with pytest.raises(ValueError, match="attn_mask must have shape"):
        layer(x, x, x, attn_mask=np.zeros((L, L + 1), dtype=bool))
    with pytest.raises(ValueError, match="expected key with last dim 8"):
        layer(x, x[..., :4], x)


# ----------------------------------------------------------------------------- functional
def test_sdpa_fully_masked_rows_are_zero_without_warnings():
    rng = np.random.default_rng(0)
    q, k, v = (sn.tensor(rng.standard_normal(s), requires_grad=True)
               for s in ((2, 3, 4), (2, 5, 4), (2, 5, 6)))
    mask = np.ones((2, 3, 5), dtype=bool)
    mask[0, 1] = False
    additive = np.where(mask, 0.0, -np.inf).astype(np.float32)
    for m in (mask, additive):
        for t in (q, k, v):
            t.grad = None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
            (out * out).sum().backward()
        np.testing.assert_array_equal(out.data[0, 1], 0.0)
        np.testing.assert_array_equal(q.grad.data[0, 1], 0.0)
        assert all(np.isfinite(t.grad.data).all() for t in (q, k, v))


def test_sdpa_kv_cache_mask_matches_full_causal_rows():
    """New queries after P cached positions (mask offset P) == the last rows of full causal."""
    rng = np.random.default_rng(1)
    q, k, v = (sn.tensor(rng.standard_normal((2, 2, 7, 4))) for _ in range(3))
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    new = F.scaled_dot_product_attention(q[:, :, 4:], k, v, attn_mask=causal_mask(3, 7, 4))
    np.testing.assert_allclose(new.data, full.data[:, :, 4:], rtol=1e-6, atol=1e-7)
    one = F.scaled_dot_product_attention(q[:, :, 6:], k, v)  # one new token: no mask needed
    np.testing.assert_allclose(one.data, full.data[:, :, 6:], rtol=1e-6, atol=1e-7)


def test_sdpa_dropout_uses_rng_and_keeps_float32():
    rng = np.random.default_rng(0)
    q, k, v = (sn.tensor(rng.standard_normal((2, 4, 3))) for _ in range(3))
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, rng=np.random.default_rng(1))
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, rng=np.random.default_rng(1))
    c = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    assert a.dtype == np.float32


def test_sdpa_errors():
    q = sn.tensor(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), bool), is_causal=True)
    with pytest.raises(ValueError, match="does not broadcast"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((4, 3), bool))
    with pytest.raises(ValueError, match="query dim 4 != key dim 3"):
        F.scaled_dot_product_attention(q, q[..., :3], q)
    with pytest.raises(TypeError, match="one dtype"):
        F.scaled_dot_product_attention(q, q.double(), q)
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.0)
