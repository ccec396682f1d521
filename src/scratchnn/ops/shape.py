"""Shape and indexing ops: reshape, transpose/permute, expand, squeeze, getitem, concat,
stack, split."""

from __future__ import annotations

import numpy as np

from scratchnn.autograd.function import Function
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops._operands import ensure_tensor


def _shape_args(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape), None


class Transpose(Function):
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, grad):
        return grad.transpose(np.argsort(ctx.axes)), None


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        return xp.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return grad, None  # the engine sums the broadcast axes back down


def _has_advanced(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, (list, np.ndarray)) for i in items)


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.index, ctx.shape, ctx.dtype = index, x.shape, x.dtype
        return x[index]

    @staticmethod
    def backward(ctx, grad):
        out = xp.zeros(ctx.shape, dtype=ctx.dtype)
        if _has_advanced(ctx.index):
            # Repeated integer indices must add up, which plain assignment would not do.
            xp.add.at(out, ctx.index, grad)
        else:
            out[ctx.index] = grad
        return out, None


class Concat(Function):
    @staticmethod
    def forward(ctx, axis, *arrays):
        ctx.axis = axis
        ctx.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return xp.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return (None, *xp.split(grad, ctx.bounds, axis=ctx.axis))


class Stack(Function):
    @staticmethod
    def forward(ctx, axis, *arrays):
        ctx.axis = axis
        return xp.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        n = grad.shape[ctx.axis]
        return (None, *(xp.take(grad, i, axis=ctx.axis) for i in range(n)))


def reshape(x, *shape) -> Tensor:
    x = ensure_tensor(x)
    shape = _shape_args(shape)
    try:
        return Reshape.apply(x, shape)
    except ValueError:
        raise ValueError(f"cannot reshape a tensor of shape {x.shape} to {shape}") from None


def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    x = ensure_tensor(x)
    nd = max(x.ndim, 1)
    start, end = start_dim % nd, end_dim % nd
    shape = x.shape[:start] + (-1,) + x.shape[end + 1 :]
    return reshape(x, shape)


def transpose(x, *axes) -> Tensor:
    """Reverse the axes, or swap two (``transpose(x, 0, 1)``), or permute (a tuple)."""
    x = ensure_tensor(x)
    axes = _shape_args(axes)
    if not axes:
        perm = tuple(reversed(range(x.ndim)))
    elif len(axes) == 2:
        a, b = (ax % x.ndim for ax in axes)
        perm = list(range(x.ndim))
        perm[a], perm[b] = perm[b], perm[a]
        perm = tuple(perm)
    else:
        return permute(x, axes)
    return Transpose.apply(x, perm)


def permute(x, *axes) -> Tensor:
    x = ensure_tensor(x)
    axes = _shape_args(axes)
    perm = tuple(a % x.ndim for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"permute needs a permutation of {x.ndim} axes, got {axes}")
    return Transpose.apply(x, perm)


def expand(x, *shape) -> Tensor:
    """Broadcast to ``shape`` (-1 keeps a size) without copying."""
    x = ensure_tensor(x)
    shape = _shape_args(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"cannot expand shape {x.shape} to fewer dims {shape}")
    shape = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(f"cannot expand shape {x.shape} to {shape}") from None
    return Expand.apply(x, shape)


def squeeze(x, axis=None) -> Tensor:
    x = ensure_tensor(x)
    if axis is None:
        shape = tuple(n for n in x.shape if n != 1)
    else:
        axes = {a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis)}
        shape = tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1))
    return Reshape.apply(x, shape)


def unsqueeze(x, axis: int) -> Tensor:
    x = ensure_tensor(x)
    axis = axis % (x.ndim + 1)
    return Reshape.apply(x, x.shape[:axis] + (1,) + x.shape[axis:])


def _normalise_index(index):
    """Tensors inside an index become arrays; lists become arrays."""
    if isinstance(index, tuple):
        return tuple(_normalise_index(i) for i in index)
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def getitem(x, index) -> Tensor:
    """NumPy indexing: ints, slices, None, Ellipsis, integer arrays and boolean masks."""
    x = ensure_tensor(x)
    index = _normalise_index(index)
    try:
        return GetItem.apply(x, index)
    except IndexError as err:
        raise IndexError(f"bad index for a tensor of shape {x.shape}: {err}") from None


def _same_dtype(name: str, tensors: list[Tensor]) -> None:
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise TypeError(
            f"{name}() needs tensors of one dtype, got {sorted(str(d) for d in dtypes)}; "
            f"convert explicitly with .astype() (scratchnn never upcasts silently)"
        )


def concat(tensors, axis: int = 0) -> Tensor:
    tensors = [ensure_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concat() needs at least one tensor")
    _same_dtype("concat", tensors)
    return Concat.apply(axis, *tensors)


cat = concat


def stack(tensors, axis: int = 0) -> Tensor:
    tensors = [ensure_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack() needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack() needs tensors of one shape, got {sorted(shapes)}")
    _same_dtype("stack", tensors)
    return Stack.apply(axis, *tensors)


def split(x, split_size_or_sections, axis: int = 0) -> list[Tensor]:
    """Split into chunks of ``split_size`` (an int) or of the given sizes (a list)."""
    x = ensure_tensor(x)
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split size must be > 0, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split sizes {sizes} do not add up to the axis size {n}")
    out, start = [], 0
    lead = (slice(None),) * (axis % x.ndim)
    for size in sizes:
        out.append(getitem(x, lead + (slice(start, start + size),)))
        start += size
    return out
