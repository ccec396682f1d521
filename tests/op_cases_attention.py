"""Op cases for attention; part of the one case table (``op_cases.CASES``).

``scaled_dot_product_attention`` against ``torch.nn.functional.scaled_dot_product_attention``:
causal (L == S and L != S), boolean and additive masks (padding masks broadcast over heads and
queries, a differentiable additive mask), fully masked rows (zeros on both sides), broadcast
batch/head dims, an explicit scale, large scores, KV-cache alignment and dropout (the PyTorch
side replays the same mask from the same seed).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as TF

import scratchnn.nn.functional as F
from op_cases import OpCase, case, const, normal
from scratchnn.ops.attention import attention_weights, causal_mask


def _sdpa(**kw):
    """Both sides of one attention call with the same keyword arguments."""
    return (lambda q, k, v, *m: F.scaled_dot_product_attention(q, k, v, *m, **kw),
            lambda q, k, v, *m: TF.scaled_dot_product_attention(q, k, v, *m, **kw))


def _bool_mask(shape, p_keep=0.6, full_row=None):
    """True = attend; every row keeps its last key unless it is ``full_row`` (all masked)."""

    def make(rng):
        m = rng.random(shape) < p_keep
        m[..., -1] = True
        if full_row is not None:
            m[..., full_row, :] = False
        return m

    return make


def _additive_mask(shape, full_row=None):
    def make(rng):
        m = rng.standard_normal(shape)
        m[rng.random(shape) < 0.3] = -np.inf
        m[..., 0] = 0.5
        if full_row is not None:
            m[..., full_row, :] = -np.inf
        return m

    return make


def _padding_mask(n, s):
    """(N, 1, 1, S) key padding as an attend-mask: sample i keeps its first S - i keys."""
    return lambda rng: (np.arange(s)[None, :] < (s - np.arange(n))[:, None])[:, None, None, :]


def _torch_dropout_attention(q, k, v, p, seed):
    """Reference: softmax(q kᵀ/√E) · mask/(1-p) @ v with the mask scratchnn draws from seed."""
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    keep = np.random.default_rng(seed).random(tuple(w.shape), dtype=np.float32) >= p
    return (w * torch.from_numpy(keep.astype(np.float64)).to(q.dtype) / (1 - p)) @ v


def _sdpa_cases() -> list[OpCase]:
    q, k, v = normal((2, 4, 3)), normal((2, 5, 3)), normal((2, 5, 2))
    qh, kh, vh = normal((2, 2, 4, 3)), normal((2, 2, 4, 3)), normal((2, 2, 4, 3))
    return [
        case("sdpa_basic_L4_S5", *_sdpa(), q, k, v),
        case("sdpa_unbatched", *_sdpa(), normal((3, 4)), normal((5, 4)), normal((5, 2))),
        case("sdpa_causal_square", *_sdpa(is_causal=True), qh, kh, vh),
        # L != S: query i sees keys 0..i (top-left alignment, as in PyTorch).
        case("sdpa_causal_L3_S5", *_sdpa(is_causal=True), normal((2, 3, 4)), normal((2, 5, 4)),
             normal((2, 5, 3))),
        case("sdpa_causal_L5_S3", *_sdpa(is_causal=True), normal((2, 5, 4)), normal((2, 3, 4)),
             normal((2, 3, 3))),
        case("sdpa_scale", *_sdpa(scale=0.3), q, k, v),
        case("sdpa_bool_mask_L_S", *_sdpa(), q, k, v, _bool_mask((4, 5))),
        case("sdpa_bool_padding_mask", *_sdpa(), normal((3, 2, 4, 3)), normal((3, 2, 5, 3)),
             normal((3, 2, 5, 2)), _padding_mask(3, 5)),
        case("sdpa_additive_mask", *_sdpa(), q, k, v, _additive_mask((2, 4, 5)),
             differentiable=(True, True, True, False)),
        # A differentiable additive mask (an attention bias) broadcast over the batch.
        case("sdpa_additive_bias_grad", *_sdpa(), q, k, v, normal((4, 5))),
        case("sdpa_fully_masked_row_bool", *_sdpa(), q, k, v, _bool_mask((4, 5), full_row=1)),
        case("sdpa_fully_masked_row_additive", *_sdpa(), q, k, v,
             _additive_mask((4, 5), full_row=2), differentiable=(True, True, True, False)),
        case("sdpa_all_rows_masked", *_sdpa(), normal((1, 2, 3)), normal((1, 3, 3)),
             normal((1, 3, 2)), const(np.zeros((2, 3), dtype=bool), dtype=bool)),
        # Batch and head dims broadcast between q, k, v and the mask.
        case("sdpa_broadcast_batch_heads", *_sdpa(), normal((2, 3, 4, 3)), normal((1, 3, 5, 3)),
             normal((3, 5, 2)), _bool_mask((2, 1, 4, 5))),
        case("sdpa_broadcast_query", *_sdpa(), normal((1, 4, 3)), normal((3, 5, 3)),
             normal((3, 5, 2))),
        case("sdpa_large_scores", *_sdpa(), normal((2, 4, 3), 30.0), normal((2, 5, 3), 30.0),
             v, gradcheck=False),
        # KV cache: 2 new queries after 3 cached keys see every cached key.
        case("sdpa_kv_cache_mask", *_sdpa(), normal((2, 2, 3)), normal((2, 5, 3)),
             normal((2, 5, 2)), lambda rng: causal_mask(2, 5, offset=3)),
        case("sdpa_dropout",
             lambda q, k, v: F.scaled_dot_product_attention(
                 q, k, v, dropout_p=0.4, rng=np.random.default_rng(7)),
             lambda q, k, v: _torch_dropout_attention(q, k, v, 0.4, 7), qh, kh, vh),
    ]


def _torch_weights(q, k, mask=None, causal=False):
    """PyTorch's attention probabilities: its attention applied to the identity as values."""
    eye = torch.eye(k.shape[-2], dtype=q.dtype)
    return TF.scaled_dot_product_attention(q, k, eye, mask, is_causal=causal)


def _attention_weights_cases() -> list[OpCase]:
    return [
        case("attention_weights_causal", lambda q, k: attention_weights(q, k, is_causal=True),
             lambda q, k: _torch_weights(q, k, causal=True), normal((2, 4, 3)),
             normal((2, 4, 3))),
        case("attention_weights_bool_mask", attention_weights, _torch_weights,
             normal((2, 4, 3)), normal((2, 5, 3)), _bool_mask((4, 5), full_row=0)),
        case("attention_weights_additive_grad", attention_weights, _torch_weights,
             normal((2, 4, 3)), normal((2, 5, 3)), normal((2, 4, 5))),
    ]


def cases() -> list[OpCase]:
    return [*_sdpa_cases(), *_attention_weights_cases()]
