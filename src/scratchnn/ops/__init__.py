"""Primitive differentiable ops: ``Function`` subclasses and their functional forms."""

from scratchnn.ops.activation import (
    gelu,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)
from scratchnn.ops.elementwise import (
    abs,
    add,
    cast,
    clip,
    clone,
    div,
    exp,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    sqrt,
    sub,
    where,
)
from scratchnn.ops.linalg import matmul
from scratchnn.ops.reduce import max, mean, min, sum, var
from scratchnn.ops.shape import (
    cat,
    concat,
    expand,
    flatten,
    getitem,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
    unsqueeze,
)

__all__ = [
    "abs", "add", "cast", "cat", "clip", "clone", "concat", "div", "exp", "expand", "flatten",
    "gelu", "getitem", "leaky_relu", "log", "log_softmax", "matmul", "max", "maximum", "mean",
    "min", "minimum", "mul", "neg", "permute", "pow", "relu", "reshape", "sigmoid", "softmax",
    "softplus", "split", "sqrt", "squeeze", "stack", "sub", "sum", "tanh", "transpose",
    "unsqueeze", "var", "where",
]
