"""Dropout: inverted dropout in training, the identity in evaluation."""

from __future__ import annotations

import numbers

import numpy as np

from scratchnn.autograd.tensor import Tensor
from scratchnn.nn.module import Module
from scratchnn.ops._operands import ensure_tensor
from scratchnn.ops.elementwise import mul
from scratchnn.random import resolve


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"dropout probability p must be in [0, 1), got {p!r}")
    return float(p)


def dropout(x, p: float = 0.5, training: bool = True,
            rng: np.random.Generator | None = None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    The expected value is unchanged, so evaluation needs no rescaling. The gradient flows only
    through the kept elements (scaled the same way). ``training=False`` or ``p=0`` returns
    ``x`` itself and draws nothing from ``rng``.
    """
    p = _check_p(p)
    x = ensure_tensor(x)
    if not training or p == 0:
        return x
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    keep = resolve(rng).random(x.shape, dtype=np.float32) >= p
    mask = keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))  # 0 or 1/(1-p), in x's dtype
    return mul(x, mask)


class Dropout(Module):
    """Inverted dropout with probability ``p`` while training; the identity in eval mode.

    Args:
        p: probability of zeroing an element, in [0, 1).
        rng: generator for the masks (None → the default generator, looked up at each call).
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.p = _check_p(p)
        self.rng = rng

    def forward(self, x) -> Tensor:
        return dropout(x, self.p, self.training, self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"
