"""Fused scaled dot-product attention with a hand-written backward.

``softmax(q kᵀ · scale + mask) v`` is one graph node. Backward keeps only the attention
probabilities ``p`` (one L×S array per head) besides the inputs; everything else is recomputed.
With ``ds`` the gradient of the masked, scaled scores::

    dv = pᵀ g        dp = g vᵀ        ds = p ⊙ dp - p r        dq = scale · ds k
    dk = scale · dsᵀ q                r_i = Σ_j p_ij dp_ij

Masks follow PyTorch: a boolean mask is True where a query may attend, a float mask is added to
the scores; both broadcast against (..., L, S). A query whose keys are all masked gets a zero
output and a zero gradient (never NaN, and no NumPy warning). Dropout on the probabilities does
not store its mask: backward replays the generator from its saved state.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from scratchnn.autograd.function import Function
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops._operands import ensure_tensor
from scratchnn.random import resolve


def causal_mask(q_len: int, kv_len: int, offset: int = 0):
    """Boolean (q_len, kv_len) mask, True where key j <= query i + ``offset``.

    ``offset=0`` is PyTorch's ``is_causal`` (top-left aligned). For a KV cache holding ``P``
    earlier positions, ``offset=P`` (= kv_len - q_len) lets the new queries see every cached key
    and the new keys up to their own position (bottom-right aligned).
    """
    return xp.tri(q_len, kv_len, k=offset, dtype=bool)


def _scores(q, k, mask, scale):
    """Masked, scaled scores ``q kᵀ · scale + mask`` in a fresh (..., L, S) array."""
    s = q @ xp.swapaxes(k, -1, -2)  # (..., L, S)
    s *= s.dtype.type(scale)
    if mask is None:
        return s
    grows = np.broadcast_shapes(s.shape, mask.shape) != s.shape
    if mask.dtype == bool:
        if grows:
            return xp.where(mask, s, s.dtype.type(-np.inf))
        xp.copyto(s, s.dtype.type(-np.inf), where=~mask)
    elif grows:
        s = s + mask
    else:
        s += mask
    return s


def _softmax_(s, masked: bool = True):
    """Softmax over the last axis in place; rows that are all -inf become zeros (only a mask
    can make one: ``masked=False`` skips that care)."""
    m = s.max(axis=-1, keepdims=True)  # (..., L, 1)
    if masked:
        # A fully masked row has max -inf; shifting it by 0 instead keeps it at -inf (exp → 0)
        # rather than computing -inf - -inf = NaN.
        m[m == -np.inf] = 0
    s -= m
    xp.exp(s, out=s)
    d = s.sum(axis=-1, keepdims=True)  # (..., L, 1)
    if masked:
        d[d == 0] = 1  # a fully masked row sums to 0: leave it at 0
    s *= xp.reciprocal(d, out=d)
    return s


def _dropout_scale(gen: np.random.Generator, shape, p: float, dtype):
    """The dropout multiplier, 0 or 1/(1-p), drawn from ``gen`` (as ``nn.functional.dropout``)."""
    keep = gen.random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def _replay(state: dict, bit_generator_type) -> np.random.Generator:
    """A generator that draws what a generator in ``state`` would draw next."""
    gen = np.random.Generator(bit_generator_type())
    gen.bit_generator.state = state
    return gen


def _scores_backward(ds, q, k, scale, need_q: bool, need_k: bool, need_mask: bool):
    """Gradients of q, k and an additive mask from ``ds`` = dL/d(masked scores); may scale
    ``ds`` in place."""
    grad_mask = None
    if need_mask:
        grad_mask = ds.copy() if need_q or need_k else ds
    grad_q = grad_k = None
    if need_q or need_k:
        ds *= ds.dtype.type(scale)
        if need_q:
            grad_q = ds @ k  # (..., L, E)
        if need_k:
            grad_k = xp.swapaxes(ds, -1, -2) @ q  # (..., S, E)
    return grad_q, grad_k, grad_mask


class ScaledDotProductAttention(Function):
    """``dropout(softmax(q kᵀ · scale + mask)) v`` over the last two axes."""

    @staticmethod
    def forward(ctx, q, k, v, mask, scale, dropout_p, rng):
        p = _softmax_(_scores(q, k, mask, scale), mask is not None)  # (..., L, S)
        ctx.scale, ctx.dropout_p = scale, dropout_p
        if dropout_p:
            # The mask is not stored: backward replays the generator from this state.
            ctx.rng_state, ctx.bit_generator = rng.bit_generator.state, type(rng.bit_generator)
            out = (p * _dropout_scale(rng, p.shape, dropout_p, p.dtype)) @ v  # (..., L, Ev)
        else:
            out = p @ v  # (..., L, Ev)
        ctx.save_for_backward(q, k, v, p)
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, p = ctx.saved
        need_q, need_k, need_v, need_mask = ctx.needs_input_grad
        keep = None
        if ctx.dropout_p:
            gen = _replay(ctx.rng_state, ctx.bit_generator)
            keep = _dropout_scale(gen, p.shape, ctx.dropout_p, p.dtype)
        grad_v = None
        if need_v:
            pd = p if keep is None else p * keep
            grad_v = xp.swapaxes(pd, -1, -2) @ grad  # (..., S, Ev)
        if not (need_q or need_k or need_mask):
            return None, None, grad_v, None
        ds = grad @ xp.swapaxes(v, -1, -2)  # (..., L, S): dL/d(dropped p)
        if keep is not None:
            ds *= keep
        ds *= p
        # r_i = Σ_j p_ij dp_ij from the L×S products (not as g_i · out_i, FlashAttention's
        # shortcut), so that a saturated row (p one-hot) gets exactly zero gradient in float32.
        ds -= p * ds.sum(axis=-1, keepdims=True)
        grad_q, grad_k, grad_mask = _scores_backward(ds, q, k, ctx.scale, need_q, need_k,
                                                     need_mask)
        return grad_q, grad_k, grad_v, grad_mask


class AttentionWeights(Function):
    """``softmax(q kᵀ · scale + mask)``: the probabilities themselves, for callers that return
    them (``nn.MultiheadAttention(need_weights=True)``)."""

    @staticmethod
    def forward(ctx, q, k, mask, scale):
        p = _softmax_(_scores(q, k, mask, scale), mask is not None)  # (..., L, S)
        ctx.scale = scale
        ctx.save_for_backward(q, k, p)
        return p

    @staticmethod
    def backward(ctx, grad):
        q, k, p = ctx.saved
        need_q, need_k, need_mask = ctx.needs_input_grad
        ds = grad * p
        ds -= p * ds.sum(axis=-1, keepdims=True)
        return _scores_backward(ds, q, k, ctx.scale, need_q, need_k, need_mask)


# --------------------------------------------------------------------------- functional forms
def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> tuple[int, ...]:
    """Validate shapes and dtypes; returns the broadcast batch shape."""
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention: {name} must have shape (..., len, "
                             f"dim), got {tuple(t.shape)}")
        if t.dtype.kind != "f":
            raise TypeError(f"scaled_dot_product_attention: {name} must be floating point, "
                            f"got dtype {t.dtype}")
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"scaled_dot_product_attention: query, key and value must have one "
                        f"dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: query dim {q.shape[-1]} != key dim "
                         f"{k.shape[-1]} (query {tuple(q.shape)}, key {tuple(k.shape)})")
    if k.shape[-2] == 0:
        raise ValueError(f"scaled_dot_product_attention: key has no positions, shape "
                         f"{tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: key length {k.shape[-2]} != value "
                         f"length {v.shape[-2]} (key {tuple(k.shape)}, value {tuple(v.shape)})")
    batch = q.shape[:-2]
    if k.shape[:-2] == batch and v.shape[:-2] == batch:
        return batch  # the common case, without np.broadcast_shapes's cost
    try:
        return np.broadcast_shapes(batch, k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(f"scaled_dot_product_attention: batch dims do not broadcast: query "
                         f"{tuple(q.shape)}, key {tuple(k.shape)}, value "
                         f"{tuple(v.shape)}") from None


def _mask_operand(attn_mask, is_causal: bool, q: Tensor, weights_shape: tuple[int, ...]):
    """The mask as the op takes it: None, a bool array, or a float array/Tensor of q's dtype."""
    L, S = weights_shape[-2:]
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, "
                             "not both (for a KV cache pass causal_mask(L, S, offset=S - L))")
        return causal_mask(L, S)
    if attn_mask is None:
        return None
    if isinstance(attn_mask, Tensor):
        if attn_mask.dtype.kind == "f" and attn_mask.dtype != q.dtype:
            raise TypeError(f"scaled_dot_product_attention: attn_mask dtype {attn_mask.dtype} "
                            f"does not match query dtype {q.dtype}")
        mask = attn_mask if attn_mask.requires_grad else attn_mask.data
    else:
        mask = xp.asarray(attn_mask)
    kind = mask.dtype.kind
    if kind not in "bf":
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be bool (True = attend) "
                        f"or float (added to the scores), got dtype {mask.dtype}")
    if kind == "f" and not isinstance(mask, Tensor) and mask.dtype != q.dtype:
        mask = mask.astype(q.dtype)
    try:
        ok = np.broadcast_shapes(tuple(mask.shape), weights_shape) == weights_shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {tuple(mask.shape)} "
                         f"does not broadcast to the attention weights {weights_shape}")
    return mask


def _check_scale(scale, dim: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(dim) if dim else 1.0
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number or None, got {scale!r}")
    return float(scale)


def scaled_dot_product_attention(query, key, value, attn_mask=None, is_causal: bool = False,
                                 dropout_p: float = 0.0, scale: float | None = None,
                                 rng: np.random.Generator | None = None) -> Tensor:
    """Attention ``dropout(softmax(q kᵀ · scale + mask)) v``, fused, as in PyTorch.

    Args:
        query: (..., L, E).
        key: (..., S, E).
        value: (..., S, Ev). The batch dims of the three broadcast.
        attn_mask: bool (True = attend) or float (added to the scores), broadcastable to
            (..., L, S), e.g. a padding mask (N, 1, 1, S). A float mask Tensor that requires
            grad gets a gradient.
        is_causal: query i attends keys j <= i (top-left aligned when L != S, as in PyTorch).
            With a KV cache the new queries must see every cached key: pass
            ``attn_mask=causal_mask(L, S, offset=S - L)`` instead (or no mask when L == 1).
        dropout_p: dropout probability on the attention weights (pass 0 in evaluation).
        scale: score scale, 1/√E by default.
        rng: generator for the dropout mask (None → the default generator).

    Returns:
        (..., L, Ev). A query whose keys are all masked gets zeros.
    """
    q, k, v = ensure_tensor(query), ensure_tensor(key), ensure_tensor(value)
    batch = _check_qkv(q, k, v)
    weights_shape = (*batch, q.shape[-2], k.shape[-2])
    mask = _mask_operand(attn_mask, bool(is_causal), q, weights_shape)
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, numbers.Real) \
            or not 0 <= dropout_p < 1:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p!r}")
    dropout_p = float(dropout_p)
    return ScaledDotProductAttention.apply(
        q, k, v, mask, scale=_check_scale(scale, q.shape[-1]), dropout_p=dropout_p,
        rng=resolve(rng) if dropout_p else None,
    )


def attention_weights(query, key, attn_mask=None, is_causal: bool = False,
                      scale: float | None = None) -> Tensor:
    """``softmax(q kᵀ · scale + mask)`` (masks as in :func:`scaled_dot_product_attention`).

    Shape: query (..., L, E), key (..., S, E) → (..., L, S).
    """
    q, k = ensure_tensor(query), ensure_tensor(key)
    batch = _check_qkv(q, k, k)
    weights_shape = (*batch, q.shape[-2], k.shape[-2])
    mask = _mask_operand(attn_mask, bool(is_causal), q, weights_shape)
    return AttentionWeights.apply(q, k, mask, scale=_check_scale(scale, q.shape[-1]))
