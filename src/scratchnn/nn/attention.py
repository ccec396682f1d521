"""``MultiheadAttention`` with PyTorch's parameter layout, masks and return values."""

from __future__ import annotations

import numbers

import numpy as np

from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import DEFAULT_FLOAT, xp
from scratchnn.nn import init
from scratchnn.nn.dropout import dropout
from scratchnn.nn.linear import Linear
from scratchnn.nn.module import Module
from scratchnn.nn.parameter import Parameter
from scratchnn.ops._operands import ensure_tensor
from scratchnn.ops.attention import (
    attention_weights,
    causal_mask,
    scaled_dot_product_attention,
)
from scratchnn.ops.linalg import matmul
from scratchnn.ops.linear import linear
from scratchnn.ops.shape import reshape, transpose


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _mask_array(name: str, mask, dtype):
    """A mask as an array: bool stays bool, float becomes ``dtype``; other dtypes are errors."""
    array = mask.data if isinstance(mask, Tensor) else xp.asarray(mask)
    if array.dtype.kind == "b":
        return array
    if array.dtype.kind == "f":
        return array.astype(dtype, copy=False)
    raise TypeError(f"MultiheadAttention: {name} must be bool or float, got dtype {array.dtype}")


def _merge_masks(masks: list, dtype):
    """One SDPA mask (True = attend, or additive) from blocking masks (True = ignore, or
    additive), all already shaped to broadcast against (N, H, L, S)."""
    masks = [m for m in masks if m is not None]
    if not masks:
        return None
    if all(m.dtype == bool for m in masks):
        blocked = masks[0]
        for m in masks[1:]:
            blocked = blocked | m
        return ~blocked
    total = None
    for m in masks:
        add = xp.where(m, dtype.type(-np.inf), dtype.type(0)) if m.dtype == bool else m
        total = add if total is None else total + add
    return total


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al., 2017) with PyTorch's names and layouts.

    Args:
        embed_dim: model width E (query size and output size).
        num_heads: number of heads; must divide ``embed_dim``.
        dropout: dropout probability on the attention weights while training.
        bias: learn the input-projection bias and the output-projection bias.
        batch_first: inputs and outputs are (N, L, E) instead of (L, N, E).
        kdim, vdim: key and value widths (default ``embed_dim``); when either differs, the
            projections are separate ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight``
            instead of one packed ``in_proj_weight`` (3E, E).
        rng: generator for the initial weights and the dropout masks (None → the default).

    Shape: query (L, N, E), key (S, N, kdim), value (S, N, vdim) → output (L, N, E) and weights
    (N, L, S) averaged over heads or (N, H, L, S); unbatched (L, E) inputs work too.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, kdim: int | None = None, vdim: int | None = None,
                 rng: np.random.Generator | None = None, dtype=None) -> None:
        super().__init__()
        self.embed_dim = _positive_int("embed_dim", embed_dim)
        self.num_heads = _positive_int("num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads, got embed_dim="
                             f"{embed_dim} and num_heads={num_heads}")
        self.head_dim = self.embed_dim // self.num_heads
        self.kdim = _positive_int("kdim", kdim) if kdim is not None else self.embed_dim
        self.vdim = _positive_int("vdim", vdim) if vdim is not None else self.embed_dim
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
                or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.rng = rng
        dtype = np.dtype(dtype) if dtype is not None else DEFAULT_FLOAT
        e = self.embed_dim
        self._qkv_same_embed_dim = self.kdim == e and self.vdim == e

        def param(*shape):
            return Parameter(xp.empty(shape, dtype=dtype), dtype=dtype)

        if self._qkv_same_embed_dim:
            self.in_proj_weight = param(3 * e, e)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = param(e, e)
            self.k_proj_weight = param(e, self.kdim)
            self.v_proj_weight = param(e, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = param(3 * e)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(e, e, bias=bias, rng=rng, dtype=dtype)
        self._reset_parameters(rng)

    def _reset_parameters(self, rng: np.random.Generator | None = None) -> None:
        """PyTorch's: Xavier-uniform input projections, zero biases (out_proj's weight keeps
        Linear's default)."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight, rng=rng)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w, rng=rng)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _projections(self):
        """(weight, bias) of the query, key and value projections."""
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            weights = (w[:e], w[e:2 * e], w[2 * e:])
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        b = self.in_proj_bias
        biases = (None,) * 3 if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        return zip(weights, biases)

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> bool:
        """Validate the shapes; returns whether the inputs are batched."""
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"{type(self).__name__}: query, key and value must all be 3-D "
                             f"(batched) or 2-D (unbatched), got {tuple(query.shape)}, "
                             f"{tuple(key.shape)}, {tuple(value.shape)}")
        for name, t, width in (("query", query, self.embed_dim), ("key", key, self.kdim),
                               ("value", value, self.vdim)):
            if t.shape[-1] != width:
                raise ValueError(f"{type(self).__name__}: expected {name} with last dim "
                                 f"{width}, got shape {tuple(t.shape)}")
            if t.dtype.kind == "f" and t.dtype != self.out_proj.weight.dtype:
                raise TypeError(f"{type(self).__name__} has {self.out_proj.weight.dtype} "
                                f"parameters but got a {t.dtype} {name}")
        seq_axis = 1 if self.batch_first and batched else 0
        if key.shape[seq_axis] != value.shape[seq_axis]:
            raise ValueError(f"{type(self).__name__}: key and value lengths differ: key "
                             f"{tuple(key.shape)}, value {tuple(value.shape)}")
        if batched:
            batch_axis = 1 - seq_axis
            sizes = {query.shape[batch_axis], key.shape[batch_axis], value.shape[batch_axis]}
            if len(sizes) != 1:
                raise ValueError(f"{type(self).__name__}: query, key and value batch sizes "
                                 f"differ: {tuple(query.shape)}, {tuple(key.shape)}, "
                                 f"{tuple(value.shape)}")
        return batched

    def _mask(self, key_padding_mask, attn_mask, is_causal: bool, n: int, lq: int, s: int,
              dtype):
        """The merged SDPA mask, broadcastable to (N, H, L, S), or None."""
        h = self.num_heads
        kpm = None
        if key_padding_mask is not None:
            kpm = _mask_array("key_padding_mask", key_padding_mask, dtype)
            if kpm.shape not in ((n, s), (s,)):
                raise ValueError(f"key_padding_mask must have shape ({n}, {s}), got "
                                 f"{tuple(kpm.shape)}")
            kpm = kpm.reshape(-1, 1, 1, s)  # (N, 1, 1, S)
        am = None
        if attn_mask is not None:
            am = _mask_array("attn_mask", attn_mask, dtype)
            if am.shape == (lq, s):
                am = am.reshape(1, 1, lq, s)  # (1, 1, L, S)
            elif am.shape == (n * h, lq, s):
                am = am.reshape(n, h, lq, s)  # (N, H, L, S)
            else:
                raise ValueError(f"attn_mask must have shape ({lq}, {s}) or ({n * h}, {lq}, "
                                 f"{s}), got {tuple(am.shape)}")
        elif is_causal:
            # PyTorch treats is_causal as a hint that attn_mask is causal and requires the
            # mask; here the causal mask is built when none is given.
            am = ~causal_mask(lq, s)
        return _merge_masks([kpm, am], dtype)

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        """Attend from ``query`` to ``key``/``value``; returns ``(output, weights or None)``.

        ``key_padding_mask`` (N, S) and ``attn_mask`` (L, S) or (N·H, L, S): True (or -inf)
        marks a key to ignore, as in PyTorch; float masks are added to the scores. A query
        whose keys are all masked gets a zero output (PyTorch gives NaN).
        """
        query, key, value = (ensure_tensor(t) for t in (query, key, value))
        batched = self._check_inputs(query, key, value)
        if not batched:
            query, key, value = (reshape(t, (1, *t.shape)) for t in (query, key, value))  # N=1
        elif not self.batch_first:
            query, key, value = (transpose(t, 0, 1) for t in (query, key, value))  # (N, L, E)
        n, lq, _ = query.shape
        s = key.shape[1]
        h, d = self.num_heads, self.head_dim
        heads = []
        for x, (w, b), length in zip((query, key, value), self._projections(), (lq, s, s)):
            y = reshape(linear(x, w, b), (n, length, h, d))  # (N, len, H, D)
            heads.append(transpose(y, 1, 2))  # (N, H, len, D)
        q, k, v = heads
        mask = self._mask(key_padding_mask, attn_mask, is_causal, n, lq, s, query.dtype)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            # The probabilities are an output: compute them as their own node, then dropout
            # and the product with v, as PyTorch does on this path.
            weights = dropout(attention_weights(q, k, mask), p, self.training, self.rng)
            out = matmul(weights, v)  # (N, H, L, D)
            if average_attn_weights:
                weights = weights.mean(axis=1)  # (N, L, S)
            if not batched:
                weights = reshape(weights, weights.shape[1:])  # (L, S) or (H, L, S)
        else:
            out = scaled_dot_product_attention(q, k, v, mask, dropout_p=p, rng=self.rng)
        out = reshape(transpose(out, 1, 2), (n, lq, self.embed_dim))  # (N, L, E)
        out = self.out_proj(out)
        if not batched:
            out = reshape(out, out.shape[1:])  # (L, E)
        elif not self.batch_first:
            out = transpose(out, 0, 1)  # (L, N, E)
        return out, weights

    def extra_repr(self) -> str:
        text = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if not self._qkv_same_embed_dim:
            text += f", kdim={self.kdim}, vdim={self.vdim}"
        if self.batch_first:
            text += ", batch_first=True"
        return text
