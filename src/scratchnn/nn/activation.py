"""Activation modules: thin wrappers around the activation ops, holding their options."""

from __future__ import annotations

from scratchnn.autograd.tensor import Tensor
from scratchnn.nn.module import Module
from scratchnn.ops import activation as act


class ReLU(Module):
    """``max(x, 0)``."""

    def forward(self, x) -> Tensor:
        return act.relu(x)


class LeakyReLU(Module):
    """``x`` for x > 0, else ``negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x) -> Tensor:
        return act.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``."""

    def forward(self, x) -> Tensor:
        return act.sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent."""

    def forward(self, x) -> Tensor:
        return act.tanh(x)


class GELU(Module):
    """GELU, exact (``approximate="none"``) or GPT-2's tanh approximation (``"tanh"``)."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x) -> Tensor:
        return act.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    """``log(1 + exp(beta x)) / beta``, linear where ``beta x > threshold``."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta = beta
        self.threshold = threshold

    def forward(self, x) -> Tensor:
        return act.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    """Softmax along ``dim``."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x) -> Tensor:
        return act.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """Log-softmax along ``dim`` (stable: never takes the log of a softmax)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x) -> Tensor:
        return act.log_softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
