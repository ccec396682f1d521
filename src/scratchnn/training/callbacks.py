"""Early stopping: track the best value of a monitored metric and when to stop."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["EarlyStopping", "metric_mode"]

#: Metrics where larger is better; every other metric (losses, mse, mae) is minimised.
_MAXIMISED = ("accuracy", "precision", "recall", "f1", "r2")


def metric_mode(name: str) -> str:
    """'max' for accuracy-like metrics (accuracy, precision, recall, f1, r2), else 'min'."""
    base = name.split("_", 1)[1] if name.startswith(("train_", "val_")) else name
    return "max" if base in _MAXIMISED else "min"


class EarlyStopping:
    """Remember the best value of ``monitor`` and stop after ``patience`` epochs without one.

    Args:
        monitor: the record key to watch, e.g. 'val_loss' or 'val_accuracy'.
        patience: epochs without improvement before stopping; None never stops (the best
            epoch is still tracked, so the best model can be kept).
        mode: 'min', 'max' or 'auto' (:func:`metric_mode` of ``monitor``).
        min_delta: an improvement must beat the best value by more than this.
    """

    def __init__(self, monitor: str = "val_loss", patience: int | None = None,
                 mode: str = "auto", min_delta: float = 0.0) -> None:
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int)
                                     or patience < 1):
            raise ValueError(f"patience must be a positive integer or None, got {patience!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta!r}")
        self.monitor = monitor
        self.patience = patience
        self.mode = metric_mode(monitor) if mode == "auto" else mode
        self.min_delta = float(min_delta)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, record: dict[str, Any]) -> bool:
        """Look at one epoch's record; return True when it is the best so far."""
        if self.monitor not in record:
            raise ValueError(f"early stopping monitors {self.monitor!r}, which is not among "
                             f"the logged metrics: {', '.join(sorted(record))}")
        value = record[self.monitor]
        if value is None or not math.isfinite(value):
            improved = False
        else:
            improved = self._improves(float(value))
        if improved:
            self.best, self.best_epoch, self.wait = float(value), int(record["epoch"]), 0
        else:
            self.wait += 1
            if self.patience is not None and self.wait >= self.patience:
                self.stopped_epoch = int(record["epoch"])
        return improved

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs have passed without improvement."""
        return self.stopped_epoch is not None

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state, enough to resume."""
        return {"monitor": self.monitor, "mode": self.mode, "patience": self.patience,
                "min_delta": self.min_delta, "best": self.best, "best_epoch": self.best_epoch,
                "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the counters saved by :meth:`state_dict` (the settings stay this object's)."""
        if state.get("monitor") != self.monitor:
            raise ValueError(f"early-stopping state monitors {state.get('monitor')!r}, "
                             f"this run monitors {self.monitor!r}")
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.wait = int(state["wait"])
        self.stopped_epoch = state["stopped_epoch"]
