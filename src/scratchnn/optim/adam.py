"""``Adam`` (L2 weight decay added to the gradient) and ``AdamW`` (decoupled weight decay)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from scratchnn.autograd.tensor import Tensor
from scratchnn.optim.optimizer import Optimizer
from scratchnn.optim.sgd import decayed_grad

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with PyTorch's exact update.

    With ``g = grad + weight_decay * p`` (coupled L2; decoupled in AdamW) and step count t::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g          # vmax = max(vmax, v) with amsgrad
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args:
        params: Tensors or param-group dicts.
        lr: learning rate.
        betas: decay rates of the first and second moment averages, each in [0, 1).
        eps: added to the bias-corrected root of the second moment.
        weight_decay: L2 penalty added to the gradient.
        amsgrad: normalise by the running maximum of the second moment.
        maximize: ascend the objective instead of descending it.
    """

    _decoupled = False

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
            "amsgrad": amsgrad, "maximize": maximize,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparams(h: Mapping[str, Any]) -> None:
        Optimizer._check_hyperparams(h)
        betas = h["betas"]
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair, got {betas}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"betas[{i}] must be in [0, 1), got {beta}")

    def _init_state(self, p: np.ndarray, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {
            "step": 0, "exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)
        }
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = np.zeros_like(p)
        return state

    def _update(
        self, p: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        f = p.dtype.type
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        state["step"] += 1
        step = state["step"]
        if self._decoupled:
            if weight_decay != 0:
                p *= f(1 - lr * weight_decay)
            g, _ = decayed_grad(p, grad, 0.0, group["maximize"])
        else:
            g, _ = decayed_grad(p, grad, weight_decay, group["maximize"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg *= f(beta1)
        tmp = np.multiply(g, f(1 - beta1))
        exp_avg += tmp
        exp_avg_sq *= f(beta2)
        np.multiply(g, g, out=tmp)
        tmp *= f(1 - beta2)
        exp_avg_sq += tmp
        if group["amsgrad"]:
            second = state["max_exp_avg_sq"]
            np.maximum(second, exp_avg_sq, out=second)
        else:
            second = exp_avg_sq
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        # denom = sqrt(v) / sqrt(1 - beta2**t) + eps, exactly where PyTorch puts eps.
        denom = np.sqrt(second, out=tmp)
        denom /= f(math.sqrt(bias_correction2))
        denom += f(eps)
        np.divide(exp_avg, denom, out=denom)
        denom *= f(step_size)
        p -= denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): ``p *= 1 - lr * wd`` first.

    Args:
        params: Tensors or param-group dicts.
        lr: learning rate.
        betas: decay rates of the first and second moment averages, each in [0, 1).
        eps: added to the bias-corrected root of the second moment.
        weight_decay: decoupled decay rate (scaled by lr, not by the adaptive denominator).
        amsgrad: normalise by the running maximum of the second moment.
        maximize: ascend the objective instead of descending it.
    """

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
