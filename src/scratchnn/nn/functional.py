"""The functional API, mirroring ``torch.nn.functional`` names."""

from scratchnn.nn.dropout import dropout
from scratchnn.nn.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    l1_loss,
    mse_loss,
    nll_loss,
    one_hot,
)
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
from scratchnn.ops.linear import linear

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "dropout",
    "gelu", "huber_loss", "l1_loss", "leaky_relu", "linear", "log_softmax", "mse_loss",
    "nll_loss", "one_hot", "relu", "sigmoid", "softmax", "softplus", "tanh",
]
