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
from scratchnn.ops.attention import scaled_dot_product_attention
from scratchnn.ops.conv import conv1d, conv2d
from scratchnn.ops.embedding import embedding
from scratchnn.ops.linear import linear
from scratchnn.ops.norm import batch_norm, group_norm, layer_norm
from scratchnn.ops.pool import (
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    global_avg_pool2d,
    max_pool1d,
    max_pool2d,
)

__all__ = [
    "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "conv1d", "conv2d",
    "global_avg_pool2d", "max_pool1d", "max_pool2d",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "dropout",
    "gelu", "huber_loss", "l1_loss", "leaky_relu", "linear", "log_softmax", "mse_loss",
    "nll_loss", "one_hot", "relu", "sigmoid", "softmax", "softplus", "tanh",
    "batch_norm", "embedding", "group_norm", "layer_norm",
    "scaled_dot_product_attention",
]
