"""``Tensor``: an n-dimensional array that records the ops applied to it for backward."""

from __future__ import annotations

import numpy as np

from scratchnn.backend import DEFAULT_FLOAT, is_float_dtype, xp


def as_array(data, dtype=None):
    """An array for ``data``: floats become float32 and integers int64 unless ``dtype`` is given.

    Float64 is available on request (``dtype=np.float64``) but never picked up silently from
    NumPy's default, so a float64 array cannot leak into float32 parameters.
    """
    if isinstance(data, Tensor):
        data = data._data
    if dtype is not None:
        return xp.asarray(data, dtype=np.dtype(dtype))
    array = xp.asarray(data)
    kind = array.dtype.kind
    if kind == "f" and array.dtype != DEFAULT_FLOAT:
        array = array.astype(DEFAULT_FLOAT)
    elif kind in "iu" and array.dtype != np.int64:
        array = array.astype(np.int64)
    elif kind not in "fiub":
        raise TypeError(f"tensors hold numbers or bools, got an array of dtype {array.dtype}")
    return array


class Tensor:
    """An array with an optional gradient and the graph node that produced it.

    Args:
        data: array-like; Python floats become float32, float ndarrays keep their dtype.
        dtype: force a dtype.
        requires_grad: record ops on this tensor and accumulate its ``.grad`` in backward.
    """

    __slots__ = ("_data", "grad", "requires_grad", "_node", "_version", "__weakref__")
    # NumPy must hand ``ndarray <op> Tensor`` to the Tensor's reflected operators.
    __array_ufunc__ = None

    def __init__(self, data, dtype=None, requires_grad: bool = False) -> None:
        array = as_array(data, dtype)
        if requires_grad and not is_float_dtype(array.dtype):
            raise TypeError(f"only floating-point tensors can require grad, got {array.dtype}")
        self._data = array
        self.grad: Tensor | None = None
        self.requires_grad = bool(requires_grad)
        self._node = None
        self._version = 0

    @classmethod
    def _wrap(cls, array, requires_grad: bool) -> Tensor:
        """A tensor around an array produced by an op (no conversion, no checks)."""
        t = cls.__new__(cls)
        t._data = array
        t.grad = None
        t.requires_grad = requires_grad
        t._node = None
        t._version = 0
        return t

    # ----------------------------------------------------------------- array access
    @property
    def data(self):
        """The underlying array. Changing it in place bypasses autograd's checks."""
        return self._data

    @data.setter
    def data(self, value) -> None:
        value = value._data if isinstance(value, Tensor) else xp.asarray(value)
        self._data = value
        self._version += 1

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    def numel(self) -> int:
        return int(self._data.size)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __array__(self, dtype=None, copy=None):
        if dtype is not None:
            return self._data.astype(dtype, copy=False)
        return self._data

    def numpy(self):
        """The data as an ndarray (shared, not copied)."""
        return self._data

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"item() needs a single-element tensor, got shape {self.shape}")
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", precision=4, prefix="tensor(")
        extra = ""
        if self._data.dtype != DEFAULT_FLOAT:
            extra += f", dtype={self._data.dtype}"
        if self._node is not None:
            extra += f", grad_fn={self._node!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __bool__(self) -> bool:
        return bool(self._data)

    def __float__(self) -> float:
        return float(self._data)

    def __int__(self) -> int:
        return int(self._data)

    def __hash__(self) -> int:
        return id(self)

    # ----------------------------------------------------------------- autograd
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into every leaf that requires grad."""
        from scratchnn.autograd.engine import backward

        backward(self, grad, retain_graph)

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._wrap(self._data, False)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not is_float_dtype(self._data.dtype):
            raise TypeError(f"only floating-point tensors can require grad, got {self.dtype}")
        if self._node is not None and not requires_grad:
            raise RuntimeError("requires_grad_(False) only applies to leaf tensors; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad_(self) -> None:
        self.grad = None

    def astype(self, dtype) -> Tensor:
        """A copy in another dtype; differentiable between float dtypes."""
        return _ops.cast(self, dtype)

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def long(self) -> Tensor:
        return self.astype(np.int64)

    def clone(self) -> Tensor:
        return _ops.clone(self)

    # ----------------------------------------------------------------- in-place (no graph)
    def _bump(self) -> Tensor:
        self._version += 1
        return self

    def _check_inplace(self) -> None:
        if self.requires_grad and self._node is None and _grad_enabled():
            raise RuntimeError(
                "in-place change of a leaf tensor that requires grad; "
                "wrap it in scratchnn.no_grad()"
            )

    def copy_(self, other) -> Tensor:
        self._check_inplace()
        self._data[...] = _other_array(other, self._data.dtype)
        return self._bump()

    def fill_(self, value) -> Tensor:
        self._check_inplace()
        self._data.fill(value)
        return self._bump()

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def add_(self, other, alpha=1.0) -> Tensor:
        self._check_inplace()
        other = _other_array(other, self._data.dtype)
        if alpha != 1.0:
            other = other * self._data.dtype.type(alpha)
        self._data += other
        return self._bump()

    def mul_(self, other) -> Tensor:
        self._check_inplace()
        self._data *= _other_array(other, self._data.dtype)
        return self._bump()

    def __setitem__(self, index, value) -> None:
        self._check_inplace()
        self._data[_index_array(index)] = _other_array(value, self._data.dtype)
        self._bump()

    # ----------------------------------------------------------------- operators
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __abs__(self):
        return _ops.abs(self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    def _compare(self, other, op):
        return Tensor._wrap(op(self._data, _other_array(other, None)), False)

    def __lt__(self, other):
        return self._compare(other, xp.less)

    def __le__(self, other):
        return self._compare(other, xp.less_equal)

    def __gt__(self, other):
        return self._compare(other, xp.greater)

    def __ge__(self, other):
        return self._compare(other, xp.greater_equal)

    def __eq__(self, other):  # elementwise, as in NumPy and PyTorch
        return self._compare(other, xp.equal)

    def __ne__(self, other):
        return self._compare(other, xp.not_equal)

    # ----------------------------------------------------------------- methods
    def sum(self, axis=None, keepdims=False):
        return _ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return _ops.min(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, correction=1):
        return _ops.var(self, axis, keepdims, correction)

    def argmax(self, axis=None, keepdims=False):
        return Tensor._wrap(xp.argmax(self._data, axis=axis, keepdims=keepdims), False)

    def argmin(self, axis=None, keepdims=False):
        return Tensor._wrap(xp.argmin(self._data, axis=axis, keepdims=keepdims), False)

    def reshape(self, *shape):
        return _ops.reshape(self, *shape)

    def view(self, *shape):
        return _ops.reshape(self, *shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops.flatten(self, start_dim, end_dim)

    def transpose(self, *axes):
        return _ops.transpose(self, *axes)

    def permute(self, *axes):
        return _ops.permute(self, *axes)

    @property
    def T(self):
        return _ops.transpose(self)

    def expand(self, *shape):
        return _ops.expand(self, *shape)

    def squeeze(self, axis=None):
        return _ops.squeeze(self, axis)

    def unsqueeze(self, axis):
        return _ops.unsqueeze(self, axis)

    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def abs(self):
        return _ops.abs(self)

    def clip(self, min=None, max=None):
        return _ops.clip(self, min, max)

    clamp = clip

    def relu(self):
        return _ops.relu(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def tanh(self):
        return _ops.tanh(self)

    def softmax(self, axis=-1):
        return _ops.softmax(self, axis)

    def log_softmax(self, axis=-1):
        return _ops.log_softmax(self, axis)


def _other_array(value, dtype):
    array = value._data if isinstance(value, Tensor) else xp.asarray(value)
    if dtype is not None and array.dtype != dtype:
        array = array.astype(dtype)
    return array


def _index_array(index):
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    return index


def _grad_enabled() -> bool:
    from scratchnn.autograd.grad_mode import is_grad_enabled

    return is_grad_enabled()


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor (float data defaults to float32; see :class:`Tensor`)."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


# Bound last: the ops import this module for ``Tensor``.
from scratchnn import ops as _ops  # noqa: E402
