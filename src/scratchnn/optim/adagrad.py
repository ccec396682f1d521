"""``Adagrad``: per-coordinate learning rates from the sum of all past squared gradients."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from scratchnn.autograd.tensor import Tensor
from scratchnn.optim.optimizer import Optimizer
from scratchnn.optim.sgd import decayed_grad, sub_scaled

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011) with PyTorch's exact update.

    With ``g = grad + weight_decay * p`` and step count t::

        clr = lr / (1 + (t - 1) * lr_decay)
        s += g * g
        p -= clr * g / (sqrt(s) + eps)

    Args:
        params: Tensors or param-group dicts.
        lr: learning rate.
        lr_decay: learning-rate decay per step.
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: starting value of the squared-gradient sum.
        eps: added to the root of the sum.
        maximize: ascend the objective instead of descending it.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value, "eps": eps,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparams(h: Mapping[str, Any]) -> None:
        Optimizer._check_hyperparams(h)
        if not h["lr_decay"] >= 0.0:
            raise ValueError(f"lr_decay must be >= 0, got {h['lr_decay']}")
        if not h["initial_accumulator_value"] >= 0.0:
            raise ValueError(
                f"initial_accumulator_value must be >= 0, got {h['initial_accumulator_value']}"
            )

    def _init_state(self, p: np.ndarray, group: dict[str, Any]) -> dict[str, Any]:
        init = p.dtype.type(group["initial_accumulator_value"])
        return {"step": 0, "sum": np.full_like(p, init)}

    def _update(
        self, p: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        f = p.dtype.type
        state["step"] += 1
        g, _ = decayed_grad(p, grad, group["weight_decay"], group["maximize"])
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state_sum = state["sum"]
        std = np.multiply(g, g)
        state_sum += std
        np.sqrt(state_sum, out=std)
        std += f(group["eps"])
        np.divide(g, std, out=std)
        sub_scaled(p, std, clr, True)
