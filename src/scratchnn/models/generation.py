"""Autoregressive sampling from a language model, with a key/value cache.

The model is any Module with ``config.block_size`` whose ``forward(idx, past_key_values=,
use_cache=True)`` returns ``(logits, cache)`` (as :class:`scratchnn.models.gpt.GPT`). With the
cache each new token costs one position. Positions are absolute
(learned), so cached keys cannot be shifted: once the context is full (``block_size`` tokens)
the window slides forward by half a block and is computed afresh, and the cache then serves
the next ``block_size / 2`` tokens at one position each. Without the cache every token
recomputes the same window, so both ways give the same tokens.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from scratchnn.autograd.grad_mode import no_grad
from scratchnn.autograd.tensor import Tensor
from scratchnn.nn.module import Module
from scratchnn.random import resolve

__all__ = ["generate", "sample_next", "top_k_filter", "top_p_filter"]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Logits with everything below each row's k-th largest set to -inf (ties kept).

    Shape: (B, V) → (B, V).
    """
    v = logits.shape[-1]
    if k >= v:
        return logits
    kth = np.partition(logits, v - k, axis=-1)[:, v - k:v - k + 1]  # (B, 1)
    return np.where(logits < kth, -np.inf, logits)


def top_p_filter(probs: np.ndarray, p: float) -> np.ndarray:
    """Nucleus filtering (Holtzman et al., 2020): keep each row's most likely tokens until
    their probability reaches ``p`` (at least one), zero the rest, renormalise.

    Shape: (B, V) → (B, V).
    """
    order = np.argsort(-probs, axis=-1, kind="stable")  # (B, V), most likely first
    sorted_probs = np.take_along_axis(probs, order, axis=-1)
    before = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # mass of the tokens ahead
    keep_sorted = before < p  # the first token always stays (0 < p)
    keep = np.empty_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    out = np.where(keep, probs, 0.0)
    return out / out.sum(axis=-1, keepdims=True)


def sample_next(logits, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, rng: np.random.Generator | None = None):
    """One token id per row from last-position logits; temperature 0 is greedy (argmax).

    Shape: logits (B, V) → (B,) int64.
    """
    logits = np.asarray(logits.data if isinstance(logits, Tensor) else logits)
    if temperature == 0:
        return logits.argmax(axis=-1).astype(np.int64)
    z = logits.astype(np.float64) / temperature  # float64: exact enough for rng.choice
    if top_k is not None:
        z = top_k_filter(z, top_k)
    z = z - z.max(axis=-1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        probs = top_p_filter(probs, top_p)
    # Inverse-CDF sampling: the first token whose cumulative probability exceeds a uniform
    # draw (one draw per row; much cheaper per token than rng.choice).
    u = resolve(rng).random((probs.shape[0], 1))  # (B, 1)
    cdf = np.cumsum(probs, axis=-1)  # (B, V)
    picked = (cdf <= u * cdf[:, -1:]).sum(axis=-1)  # (B,)
    return np.minimum(picked, probs.shape[-1] - 1).astype(np.int64)


def _check_args(max_new_tokens, temperature, top_k, top_p) -> None:
    if not _is_int(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, numbers.Real)
                              or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")


def generate(model: Module, idx, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             rng: np.random.Generator | None = None, use_cache: bool = True) -> Tensor:
    """Extend each sequence in ``idx`` by ``max_new_tokens`` sampled tokens.

    Args:
        model: a language model (see the module docstring); run in eval mode here and put
            back in the modes it had.
        idx: prompt token ids (B, T) or (T,), T >= 1.
        max_new_tokens: how many tokens to add.
        temperature: divides the logits; 0 picks the most likely token (greedy; top_k and
            top_p then do not matter).
        top_k: sample only among the k most likely tokens.
        top_p: sample only among the most likely tokens whose probability reaches top_p.
        rng: generator for sampling (None → the default generator).
        use_cache: keep the keys and values of earlier positions, so each new token costs one
            position. Either way, a full context window slides forward by half a block
            (the same tokens with and without the cache).

    Returns:
        The prompt followed by the new tokens, (B, T + max_new_tokens) (or 1-D for a 1-D
        prompt), int64.
    """
    _check_args(max_new_tokens, temperature, top_k, top_p)
    tokens = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
    if tokens.dtype.kind not in "iu" or tokens.ndim not in (1, 2) or tokens.shape[-1] == 0:
        raise ValueError(f"idx must be a non-empty integer array of shape (B, T) or (T,), got "
                         f"shape {tokens.shape} and dtype {tokens.dtype}")
    squeeze = tokens.ndim == 1
    tokens = tokens.reshape(1, -1) if squeeze else tokens  # (B, T)
    block_size = model.config.block_size
    rng = resolve(rng)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    out = np.empty((tokens.shape[0], tokens.shape[1] + max_new_tokens), dtype=np.int64)
    out[:, :tokens.shape[1]] = tokens
    n = tokens.shape[1]
    # The context window is out[:, start:n]. When it is full, it slides forward by half a
    # block: positions are absolute (learned), so cached keys cannot be shifted, and sliding by
    # half a block lets the cache serve the next block_size/2 tokens at one position each.
    # The uncached path uses the same windows, so both paths give the same tokens.
    start = max(0, n - block_size)
    cache = None
    try:
        with no_grad():
            for _ in range(max_new_tokens):
                if n - start > block_size:
                    start = n - block_size // 2
                    cache = None
                if cache is not None:
                    # The cache holds positions start..n-2: feed only the newest token.
                    logits, cache = model(out[:, n - 1:n], past_key_values=cache,
                                          use_cache=True)
                else:
                    context = out[:, start:n]  # (B, ≤ block_size)
                    result = model(context, use_cache=use_cache)
                    logits, cache = result if use_cache else (result, None)
                out[:, n] = sample_next(logits.data[:, -1], temperature, top_k, top_p, rng)
                n += 1
    finally:
        for module, mode in modes:
            object.__setattr__(module, "training", mode)
    return Tensor(out[0] if squeeze else out)
