"""Neural-network building blocks: Module, Parameter, layers, losses, init and functional."""

# module first: every layer (and loss.py) subclasses Module.
from scratchnn.nn.module import IncompatibleKeys, Module, RemovableHandle  # noqa: I001
from scratchnn.nn.parameter import Parameter
from scratchnn.nn.activation import (
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from scratchnn.nn.containers import ModuleDict, ModuleList, Sequential
from scratchnn.nn.dropout import Dropout
from scratchnn.nn.linear import Flatten, Identity, Linear
from scratchnn.nn.rnn import GRU, LSTM, RNN
from scratchnn.nn.norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from scratchnn.nn.embedding import Embedding
from scratchnn.nn.attention import MultiheadAttention
from scratchnn.nn.lora import LoRALinear
from scratchnn.nn.conv import Conv1d, Conv2d
from scratchnn.nn.pooling import (
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    GlobalAvgPool2d,
    MaxPool1d,
    MaxPool2d,
)
from scratchnn.nn.summary import summary
from scratchnn.nn import functional as functional
from scratchnn.nn import init as init
from scratchnn.nn import lora as lora
from scratchnn.nn import loss as loss
from scratchnn.nn import utils as utils
from scratchnn.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
)

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "BatchNorm1d",
    "BatchNorm2d",
    "Embedding",
    "GroupNorm",
    "LayerNorm",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "GlobalAvgPool2d",
    "MaxPool1d",
    "MaxPool2d",
    "GELU",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "HuberLoss",
    "Identity",
    "IncompatibleKeys",
    "L1Loss",
    "LeakyReLU",
    "Linear",
    "LoRALinear",
    "LogSoftmax",
    "MSELoss",
    "Module",
    "MultiheadAttention",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "ReLU",
    "RemovableHandle",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "functional",
    "init",
    "lora",
    "loss",
    "summary",
    "utils",
]
