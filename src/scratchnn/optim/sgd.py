"""``SGD``: stochastic gradient descent with optional momentum, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from scratchnn.autograd.tensor import Tensor
from scratchnn.optim.optimizer import Optimizer

__all__ = ["SGD", "decayed_grad"]


def decayed_grad(
    p: np.ndarray, grad: np.ndarray, weight_decay: float, maximize: bool
) -> tuple[np.ndarray, bool]:
    """The gradient to follow, ``±grad + weight_decay * p``, and whether it is a fresh array.

    A fresh array may be changed in place by the caller; otherwise it is ``grad`` itself.
    """
    if weight_decay != 0:
        g = np.multiply(p, p.dtype.type(weight_decay))
        if maximize:
            g -= grad
        else:
            g += grad
        return g, True
    if maximize:
        return np.negative(grad), True
    return grad, False


def sub_scaled(p: np.ndarray, x: np.ndarray, scale: float, x_owned: bool) -> None:
    """``p -= scale * x`` in place, reusing ``x`` as scratch when the caller owns it."""
    scale = p.dtype.type(scale)
    if x_owned:
        np.multiply(x, scale, out=x)
        p -= x
    else:
        p -= x * scale


class SGD(Optimizer):
    """Stochastic gradient descent, with PyTorch's momentum and Nesterov semantics.

    With ``g = grad + weight_decay * p`` (``-grad`` when maximizing), the momentum buffer is
    ``b = g`` on the first step, then ``b = momentum * b + (1 - dampening) * g``; the step is
    ``p -= lr * (g + momentum * b)`` with Nesterov, else ``p -= lr * b``.

    Args:
        params: Tensors or param-group dicts.
        lr: learning rate.
        momentum: momentum factor (0 disables momentum and stores no state).
        dampening: dampening of the gradient added to the momentum buffer.
        weight_decay: L2 penalty added to the gradient.
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: ascend the objective instead of descending it.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
            "nesterov": nesterov, "maximize": maximize,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparams(h: Mapping[str, Any]) -> None:
        Optimizer._check_hyperparams(h)
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError(
                "nesterov=True needs momentum > 0 and dampening == 0, "
                f"got momentum={h['momentum']}, dampening={h['dampening']}"
            )

    def _update(
        self, p: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        g, owned = decayed_grad(p, grad, group["weight_decay"], group["maximize"])
        momentum = group["momentum"]
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= p.dtype.type(momentum)
                dampening = group["dampening"]
                if dampening == 0:
                    buf += g
                else:
                    buf += g * p.dtype.type(1 - dampening)
            if group["nesterov"]:
                if owned:
                    g += buf * p.dtype.type(momentum)
                else:
                    g = g + buf * p.dtype.type(momentum)
                    owned = True
            else:
                g, owned = buf, False
        sub_scaled(p, g, group["lr"], owned)

    def _init_state(self, p: np.ndarray, group: dict[str, Any]) -> dict[str, Any]:
        # Only momentum needs state; the buffer itself is made from the first gradient.
        return {"momentum_buffer": None} if group["momentum"] != 0 else {}
