"""Op cases for the fused nn kernels: linear and the losses. Part of the one case table
(``op_cases.CASES``), kept in its own file so each family of ops has a home."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF

import scratchnn.nn.functional as F
from op_cases import OpCase, case, ints, normal, uniform

N, C = 6, 4
WEIGHT = np.array([0.7, 1.3, 0.5, 1.9])


def _tw(z: torch.Tensor) -> torch.Tensor:
    return torch.tensor(WEIGHT, dtype=z.dtype)


def labels(shape, ignore: bool = False):
    """Class indices in [0, C); every third one is -100 (ignored) when ``ignore``."""

    def make(rng):
        y = rng.integers(0, C, shape)
        if ignore:
            y.reshape(-1)[::3] = -100
        return y

    return make


def probs(shape):
    def make(rng):
        p = rng.uniform(0.1, 1.1, shape)
        return p / p.sum(axis=1, keepdims=True)

    return make


def binary(shape):
    return lambda rng: rng.integers(0, 2, shape).astype(np.float64)


def _linear_cases() -> list[OpCase]:
    return [
        case("linear", F.linear, TF.linear, normal((5, 3)), normal((4, 3)), normal((4,))),
        case("linear_nobias", F.linear, TF.linear, normal((2, 5, 3)), normal((4, 3))),
        case("linear_batched", F.linear, TF.linear, normal((2, 3, 3)), normal((4, 3)),
             normal((4,))),
    ]


def _ce(**kw):
    def ours(z, y):
        return F.cross_entropy(z, y, weight=WEIGHT if kw.get("w") else None,
                               ignore_index=-100, label_smoothing=kw.get("s", 0.0),
                               reduction=kw.get("r", "mean"))

    def theirs(z, y):
        return TF.cross_entropy(z, y, weight=_tw(z) if kw.get("w") else None,
                                label_smoothing=kw.get("s", 0.0), reduction=kw.get("r", "mean"))

    return ours, theirs


def _loss_cases() -> list[OpCase]:
    logits = normal((N, C), 2.0)
    cases = [
        case("ce_mean", *_ce(), logits, labels((N,))),
        case("ce_sum", *_ce(r="sum"), logits, labels((N,))),
        case("ce_none", *_ce(r="none"), logits, labels((N,))),
        case("ce_weight_ignore", *_ce(w=True), logits, labels((N,), ignore=True)),
        case("ce_smoothing", *_ce(s=0.2), logits, labels((N,))),
        case("ce_weight_smoothing_ignore", *_ce(w=True, s=0.1), logits,
             labels((N,), ignore=True)),
        case("ce_smoothing_none_ignore", *_ce(s=0.3, r="none"), logits,
             labels((N,), ignore=True)),
        case("ce_spatial_weight", *_ce(w=True), normal((3, C, 2, 5)), labels((3, 2, 5))),
        case("ce_probs_smoothing", *_ce(s=0.1), logits, probs((N, C)),
             differentiable=(True, False)),
        case("ce_unbatched", *_ce(), normal((C,)), lambda rng: np.array(2)),
        case("ce_huge_logits", *_ce(r="none"), lambda rng: np.array([[1e30, 0.0, -1e30, 1.0]]),
             const_labels := (lambda rng: np.array([1])), gradcheck=False),
        case("nll_weight_ignore",
             lambda z, y: F.nll_loss(z, y, weight=WEIGHT),
             lambda z, y: TF.nll_loss(z, y, weight=_tw(z)), logits, labels((N,), ignore=True)),
        case("nll_none", lambda z, y: F.nll_loss(z, y, reduction="none"),
             lambda z, y: TF.nll_loss(z, y, reduction="none"), logits, labels((N,))),
        case("nll_spatial", F.nll_loss, TF.nll_loss, normal((2, C, 3)), labels((2, 3))),
        case("mse", F.mse_loss, TF.mse_loss, normal((N, 3)), normal((N, 3))),
        case("mse_sum", lambda a, b: F.mse_loss(a, b, "sum"),
             lambda a, b: TF.mse_loss(a, b, reduction="sum"), normal((N, 3)), normal((N, 3))),
        case("l1", F.l1_loss, TF.l1_loss, normal((N, 3)), normal((N, 3)),
             differentiable=(True, False)),
        case("huber", lambda a, b: F.huber_loss(a, b, delta=0.7),
             lambda a, b: TF.huber_loss(a, b, delta=0.7), normal((N, 3)), normal((N, 3))),
        case("bce", F.binary_cross_entropy, TF.binary_cross_entropy,
             uniform(0.05, 0.95, (N, 3)), uniform(0.0, 1.0, (N, 3)),
             differentiable=(True, False)),
        case("bce_weight_none",
             lambda p, y: F.binary_cross_entropy(p, y, np.arange(3.0), "none"),
             lambda p, y: TF.binary_cross_entropy(p, y, torch.arange(3.0, dtype=p.dtype),
                                                  reduction="none"),
             uniform(0.05, 0.95, (N, 3)), binary((N, 3)), differentiable=(True, False)),
        case("bce_logits", F.binary_cross_entropy_with_logits,
             TF.binary_cross_entropy_with_logits, normal((N, 3), 3.0),
             uniform(0.0, 1.0, (N, 3)), differentiable=(True, False)),
        case("bce_logits_pos_weight",
             lambda z, y: F.binary_cross_entropy_with_logits(
                 z, y, pos_weight=np.array([0.5, 2.0, 3.0])),
             lambda z, y: TF.binary_cross_entropy_with_logits(
                 z, y, pos_weight=torch.tensor([0.5, 2.0, 3.0], dtype=z.dtype)),
             normal((N, 3)), binary((N, 3)), differentiable=(True, False)),
        case("bce_logits_extreme", lambda z, y: F.binary_cross_entropy_with_logits(
                 z, y, reduction="none"),
             lambda z, y: TF.binary_cross_entropy_with_logits(z, y, reduction="none"),
             lambda rng: np.array([1000.0, -1000.0, 1000.0, -1000.0]),
             lambda rng: np.array([1.0, 0.0, 0.0, 1.0]), differentiable=(True, False),
             gradcheck=False),
    ]
    del const_labels
    return cases


def cases() -> list[OpCase]:
    return [*_linear_cases(), *_loss_cases()]


__all__ = ["cases", "ints"]
