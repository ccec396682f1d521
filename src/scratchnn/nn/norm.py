"""Normalisation layers with PyTorch's names and layouts: LayerNorm, BatchNorm1d/2d, GroupNorm."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from scratchnn.autograd.grad_mode import no_grad
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import DEFAULT_FLOAT, xp
from scratchnn.nn import init
from scratchnn.nn.module import Module
from scratchnn.nn.parameter import Parameter
from scratchnn.ops._operands import ensure_tensor
from scratchnn.ops.norm import LayerNorm as LayerNormOp
from scratchnn.ops.norm import batch_norm, group_norm, layer_norm


def _float_dtype(layer: str, dtype) -> np.dtype:
    dtype = np.dtype(dtype) if dtype is not None else DEFAULT_FLOAT
    if dtype.kind != "f":
        raise ValueError(f"{layer} parameters must be floating point, got dtype {dtype}")
    return dtype


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")
    return float(eps)


def _check_dtype(layer: Module, x: Tensor) -> None:
    """A float input must have the dtype of the layer's float parameters and buffers."""
    if x.dtype.kind != "f":
        return
    # The layer's own tensors only (a norm layer has no children): cheap on every call.
    tensors = (*layer._parameters.values(), *layer._buffers.values())
    dtype = next((t.dtype for t in tensors if t is not None and t.dtype.kind == "f"), x.dtype)
    if x.dtype != dtype:
        raise TypeError(
            f"{layer!r} has {dtype} parameters but got a {x.dtype} input; "
            f"convert the input or the layer (.to(dtype)) explicitly"
        )


class _Affine(Module):
    """A layer with an optional ``weight`` (starts at ones) and ``bias`` (starts at zeros)."""

    def _reset_affine(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)


def _affine_params(layer: Module, shape: tuple[int, ...], dtype, weight: bool,
                   bias: bool) -> None:
    """Register ``weight`` (ones) and ``bias`` (zeros) of ``shape``, or None placeholders."""
    for name, wanted, value in (("weight", weight, 1.0), ("bias", bias, 0.0)):
        if wanted:
            setattr(layer, name, Parameter(xp.full(shape, value, dtype=dtype), dtype=dtype))
        else:
            layer.register_parameter(name, None)


class LayerNorm(_Affine):
    """Normalise each sample over its trailing ``normalized_shape`` dims (Ba et al. 2016).

    Args:
        normalized_shape: the trailing dims to normalise over (an int is one dim).
        eps: added to the variance for stability.
        elementwise_affine: learn a per-element weight (ones) and bias (zeros).
        bias: with ``elementwise_affine``, also learn the bias.
        dtype: parameter dtype (float32 unless given).

    Shape: (..., *normalized_shape) → same.
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, dtype=None) -> None:
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(
            _positive_int("normalized_shape dims", s) for s in normalized_shape
        )
        if not self.normalized_shape:
            raise ValueError("normalized_shape must have at least one dim, got ()")
        self.eps = _check_eps(eps)
        self.elementwise_affine = bool(elementwise_affine)
        dtype = _float_dtype("LayerNorm", dtype)
        _affine_params(self, self.normalized_shape, dtype, self.elementwise_affine,
                       self.elementwise_affine and bias)

    def reset_parameters(self) -> None:
        """Weight ones, bias zeros."""
        self._reset_affine()

    def forward(self, x) -> Tensor:
        x = ensure_tensor(x)
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(f"{self!r} expected input with trailing dims "
                             f"{self.normalized_shape}, got shape {tuple(x.shape)}")
        _check_dtype(self, x)
        if x.dtype.kind != "f":
            return layer_norm(x, self.normalized_shape)  # raises: needs a float input
        # Shape and dtype checked above, eps at construction: straight to the op (every
        # transformer block runs this twice).
        return LayerNormOp.apply(x, self.weight, self.bias, n_dims=k, eps=self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class _BatchNorm(_Affine):
    """Batch normalisation over axis 1 (Ioffe & Szegedy 2015); subclasses fix the input rank.

    Training normalises with the batch statistics and updates ``running_mean`` and the unbiased
    ``running_var`` by ``momentum`` (``None``: the cumulative average over all batches so far);
    evaluation normalises with the running statistics. The running statistics are buffers, so
    optimizers never touch them and ``state_dict`` carries them (with ``num_batches_tracked``),
    laid out as in PyTorch.

    Args:
        num_features: C, the size of axis 1.
        eps: added to the variance for stability.
        momentum: weight of the newest batch in the running statistics; None averages all
            batches equally (``1 / num_batches_tracked``).
        affine: learn a per-channel weight (ones) and bias (zeros).
        track_running_stats: keep running statistics (else batch statistics in both modes).
        dtype: parameter and running-statistics dtype (float32 unless given).
        bias: with ``affine``, also learn the bias.
    """

    _expected_ndims: tuple[int, ...] = ()
    #: When True (see ``scratchnn.finetune.freeze_batchnorm_stats``), training mode behaves as
    #: evaluation: the running statistics normalise and are never updated.
    frozen_stats: bool = False

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=None, *,
                 bias: bool = True) -> None:
        super().__init__()
        self.num_features = _positive_int("num_features", num_features)
        self.eps = _check_eps(eps)
        if momentum is not None and (isinstance(momentum, bool)
                                     or not isinstance(momentum, numbers.Real)
                                     or not 0 <= momentum <= 1):
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum!r}")
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = _float_dtype(type(self).__name__, dtype)
        shape = (self.num_features,)
        _affine_params(self, shape, dtype, self.affine, self.affine and bias)
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor(xp.zeros(shape), dtype=dtype))
            self.register_buffer("running_var", Tensor(xp.ones(shape), dtype=dtype))
            self.register_buffer("num_batches_tracked", Tensor(xp.zeros((), dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """Running mean zeros, running variance ones, no batches tracked."""
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics; weight ones, bias zeros."""
        self.reset_running_stats()
        self._reset_affine()

    def _check_input(self, x: Tensor) -> None:
        if x.ndim not in self._expected_ndims:
            dims = " or ".join(f"{d}D" for d in self._expected_ndims)
            raise ValueError(f"{self!r} expected {dims} input, got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{self!r} expected {self.num_features} channels on axis 1, "
                             f"got shape {tuple(x.shape)}")
        _check_dtype(self, x)

    def forward(self, x) -> Tensor:
        x = ensure_tensor(x)
        self._check_input(x)
        # Batch statistics in training, and always when there are no running statistics.
        training = self.training and not (self.frozen_stats and self.running_mean is not None)
        use_batch_stats = training or self.running_mean is None
        update = training and self.track_running_stats
        if use_batch_stats and x.size // x.shape[1] <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {tuple(x.shape)}")
        factor = 0.0
        if update:
            with no_grad():
                self.num_batches_tracked.add_(1)
            n = int(self.num_batches_tracked.item())
            factor = 1.0 / n if self.momentum is None else self.momentum
        # Running statistics are updated only when training with tracking on.
        stats_given = not use_batch_stats or update
        return batch_norm(
            x,
            self.running_mean if stats_given else None,
            self.running_var if stats_given else None,
            self.weight, self.bias, use_batch_stats, factor, self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, per channel C."""

    _expected_ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs, per channel C."""

    _expected_ndims = (4,)


class GroupNorm(_Affine):
    """Normalise each sample over groups of channels (Wu & He 2018); batch-size independent.

    Args:
        num_groups: number of groups; must divide num_channels.
        num_channels: C, the size of axis 1.
        eps: added to the variance for stability.
        affine: learn a per-channel weight (ones) and bias (zeros).
        dtype: parameter dtype (float32 unless given).
        bias: with ``affine``, also learn the bias.

    Shape: (N, C, ...) → same.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        self.num_groups = _positive_int("num_groups", num_groups)
        self.num_channels = _positive_int("num_channels", num_channels)
        if self.num_channels % self.num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.eps = _check_eps(eps)
        self.affine = bool(affine)
        dtype = _float_dtype("GroupNorm", dtype)
        _affine_params(self, (self.num_channels,), dtype, self.affine, self.affine and bias)

    def reset_parameters(self) -> None:
        """Weight ones, bias zeros."""
        self._reset_affine()

    def forward(self, x) -> Tensor:
        x = ensure_tensor(x)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"{self!r} expected input of shape (N, {self.num_channels}, ...), "
                             f"got shape {tuple(x.shape)}")
        _check_dtype(self, x)
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"affine={self.affine}, bias={self.bias is not None}")
