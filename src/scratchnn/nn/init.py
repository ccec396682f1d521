"""Weight initialisation, in place, with the gains and fan modes of the literature.

Glorot & Bengio (2010) for ``xavier_*``; He et al. (2015) for ``kaiming_*``; Saxe et al. (2014)
for ``orthogonal_``. Every function fills its tensor in place under ``no_grad`` (bumping its
version), keeps its dtype, returns it, and draws from ``rng`` (None → the default generator).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from scratchnn.autograd.grad_mode import no_grad
from scratchnn.autograd.tensor import Tensor
from scratchnn.random import resolve

__all__ = [
    "calculate_gain", "constant_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
    "orthogonal_", "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
]

_UNIT_GAIN = {
    "linear", "identity", "sigmoid", "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain that keeps activations' variance steady through ``nonlinearity``.

    linear/conv*/sigmoid → 1, tanh → 5/3, relu → √2, leaky_relu → √(2 / (1 + slope²))
    (slope ``param``, default 0.01), selu → 3/4.
    """
    if nonlinearity in _UNIT_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(
        f"unsupported nonlinearity {nonlinearity!r}; expected one of "
        f"{sorted(_UNIT_GAIN | {'tanh', 'relu', 'leaky_relu', 'selu'})}"
    )


def _calculate_fan_in_and_fan_out(tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: (out, in) for linear, (out, in, *kernel) for conv."""
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out need a tensor with at least 2 dims, got shape {shape}"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, values):
    """Write ``values`` into ``tensor`` in place, in its own dtype, and return it."""
    if isinstance(tensor, Tensor):
        with no_grad():
            tensor.copy_(np.asarray(values, dtype=tensor.dtype))
    elif isinstance(tensor, np.ndarray):
        tensor[...] = values
    else:
        raise TypeError(f"init needs a Tensor or an ndarray, got {type(tensor).__name__}")
    return tensor


def _check_std(std: float) -> None:
    if not std >= 0:  # also rejects NaN
        raise ValueError(f"std must be >= 0, got {std}")


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1)


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, val)


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0,
             rng: np.random.Generator | None = None) -> Tensor:
    """Fill with U(a, b); ``a == b`` fills with the constant ``a``."""
    if not a <= b:
        raise ValueError(f"uniform_ needs a <= b, got a={a}, b={b}")
    return _fill(tensor, resolve(rng).uniform(a, b, size=tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0,
            rng: np.random.Generator | None = None) -> Tensor:
    """Fill with N(mean, std²)."""
    _check_std(std)
    return _fill(tensor, resolve(rng).normal(mean, std, size=tensor.shape))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, rng: np.random.Generator | None = None) -> Tensor:
    """Fill with N(mean, std²) truncated to ``[a, b]`` (absolute bounds, as in PyTorch)."""
    _check_std(std)
    if not a < b:
        raise ValueError(f"trunc_normal_ needs a < b, got a={a}, b={b}")
    if std == 0:
        return _fill(tensor, min(max(mean, a), b))
    # Inverse-CDF sampling: exact, and no rejection loop when [a, b] lies far in a tail.
    lo, hi = special.ndtr((a - mean) / std), special.ndtr((b - mean) / std)
    u = resolve(rng).uniform(lo, hi, size=tensor.shape)
    values = mean + std * special.ndtri(u)
    return _fill(tensor, np.clip(values, a, b))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0,
                    rng: np.random.Generator | None = None) -> Tensor:
    """Glorot uniform: U(-g√(6/(fan_in+fan_out)), +g√(6/(fan_in+fan_out)))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / max(fan_in + fan_out, 1))
    return uniform_(tensor, -bound, bound, rng)


def xavier_normal_(tensor: Tensor, gain: float = 1.0,
                   rng: np.random.Generator | None = None) -> Tensor:
    """Glorot normal: N(0, g² · 2/(fan_in+fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / max(fan_in + fan_out, 1)), rng)


def _kaiming_std(tensor, a: float, mode: str, nonlinearity: str) -> float:
    fan = _fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(max(fan, 1))


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     rng: np.random.Generator | None = None) -> Tensor:
    """He uniform: U(-√3·std, √3·std) with std = gain / √fan (``a``: leaky_relu slope)."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, rng)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    rng: np.random.Generator | None = None) -> Tensor:
    """He normal: N(0, std²) with std = gain / √fan (``a``: leaky_relu slope)."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), rng)


def orthogonal_(tensor: Tensor, gain: float = 1.0,
                rng: np.random.Generator | None = None) -> Tensor:
    """A (semi-)orthogonal matrix times ``gain``; dims after the first are flattened."""
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError(f"orthogonal_ needs a tensor with at least 2 dims, got shape {shape}")
    rows = shape[0]
    cols = math.prod(shape[1:])
    if rows == 0 or cols == 0:
        return tensor
    flat = resolve(rng).normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flat = flat.T  # QR of the tall matrix; transposed back below
    q, r = np.linalg.qr(flat)  # q: (max, min) with orthonormal columns
    # Sign fix so that q is uniformly distributed over orthogonal matrices (Mezzadri 2007).
    signs = np.sign(np.diag(r))
    q = q * np.where(signs == 0, 1.0, signs)
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(shape))
