"""``RMSprop``: divide the gradient by a running root mean square of recent gradients."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from scratchnn.autograd.tensor import Tensor
from scratchnn.optim.optimizer import Optimizer
from scratchnn.optim.sgd import decayed_grad, sub_scaled

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012) with PyTorch's exact update.

    With ``g = grad + weight_decay * p``::

        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v - ga * ga) + eps   # centered, ga = alpha * ga + (1 - alpha) * g
        avg = sqrt(v) + eps             # otherwise
        b = momentum * b + g / avg; p -= lr * b     # momentum > 0
        p -= lr * g / avg                            # otherwise

    Args:
        params: Tensors or param-group dicts.
        lr: learning rate.
        alpha: smoothing constant of the squared-gradient average, in [0, 1].
        eps: added to the root mean square.
        weight_decay: L2 penalty added to the gradient.
        momentum: momentum factor.
        centered: normalise by the estimated variance instead of the raw second moment.
        maximize: ascend the objective instead of descending it.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
            "momentum": momentum, "centered": centered, "maximize": maximize,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparams(h: Mapping[str, Any]) -> None:
        Optimizer._check_hyperparams(h)
        if not 0.0 <= h["alpha"] <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {h['alpha']}")

    def _init_state(self, p: np.ndarray, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": 0, "square_avg": np.zeros_like(p)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = np.zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = np.zeros_like(p)
        return state

    def _update(
        self, p: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        f = p.dtype.type
        alpha = group["alpha"]
        state["step"] += 1
        g, _ = decayed_grad(p, grad, group["weight_decay"], group["maximize"])
        square_avg = state["square_avg"]
        square_avg *= f(alpha)
        avg = np.multiply(g, g)
        avg *= f(1 - alpha)
        square_avg += avg
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg *= f(alpha)
            np.multiply(g, f(1 - alpha), out=avg)
            grad_avg += avg
            np.multiply(grad_avg, grad_avg, out=avg)
            np.subtract(square_avg, avg, out=avg)
            np.sqrt(avg, out=avg)
        else:
            np.sqrt(square_avg, out=avg)
        avg += f(group["eps"])
        np.divide(g, avg, out=avg)  # avg now holds g / avg
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= f(group["momentum"])
            buf += avg
            sub_scaled(p, buf, group["lr"], False)
        else:
            sub_scaled(p, avg, group["lr"], True)
