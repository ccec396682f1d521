"""``Parameter``: a leaf tensor that a Module registers as trainable."""

from __future__ import annotations

from scratchnn.autograd.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that requires grad (unless asked not to) and that Modules register.

    Args:
        data: an array or Tensor (its data is shared, not copied); floats default to float32.
        requires_grad: False makes a frozen parameter that optimizers never move.
    """

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None) -> None:
        super().__init__(data, dtype=dtype, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
