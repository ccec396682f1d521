"""A convolutional image classifier: conv blocks, global pooling (or flatten), an MLP head."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scratchnn import nn
from scratchnn.autograd.tensor import Tensor
from scratchnn.models.mlp import _ACTIVATIONS, ACTIVATIONS

__all__ = ["CNN", "CNNConfig", "POOLS", "RandomShiftFlip"]

#: Pooling after each conv block: 2×2 max, 2×2 average, or none.
POOLS: tuple[str, ...] = ("max", "avg", "none")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _positive_ints(name: str, values: Any, allow_empty: bool = True) -> tuple[int, ...]:
    """``values`` as a tuple of positive ints, else ValueError naming ``name``."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a sequence of positive integers, got {values!r}")
    values = tuple(values)
    for v in values:
        if not _is_int(v) or v < 1:
            raise ValueError(f"{name} must hold positive integers, got {v!r} in {list(values)}")
    if not values and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class CNNConfig:
    """Shape of a :class:`CNN`.

    Args:
        in_channels: image channels (1 for grey, 3 for RGB).
        image_size: (H, W) of the input images.
        num_classes: width of the output (one logit per class).
        channels: output channels of each conv block.
        kernel_size: square kernel of every conv ('same' padding, stride 1).
        batch_norm: BatchNorm2d after each conv (the conv then has no bias).
        pool: 2×2 pooling after each block: 'max', 'avg' or 'none'.
        global_pool: average over the spatial dims before the head; False flattens instead.
        dropout: dropout probability before each head layer, in [0, 1).
        hidden: hidden layer sizes of the head, e.g. ``(128,)``; ``()`` is a linear head.
        activation: one of :data:`scratchnn.models.ACTIVATIONS`, after each conv and hidden
            layer.
        augment_padding: training-time augmentation: random crops of the image zero-padded by
            this many pixels (0: off).
        augment_flip: training-time augmentation: random horizontal flips.
    """

    in_channels: int
    image_size: tuple[int, int]
    num_classes: int
    channels: tuple[int, ...] = (32, 64)
    kernel_size: int = 3
    batch_norm: bool = True
    pool: str = "max"
    global_pool: bool = True
    dropout: float = 0.0
    hidden: tuple[int, ...] = ()
    activation: str = "relu"
    augment_padding: int = 0
    augment_flip: bool = False

    def __post_init__(self) -> None:
        for name in ("in_channels", "num_classes", "kernel_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        size = self.image_size
        if _is_int(size):
            size = (size, size)
        size = _positive_ints("image_size", size, allow_empty=False)
        if len(size) != 2:
            raise ValueError(f"image_size must be (H, W), got {self.image_size!r}")
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "channels",
                           _positive_ints("channels", self.channels, allow_empty=False))
        object.__setattr__(self, "hidden", _positive_ints("hidden", self.hidden))
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {self.pool!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid activations are: "
                             f"{', '.join(ACTIVATIONS)}")
        for name in ("batch_norm", "global_pool", "augment_flip"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not _is_int(self.augment_padding) or self.augment_padding < 0:
            raise ValueError(f"augment_padding must be an integer >= 0, "
                             f"got {self.augment_padding!r}")
        h, w = self.feature_size
        if h < 1 or w < 1:
            raise ValueError(f"image_size {size} is too small for {len(self.channels)} "
                             f"blocks with 2x2 pooling (each halves H and W); use fewer "
                             f"channels entries or pool='none'")

    @property
    def feature_size(self) -> tuple[int, int]:
        """(H, W) of the last block's output."""
        n = len(self.channels) if self.pool != "none" else 0
        h, w = self.image_size
        return h >> n, w >> n

    @property
    def in_features(self) -> int:
        """Width of a flattened input image, C·H·W."""
        return self.in_channels * self.image_size[0] * self.image_size[1]

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (tuples as lists)."""
        d = dataclasses.asdict(self)
        for key in ("image_size", "channels", "hidden"):
            d[key] = list(d[key])
        return d

    asdict = to_dict

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CNNConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown CNNConfig field(s) {unknown}; valid fields are: "
                             f"{', '.join(sorted(names))}")
        kwargs = dict(d)
        for key in ("image_size", "channels", "hidden"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


class RandomShiftFlip(nn.Module):
    """Training-time image augmentation: a random crop of the zero-padded image, and a random
    horizontal flip; the identity in evaluation (like Dropout).

    It acts on the input data, which must not require grad.

    Args:
        padding: pixels of zero padding on each side before the crop (0: no shift).
        flip: flip each image left-right with probability 1/2.
        rng: generator of the crops and flips (None: the default generator).

    Shape: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, padding: int = 0, flip: bool = False,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not _is_int(padding) or padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
        self.padding, self.flip, self.rng = int(padding), bool(flip), rng

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or (self.padding == 0 and not self.flip):
            return x
        if x.requires_grad:
            raise ValueError("RandomShiftFlip augments input data; its input must not "
                             "require grad")
        from scratchnn.random import resolve

        rng = resolve(self.rng)
        images = np.asarray(x.data)
        n, _, h, w = images.shape
        p = self.padding
        if p:
            padded = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p)))  # (N, C, H+2p, W+2p)
            dy, dx = rng.integers(0, 2 * p + 1, size=(2, n))
            images = np.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
                               for i in range(n)])  # (N, C, H, W)
        if self.flip:
            flip = rng.random(n) < 0.5
            images = images.copy() if not p else images
            images[flip] = images[flip][..., ::-1]
        return Tensor(images)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, flip={self.flip}"


class CNN(nn.Module):
    """``[Conv2d('same') -> BatchNorm2d -> act -> pool] × blocks -> global average pool (or
    flatten) -> [Dropout -> Linear -> act] × hidden -> Dropout -> Linear``.

    Args:
        config: the architecture.
        rng: generator for the initial weights, dropout masks and augmentation (None: the
            default generator).

    Shape:
        input (N, C, H, W), or flat rows (N, C·H·W) as the Trainer feeds them -> logits
        (N, num_classes).
    """

    def __init__(self, config: CNNConfig, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(config, CNNConfig):
            raise TypeError(f"config must be a CNNConfig, got {type(config).__name__}")
        if rng is None:
            from scratchnn.random import default_generator

            rng = default_generator()
        self.config = config
        act = getattr(nn, _ACTIVATIONS[config.activation][0])
        self.augment = RandomShiftFlip(config.augment_padding, config.augment_flip, rng=rng)
        layers: list[nn.Module] = []
        width = config.in_channels
        for out in config.channels:
            layers.append(nn.Conv2d(width, out, config.kernel_size, padding="same",
                                    bias=not config.batch_norm, rng=rng))
            if config.batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(act())
            if config.pool == "max":
                layers.append(nn.MaxPool2d(2))
            elif config.pool == "avg":
                layers.append(nn.AvgPool2d(2))
            width = out
        self.features = nn.Sequential(*layers)
        if config.global_pool:
            self.pool = nn.GlobalAvgPool2d()
        else:
            self.pool = nn.Flatten()
            width *= config.feature_size[0] * config.feature_size[1]
        head: list[nn.Module] = []
        for size in config.hidden:
            if config.dropout:
                head.append(nn.Dropout(config.dropout, rng=rng))
            head += [nn.Linear(width, size, rng=rng), act()]
            width = size
        if config.dropout:
            head.append(nn.Dropout(config.dropout, rng=rng))
        head.append(nn.Linear(width, config.num_classes, rng=rng))
        self.head = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) or (N, C·H·W) -> (N, num_classes)."""
        c = self.config
        shape = (c.in_channels, *c.image_size)
        if x.ndim == 2 and x.shape[1] == c.in_features:
            x = x.reshape(x.shape[0], *shape)  # (N, C, H, W)
        elif x.ndim != 4 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"CNN expects input of shape (N, {', '.join(map(str, shape))}) or "
                             f"(N, {c.in_features}), got {tuple(x.shape)}")
        x = self.augment(x)
        x = self.pool(self.features(x))  # (N, features)
        return self.head(x)

    def extra_repr(self) -> str:
        c = self.config
        return (f"in_channels={c.in_channels}, image_size={c.image_size}, "
                f"channels={list(c.channels)}, num_classes={c.num_classes}")
