"""A multilayer perceptron: Linear layers with an activation (and optional dropout) between."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scratchnn import nn
from scratchnn.autograd.tensor import Tensor
from scratchnn.nn import init

__all__ = ["ACTIVATIONS", "INIT_SCHEMES", "MLP", "MLPConfig"]

#: Activation name -> (nn module class name, nonlinearity name for ``init.calculate_gain``).
#: GELU has no gain of its own in the literature; it behaves like ReLU for large inputs, so it
#: borrows ReLU's gain (a common choice).
_ACTIVATIONS: dict[str, tuple[str, str]] = {
    "relu": ("ReLU", "relu"),
    "leaky_relu": ("LeakyReLU", "leaky_relu"),
    "gelu": ("GELU", "relu"),
    "tanh": ("Tanh", "tanh"),
    "sigmoid": ("Sigmoid", "sigmoid"),
}
ACTIVATIONS: tuple[str, ...] = tuple(_ACTIVATIONS)

INIT_SCHEMES: tuple[str, ...] = (
    "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal",
    "normal", "default",
)

#: Standard deviation of the plain 'normal' scheme (the GPT-2 / BERT choice).
NORMAL_INIT_STD = 0.02


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class MLPConfig:
    """Shape and initialisation of an :class:`MLP`.

    Args:
        in_features: width of the input.
        out_features: width of the output (classes for classification, 1 for regression).
        hidden_sizes: widths of the hidden layers, e.g. ``(64, 64)``; ``()`` is a linear model.
        activation: one of :data:`ACTIVATIONS`, applied after every hidden layer.
        dropout: dropout probability after every hidden activation, in [0, 1).
        init: weight initialisation scheme, one of :data:`INIT_SCHEMES`. 'default' keeps
            ``nn.Linear``'s own initialisation; every other scheme zeroes the biases and uses
            the activation's gain for hidden layers and gain 1 for the output layer.
    """

    in_features: int
    out_features: int
    hidden_sizes: tuple[int, ...] = (64,)
    activation: str = "relu"
    dropout: float = 0.0
    init: str = "default"

    def __post_init__(self) -> None:
        for name in ("in_features", "out_features"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        sizes = self.hidden_sizes
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise ValueError(f"hidden_sizes must be a sequence of positive integers, "
                             f"got {sizes!r}")
        sizes = tuple(sizes)
        for size in sizes:
            if not _is_int(size) or size < 1:
                raise ValueError(f"hidden_sizes must hold positive integers, got {size!r} "
                                 f"in {list(sizes)}")
        object.__setattr__(self, "hidden_sizes", tuple(int(s) for s in sizes))
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid activations are: "
                             f"{', '.join(ACTIVATIONS)}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"unknown init scheme {self.init!r}; valid schemes are: "
                             f"{', '.join(INIT_SCHEMES)}")

    def asdict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (``hidden_sizes`` as a list)."""
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MLPConfig:
        """Rebuild a config from :meth:`asdict` output; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown MLPConfig field(s) {unknown}; valid fields are: "
                             f"{', '.join(sorted(names))}")
        kwargs = dict(d)
        if "hidden_sizes" in kwargs:
            kwargs["hidden_sizes"] = tuple(kwargs["hidden_sizes"])
        return cls(**kwargs)


def _init_linear(layer: nn.Linear, scheme: str, nonlinearity: str,
                 rng: np.random.Generator) -> None:
    """Initialise one Linear layer's weight for the activation that follows it; zero its bias."""
    w = layer.weight
    gain = init.calculate_gain(nonlinearity)
    if scheme == "xavier_uniform":
        init.xavier_uniform_(w, gain=gain, rng=rng)
    elif scheme == "xavier_normal":
        init.xavier_normal_(w, gain=gain, rng=rng)
    elif scheme == "kaiming_uniform":
        init.kaiming_uniform_(w, mode="fan_in", nonlinearity=nonlinearity, rng=rng)
    elif scheme == "kaiming_normal":
        init.kaiming_normal_(w, mode="fan_in", nonlinearity=nonlinearity, rng=rng)
    elif scheme == "orthogonal":
        init.orthogonal_(w, gain=gain, rng=rng)
    elif scheme == "normal":
        init.normal_(w, 0.0, NORMAL_INIT_STD, rng=rng)
    else:  # pragma: no cover - MLPConfig validated the name
        raise ValueError(f"unknown init scheme {scheme!r}")
    if layer.bias is not None:
        init.zeros_(layer.bias)


class MLP(nn.Module):
    """``Linear -> act [-> Dropout] -> ... -> Linear``: a plain feed-forward network.

    Args:
        config: the layer sizes, activation, dropout and init scheme.
        rng: generator for the initial weights and the dropout masks (None: the default one).

    Shape:
        input (N, in_features) -> output (N, out_features).
    """

    def __init__(self, config: MLPConfig, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(config, MLPConfig):
            raise TypeError(f"config must be an MLPConfig, got {type(config).__name__}")
        if rng is None:
            from scratchnn.random import default_generator

            rng = default_generator()
        self.config = config
        act_class, nonlinearity = _ACTIVATIONS[config.activation]
        layers: list[nn.Module] = []
        linears: list[tuple[nn.Linear, str]] = []
        width = config.in_features
        for size in config.hidden_sizes:
            linear = nn.Linear(width, size, rng=rng)
            layers += [linear, getattr(nn, act_class)()]
            linears.append((linear, nonlinearity))
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout, rng=rng))
            width = size
        head = nn.Linear(width, config.out_features, rng=rng)
        layers.append(head)
        linears.append((head, "linear"))  # nothing follows the output layer
        self.net = nn.Sequential(*layers)
        if config.init != "default":
            for linear, nonlin in linears:
                _init_linear(linear, config.init, nonlin, rng)

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_features) -> (N, out_features)."""
        if x.ndim != 2 or x.shape[1] != self.config.in_features:
            raise ValueError(f"MLP expects input of shape (N, {self.config.in_features}), "
                             f"got {tuple(x.shape)}")
        return self.net(x)

    def extra_repr(self) -> str:
        c = self.config
        return (f"in={c.in_features}, hidden={list(c.hidden_sizes)}, out={c.out_features}, "
                f"activation={c.activation!r}, dropout={c.dropout}, init={c.init!r}")
