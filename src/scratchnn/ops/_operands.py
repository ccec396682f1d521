"""Operand coercion shared by the op functions.

Python numbers and arrays take the dtype of the tensor they meet, so a float literal or a
float64 NumPy scalar never upcasts float32 work.
"""

from __future__ import annotations

import numpy as np

from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import DEFAULT_FLOAT, xp


def _result_dtype(a, b):
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        da, db = a._data.dtype, b._data.dtype
        if da == db:
            return da
        if da.kind == "f" and db.kind == "f":
            raise TypeError(
                f"operands have different float dtypes ({da} and {db}); convert one explicitly "
                f"with .astype() (scratchnn never upcasts silently)"
            )
        if da.kind == "f" or db.kind == "f":
            return da if da.kind == "f" else db
        return np.result_type(da, db)
    tensor, other = (a, b) if ta else (b, a)
    dtype = tensor._data.dtype
    if dtype.kind == "f":
        return dtype
    other_kind = np.asarray(other).dtype.kind
    if other_kind == "f":
        return DEFAULT_FLOAT
    if dtype.kind == "b" and other_kind != "b":
        return np.dtype(np.int64)
    return dtype


def _as(x, dtype):
    if isinstance(x, Tensor):
        # A tensor of another dtype here is an integer or bool one: never differentiable.
        return x if x._data.dtype == dtype else x._data.astype(dtype)
    return xp.asarray(x, dtype=dtype)


def binary(a, b):
    """Coerce the two operands of an elementwise op to one dtype.

    Tensors stay Tensors where their dtype already matches; everything else becomes a constant
    array. Raises TypeError when two float tensors of different precision meet: PyTorch would
    promote silently, which is how float64 leaks into float32 models.
    """
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a)
    dtype = _result_dtype(a, b)
    return _as(a, dtype), _as(b, dtype)


def constant_like(value, like):
    """``value`` as a constant array of ``like``'s dtype."""
    dtype = like._data.dtype if isinstance(like, Tensor) else like.dtype
    return value._data.astype(dtype, copy=False) if isinstance(value, Tensor) else xp.asarray(
        value, dtype=dtype
    )


def ensure_tensor(x) -> Tensor:
    """``x`` itself when it is a Tensor, else a new constant tensor."""
    return x if isinstance(x, Tensor) else Tensor(x)
