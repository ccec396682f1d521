"""Options and results of the Trainer: ``TrainerConfig`` and ``FitResult``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FitResult", "TrainerConfig"]

TASKS = ("classification", "regression")
LOSSES = ("ce", "mse")
ON_NONFINITE = ("raise", "warn")


def positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is an int >= 1 (or None if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass
class TrainerConfig:
    """Options of :class:`Trainer`.

    Args:
        task: 'classification' (integer class targets) or 'regression' (float targets).
        loss: 'ce' (cross-entropy, classification only) or 'mse' (one-hot float targets for
            classification).
        epochs: total epochs (a resumed run continues up to this number).
        batch_size: training mini-batch size; the training set is reshuffled every epoch.
        patience: stop after this many epochs without improvement of ``monitor``; None never.
        monitor: the logged metric that picks the best epoch (and drives early stopping);
            without validation data 'train_loss' is used.
        min_delta: the smallest change of ``monitor`` that counts as an improvement.
        on_nonfinite: 'raise' a NonFiniteLossError, or 'warn' and stop, when the loss is
            NaN or infinite.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        progress: show a tqdm progress bar on stderr.
        plot: draw ``curves.png`` (loss and metric curves) in the run directory at the end.
        checkpoint_every: save the resumable checkpoint (and flush ``metrics.jsonl``) every
            this many epochs, or sooner when ``checkpoint_seconds`` have passed since the
            last save; always at the end of training.
        checkpoint_seconds: the longest time between two checkpoints.
        eval_batch_size: batch size of evaluate/predict.
    """

    task: str = "classification"
    loss: str = "ce"
    epochs: int = 100
    batch_size: int = 32
    patience: int | None = None
    monitor: str = "val_loss"
    min_delta: float = 0.0
    on_nonfinite: str = "raise"
    grad_clip: float | None = None
    progress: bool = True
    plot: bool = True
    checkpoint_every: int = 10
    checkpoint_seconds: float = 60.0
    eval_batch_size: int = 4096

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.task == "regression" and self.loss == "ce":
            raise ValueError("loss 'ce' (cross-entropy) needs a classification task; "
                             "use 'mse' for regression")
        if self.on_nonfinite not in ON_NONFINITE:
            raise ValueError(f"on_nonfinite must be one of {ON_NONFINITE}, "
                             f"got {self.on_nonfinite!r}")
        for name in ("epochs", "batch_size", "checkpoint_every", "eval_batch_size"):
            positive_int(name, getattr(self, name))
        positive_int("patience", self.patience, allow_none=True)
        if not self.checkpoint_seconds > 0:
            raise ValueError(f"checkpoint_seconds must be > 0, got {self.checkpoint_seconds!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns: the history and how training ended."""

    history: list[dict[str, Any]]
    epochs_run: int
    best_epoch: int | None
    best_value: float | None
    monitor: str
    stopped_early: bool = False
    stop_reason: str = "completed"
    messages: list[str] = field(default_factory=list)


def finite_or_none(value: Any) -> Any:
    """A Python float for JSON; NaN and infinity become None (JSON has no NaN)."""
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value
