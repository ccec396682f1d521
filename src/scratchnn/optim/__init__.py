"""Optimizers, learning-rate schedulers and pickle-free optimizer checkpoints."""

from scratchnn.optim import lr_scheduler
from scratchnn.optim.adagrad import Adagrad
from scratchnn.optim.adam import Adam, AdamW
from scratchnn.optim.optimizer import (
    Optimizer,
    flatten_state_dict,
    param_groups_for_weight_decay,
    unflatten_state_dict,
)
from scratchnn.optim.rmsprop import RMSprop
from scratchnn.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "flatten_state_dict",
    "lr_scheduler",
    "param_groups_for_weight_decay",
    "unflatten_state_dict",
]
