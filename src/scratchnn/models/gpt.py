"""GPT-2: a decoder-only transformer language model (Radford et al., 2019), nanoGPT style.

Module names follow GPT-2's (``wte``, ``wpe``, ``h.{i}.ln_1``, ``h.{i}.attn.c_attn``, ...), so
Hugging Face weights map onto them one to one (their ``Conv1D`` weights are transposed). The
output head shares its weight with the token embedding: ``lm_head.weight is wte.weight``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scratchnn import nn
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.models.kv_cache import KVCache
from scratchnn.nn import functional as F
from scratchnn.nn import init
from scratchnn.ops._operands import ensure_tensor
from scratchnn.ops.attention import causal_mask
from scratchnn.ops.shape import permute, reshape, transpose
from scratchnn.random import resolve

__all__ = ["GPT", "Block", "CausalSelfAttention", "GPTConfig", "KVCache"]

#: Standard deviation of GPT-2's initial weights.
INIT_STD = 0.02


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a :class:`GPT` (defaults: the character-level benchmark model).

    Args:
        vocab_size: number of token ids.
        block_size: the longest sequence (number of learned positions).
        n_layer: transformer blocks.
        n_head: attention heads per block; must divide ``n_embd``.
        n_embd: model width.
        dropout: dropout probability on embeddings, attention weights and residual branches.
        bias: biases in the Linear layers and LayerNorms.
        layer_norm_eps: LayerNorm epsilon.
    """

    vocab_size: int = 65
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0
    bias: bool = True
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd must be divisible by n_head, got n_embd={self.n_embd} "
                             f"and n_head={self.n_head}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real) \
                or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be a bool, got {self.bias!r}")
        eps = self.layer_norm_eps
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"layer_norm_eps must be a number > 0, got {eps!r}")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return dataclasses.asdict(self)

    asdict = to_dict  # the name the other model configs use

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GPTConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s) {unknown}; valid fields are: "
                             f"{', '.join(sorted(names))}")
        return cls(**d)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused q/k/v projection (``c_attn``)."""

    def __init__(self, config: GPTConfig, rng: np.random.Generator) -> None:
        super().__init__()
        d = config.n_embd
        self.c_attn = nn.Linear(d, 3 * d, bias=config.bias, rng=rng)
        self.c_proj = nn.Linear(d, d, bias=config.bias, rng=rng)
        self.resid_dropout = nn.Dropout(config.dropout, rng=rng)
        self.n_head, self.n_embd, self.dropout, self.rng = config.n_head, d, config.dropout, rng

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """(B, T, C) → (B, T, C). With a ``cache``, the new positions attend to the cached
        ones too and their keys and values are stored in it as ``layer``'s."""
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        # c_attn's output is [q | k | v], each C wide with the heads side by side.
        qkv = permute(reshape(self.c_attn(x), (B, T, 3, nh, hs)), 2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # 3 × (B, nh, T, hs)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # 2 × (B, nh, P + T, hs)
        S = k.shape[2]
        # Without a cache, plain causal attention. With P cached positions the T new queries
        # see every cached key and the new ones up to their own position (bottom-right
        # alignment); a single new token sees everything, so it needs no mask at all.
        mask = None if T == 1 or S == T else causal_mask(T, S, offset=S - T)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=S == T and T > 1,
            dropout_p=self.dropout if self.training else 0.0, rng=self.rng,
        )  # (B, nh, T, hs)
        y = reshape(transpose(y, 1, 2), (B, T, C))  # (B, T, C): heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(d, 4d) · GELU (tanh) · Linear(4d, d) · dropout."""

    def __init__(self, config: GPTConfig, rng: np.random.Generator) -> None:
        super().__init__()
        d = config.n_embd
        self.c_fc = nn.Linear(d, 4 * d, bias=config.bias, rng=rng)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * d, d, bias=config.bias, rng=rng)
        self.dropout = nn.Dropout(config.dropout, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, config: GPTConfig, rng: np.random.Generator) -> None:
        super().__init__()
        d, eps = config.n_embd, config.layer_norm_eps
        self.ln_1 = nn.LayerNorm(d, eps=eps, bias=config.bias)
        self.attn = CausalSelfAttention(config, rng)
        self.ln_2 = nn.LayerNorm(d, eps=eps, bias=config.bias)
        self.mlp = MLP(config, rng)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """(B, T, C) → (B, T, C); ``cache`` and ``layer`` as in :class:`CausalSelfAttention`."""
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2 language model: token + position embeddings, ``n_layer`` blocks, tied LM head.

    Args:
        config: the model's shape.
        rng: generator for the initial weights and the dropout masks (None → the default).

    Initialisation as GPT-2 / nanoGPT: weights N(0, 0.02), the residual projections
    (``c_proj``) N(0, 0.02/√(2·n_layer)), biases zero, LayerNorms ones and zeros.
    """

    def __init__(self, config: GPTConfig, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        rng = resolve(rng)
        self.config = config
        c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd, rng=rng)
        self.wpe = nn.Embedding(c.block_size, c.n_embd, rng=rng)
        self.drop = nn.Dropout(c.dropout, rng=rng)
        self.h = nn.ModuleList([Block(c, rng) for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd, eps=c.layer_norm_eps, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False, rng=rng)
        # Weight tying (Press & Wolf, 2017): one Parameter, listed once by named_parameters
        # (as wte.weight) and under both keys in state_dict, as in PyTorch.
        self.lm_head.weight = self.wte.weight
        self._init_weights(rng)

    def _init_weights(self, rng: np.random.Generator) -> None:
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layer)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                std = residual_std if name.endswith(".c_proj") else INIT_STD
                if module is not self.lm_head:  # its weight is wte's, drawn below
                    init.normal_(module.weight, 0.0, std, rng=rng)
                if module.bias is not None:
                    init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                init.normal_(module.weight, 0.0, INIT_STD, rng=rng)

    def forward(self, idx, targets=None, past_key_values: KVCache | None = None,
                use_cache: bool = False):
        """Next-token logits for every position.

        Args:
            idx: token ids (B, T).
            targets: token ids (B, T) to score with cross-entropy (``-100`` is ignored).
            past_key_values: the :class:`KVCache` returned by an earlier call; ``idx`` then
                holds only the new tokens, at positions P..P+T-1, and their keys and values
                are appended to the cache in place.
            use_cache: also return the cache (a new one when ``past_key_values`` is None)
                holding the keys and values of every position seen, for the next call.

        Returns:
            ``logits`` (B, T, vocab_size) alone, or a tuple ``(logits, loss)``,
            ``(logits, cache)`` or ``(logits, loss, cache)`` when ``targets`` and/or
            ``use_cache`` ask for more.
        """
        idx = ensure_tensor(idx)
        if idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise ValueError(f"GPT expects integer token ids of shape (B, T), got shape "
                             f"{tuple(idx.shape)} and dtype {idx.dtype}")
        B, T = idx.shape
        past_len = self._check_past(past_key_values, B)
        if past_len + T > self.config.block_size:
            what = f"{past_len} cached + {T} new = {past_len + T}" if past_len else str(T)
            raise ValueError(f"sequence length {what} exceeds block_size "
                             f"{self.config.block_size}; crop the input to the last "
                             f"{self.config.block_size} tokens")
        cache = past_key_values
        if cache is None and use_cache:
            c = self.config
            cache = KVCache(c.n_layer, B, c.n_head, c.n_embd // c.n_head, c.block_size,
                            self.wte.weight.dtype)
        logits = self.lm_head(self.hidden_states(idx, cache))  # (B, T, vocab_size)
        extras = []
        if targets is not None:
            targets = ensure_tensor(targets)
            if tuple(targets.shape) != (B, T):
                raise ValueError(f"targets must have the shape of idx {(B, T)}, got "
                                 f"{tuple(targets.shape)}")
            V = logits.shape[-1]
            extras.append(F.cross_entropy(reshape(logits, (B * T, V)),  # (B·T, V)
                                          reshape(targets, (B * T,))))  # (B·T,)
        if use_cache:
            extras.append(cache)
        return (logits, *extras) if extras else logits

    def hidden_states(self, idx: Tensor, cache: KVCache | None = None) -> Tensor:
        """The final (LayerNorm-ed) hidden states (B, T, n_embd) of token ids ``idx`` (B, T),
        already checked by the caller, at the positions after those in ``cache``; their keys
        and values are appended to ``cache``."""
        T = idx.shape[1]
        past_len = 0 if cache is None else cache.length
        pos = xp.arange(past_len, past_len + T)  # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C) + (T, C)
        for i, block in enumerate(self.h):
            x = block(x, cache, i)
        if cache is not None:
            cache.advance(T)
        return self.ln_f(x)

    def _check_past(self, past: KVCache | None, batch: int) -> int:
        """The number of cached positions (0 without a cache); checks the cache's layout."""
        if past is None:
            return 0
        if not isinstance(past, KVCache):
            raise TypeError(f"past_key_values must be the KVCache returned by an earlier call "
                            f"with use_cache=True, got {type(past).__name__}")
        c = self.config
        expected = (c.n_layer, (batch, c.n_head, c.n_embd // c.n_head), self.wte.weight.dtype)
        found = (past.n_layer, past.layout, past.dtype)
        if found != expected or past.capacity < c.block_size:
            raise ValueError(f"past_key_values does not fit this model: it holds {past.n_layer} "
                             f"layers of (B, n_head, head_dim) = {past.layout} in {past.dtype}, "
                             f"expected {c.n_layer} layers of {expected[1]} in {expected[2]}")
        return past.length

    def extra_repr(self) -> str:
        c = self.config
        return (f"vocab_size={c.vocab_size}, block_size={c.block_size}, n_layer={c.n_layer}, "
                f"n_head={c.n_head}, n_embd={c.n_embd}")
