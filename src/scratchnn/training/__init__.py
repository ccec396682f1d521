"""Training: the Trainer loop, callbacks, metrics, checkpoints, run directories and plots."""

from scratchnn.training.callbacks import EarlyStopping
from scratchnn.training.checkpoint import LoadedRun, load_run
from scratchnn.training.trainer import FitResult, Trainer, TrainerConfig

__all__ = ["EarlyStopping", "FitResult", "LoadedRun", "Trainer", "TrainerConfig", "load_run"]
