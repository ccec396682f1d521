"""``Function``: a primitive op's forward and backward on arrays, and the graph node it records.

A primitive op subclasses :class:`Function` with two static methods::

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):
            out = xp.exp(x)
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, grad):
            (out,) = ctx.saved
            return grad * out

Both take and return arrays, never Tensors. ``backward`` returns one gradient per input of
``forward`` (a tuple when there are several), ``None`` where none is needed; it may skip the
work for inputs whose ``ctx.needs_input_grad[i]`` is False. Broadcasting is undone by the engine,
so elementwise backward code never sums over broadcast axes itself. ``backward`` must not modify
``grad`` in place: the same array may be handed to several inputs.
"""

from __future__ import annotations

from scratchnn.autograd import grad_mode
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp


class Context:
    """The graph node of one op application: what backward needs, and the op's inputs."""

    __slots__ = (
        "fn", "inputs", "needs_input_grad", "saved", "_versions", "_freed", "__dict__",
    )

    def __init__(self, fn: type[Function]) -> None:
        self.fn = fn
        self.inputs: tuple = ()
        self.needs_input_grad: tuple[bool, ...] = ()
        self.saved: tuple = ()
        self._versions: tuple = ()
        self._freed = False

    def save_for_backward(self, *arrays) -> None:
        """Keep arrays for backward; an in-place change to one of them is caught there."""
        self.saved = arrays

    def __repr__(self) -> str:
        return f"<{self.fn.__name__}Backward>"


class Function:
    """Base class of primitive differentiable ops."""

    @staticmethod
    def forward(ctx: Context, *arrays, **attrs):  # pragma: no cover - abstract
        raise NotImplementedError("abstract: subclasses define forward")

    @staticmethod
    def backward(ctx: Context, grad):  # pragma: no cover - abstract
        raise NotImplementedError("abstract: subclasses define backward")

    @classmethod
    def apply(cls, *inputs, **attrs) -> Tensor:
        """Run forward on the inputs' arrays and record the node when a gradient is needed.

        Inputs that are not Tensors (arrays, None) are passed through as constants.
        """
        arrays = [x._data if isinstance(x, Tensor) else x for x in inputs]
        record = grad_mode._state.enabled and any(
            isinstance(x, Tensor) and x.requires_grad for x in inputs
        )
        ctx = Context(cls)
        if record:
            ctx.needs_input_grad = tuple(
                isinstance(x, Tensor) and x.requires_grad for x in inputs
            )
        out = cls.forward(ctx, *arrays, **attrs)
        if not isinstance(out, xp.ndarray):
            # NumPy returns scalars, not 0-d arrays, from full reductions and from ufuncs on
            # 0-d inputs; a tensor's data is always an array (in-place ops write into it).
            out = xp.asarray(out)
        result = Tensor._wrap(out, record)
        if record:
            ctx.inputs = inputs
            if ctx.saved:
                ctx._versions = _saved_versions(ctx.saved, inputs, result)
            result._node = ctx
        return result


def _saved_versions(saved: tuple, inputs: tuple, result: Tensor) -> tuple:
    """(tensor, version) for every saved array that is a tensor's own data."""
    versions = []
    for array in saved:
        if array is result._data:
            versions.append((result, result._version))
            continue
        for x in inputs:
            if isinstance(x, Tensor) and x._data is array:
                versions.append((x, x._version))
                break
    return tuple(versions)
