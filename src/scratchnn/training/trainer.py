"""The Trainer: fit a model with mini-batch gradient descent, evaluate it, predict with it."""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from scratchnn.autograd.grad_mode import no_grad
from scratchnn.autograd.tensor import Tensor
from scratchnn.data import DataLoader, TensorDataset
from scratchnn.errors import CheckpointError, NonFiniteLossError, NonFiniteLossWarning
from scratchnn.nn import functional as F
from scratchnn.nn.utils import clip_grad_norm_
from scratchnn.training import checkpoint as ckpt
from scratchnn.training.callbacks import EarlyStopping
from scratchnn.training.metrics import classification_metrics, regression_metrics
from scratchnn.training.rundir import MetricsLog
from scratchnn.training.trainer_config import (
    FitResult,
    TrainerConfig,
    finite_or_none,
    positive_int,
)

__all__ = ["FitResult", "Trainer", "TrainerConfig"]

# Overflow in a diverging step is reported once, as a non-finite loss naming the step, rather
# than as NumPy RuntimeWarnings from deep inside the ops.
_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore"}


class Trainer:
    """Fit a model by mini-batch gradient descent; log, checkpoint and early-stop as it goes.

    Args:
        model: a Module mapping (N, F) float32 features to (N, C) logits or (N, 1) values.
        optimizer: an ``scratchnn.optim`` optimizer over the model's parameters.
        config: the training options.
        scheduler: optional lr scheduler, stepped once per epoch (``ReduceLROnPlateau`` with
            the monitored metric).
        num_classes: number of classes (classification).
        run_dir: where metrics, curves and checkpoints go; None keeps everything in memory.
        rng: generator of the training-set shuffle (None: the default generator).
        rngs: other generators the model draws from (e.g. dropout), saved for an exact resume.
        target_inverse: maps model-space regression targets back to original units for the
            metrics (e.g. ``Preprocessor.inverse_target``).
        model_metadata: JSON-able values stored in the header of ``model.safetensors``.
    """

    def __init__(self, model: Any, optimizer: Any, config: TrainerConfig, *,
                 scheduler: Any = None, num_classes: int | None = None,
                 run_dir: str | Path | None = None, rng: np.random.Generator | None = None,
                 rngs: Mapping[str, np.random.Generator] | None = None,
                 target_inverse: Callable[[np.ndarray], np.ndarray] | None = None,
                 model_metadata: Mapping[str, Any] | None = None) -> None:
        if not isinstance(config, TrainerConfig):
            raise TypeError(f"config must be a TrainerConfig, got {type(config).__name__}")
        if config.task == "classification":
            positive_int("num_classes", num_classes)
        self.model, self.optimizer, self.config = model, optimizer, config
        self.scheduler = scheduler
        self.num_classes = None if num_classes is None else int(num_classes)
        self.run_dir = None if run_dir is None else Path(run_dir)
        if rng is None:
            from scratchnn.random import default_generator

            rng = default_generator()
        self.rng = rng
        self.rngs = {"shuffle": rng, **dict(rngs or {})}
        self.target_inverse = target_inverse
        self.model_metadata = dict(model_metadata or {})
        self.epoch = 0
        self.step = 0
        self._saved_at = time.perf_counter()

    # ------------------------------------------------------------------------- helpers
    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.config.loss == "ce":
            return F.cross_entropy(out, y)
        if self.config.task == "classification":
            return F.mse_loss(out, F.one_hot(y, self.num_classes, dtype=out.dtype))
        return F.mse_loss(out, y)

    def _check_data(self, x: Any, y: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x)
        y = np.asarray(y)
        if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
            raise ValueError(f"{name} data must be a non-empty (N, F) feature matrix and N "
                             f"targets, got features {x.shape} and targets {y.shape}")
        x = x.astype(np.float32, copy=False)
        if self.config.task == "classification":
            if y.dtype.kind not in "iu":
                raise ValueError(f"{name} targets must be integer class indices for "
                                 f"classification, got dtype {y.dtype}")
            return x, y.astype(np.int64, copy=False)
        return x, y.astype(np.float32, copy=False).reshape(len(y), -1)  # (N, 1)

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------------- inference
    def predict(self, x: Any) -> np.ndarray:
        """Raw model outputs (logits or values) for features ``x`` (N, F), in eval mode."""
        x = np.asarray(x, dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        outs = []
        try:
            with no_grad(), np.errstate(**_QUIET):
                for start in range(0, len(x), self.config.eval_batch_size):
                    chunk = Tensor(x[start:start + self.config.eval_batch_size])
                    outs.append(np.asarray(self.model(chunk).data))
        finally:
            self.model.train(was_training)
        return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)

    def evaluate(self, x: Any, y: Any, *, confusion: bool = True) -> dict[str, Any]:
        """Loss and metrics on ``(x, y)``: accuracy, macro precision/recall/F1 (+ confusion
        matrix) for classification; MSE, MAE, R² (in original units) for regression."""
        x, y = self._check_data(x, y, "evaluation")
        out = self.predict(x)
        with no_grad(), np.errstate(**_QUIET):
            loss = float(self._loss(Tensor(out), Tensor(y)).item())
        result: dict[str, Any] = {"loss": loss}
        if self.config.task == "classification":
            metrics = classification_metrics(y, out.argmax(axis=1), self.num_classes)
            if not confusion:
                metrics.pop("confusion_matrix")
        else:
            pred, true = out[:, 0], y[:, 0]
            if self.target_inverse is not None:
                pred, true = self.target_inverse(pred), self.target_inverse(true)
            with np.errstate(**_QUIET):
                metrics = regression_metrics(true, pred)
        result.update(metrics)
        return {k: finite_or_none(v) for k, v in result.items()}

    # ------------------------------------------------------------------------- training
    def _nonfinite(self, value: float, epoch: int, batch: int, n_batches: int) -> str:
        msg = (f"non-finite training loss ({value}) at step {self.step} (epoch {epoch}, batch "
               f"{batch}/{n_batches}); the learning rate ({self._lr():g}) may be too high")
        if self.config.on_nonfinite == "raise":
            raise NonFiniteLossError(msg)
        warnings.warn(msg, NonFiniteLossWarning, stacklevel=3)
        return msg

    def _train_epoch(self, loader: DataLoader, epoch: int) -> tuple[dict[str, float], str | None]:
        """One pass over the training data; returns (train metrics, non-finite message)."""
        self.model.train()
        total, loss_sum, correct = 0, 0.0, 0
        n_batches = len(loader)
        for batch, (xb, yb) in enumerate(loader, start=1):
            self.step += 1
            with np.errstate(**_QUIET):
                out = self.model(xb)
                loss = self._loss(out, yb)
                value = float(loss.item())
                if not math.isfinite(value):
                    return {}, self._nonfinite(value, epoch, batch, n_batches)
                self.optimizer.zero_grad()
                loss.backward()
                if self.config.grad_clip is not None:
                    clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
                self.optimizer.step()
            n = len(yb)
            total += n
            loss_sum += value * n
            if self.config.task == "classification":
                correct += int((out.data.argmax(axis=1) == yb.data).sum())
        metrics = {"train_loss": loss_sum / total}
        if self.config.task == "classification":
            metrics["train_accuracy"] = correct / total
        return metrics, None

    def _state(self, stopper: EarlyStopping, stop_reason: str | None) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "early_stopping": stopper.state_dict(),
                "stop_reason": stop_reason, "trainer_config": asdict(self.config)}

    def _save_checkpoint(self, stopper: EarlyStopping, best: dict[str, np.ndarray] | None,
                         best_changed: bool, stop_reason: str | None) -> None:
        if best is None or best_changed:
            # No best epoch yet (the monitored metric was never finite): keep the current one.
            weights = self.model.state_dict() if best is None else best
            meta = {**self.model_metadata, "epoch": stopper.best_epoch or self.epoch}
            ckpt.save_weights(self.run_dir / ckpt.MODEL_FILE, weights, meta)
        ckpt.save_training_state(self.run_dir, model=self.model, optimizer=self.optimizer,
                                 scheduler=self.scheduler, rngs=self.rngs,
                                 state=self._state(stopper, stop_reason))
        self._saved_at = time.perf_counter()

    def fit(self, train: tuple[Any, Any], val: tuple[Any, Any] | None = None, *,
            resume: bool = False) -> FitResult:
        """Train for ``config.epochs`` epochs (or until early stopping), keep the best model.

        Args:
            train: (features (N, F), targets (N,)) of the training split.
            val: the same for the validation split; it picks the best epoch.
            resume: continue the run saved in ``run_dir`` exactly where it stopped.

        Returns:
            a :class:`FitResult`; the model holds the best epoch's weights afterwards.

        Raises:
            NonFiniteLossError: the loss became NaN/inf and ``on_nonfinite='raise'``.
        """
        cfg = self.config
        x_tr, y_tr = self._check_data(*train, "training")
        val_data = None if val is None else self._check_data(*val, "validation")
        monitor = cfg.monitor if val_data is not None else "train_loss"
        stopper = EarlyStopping(monitor, cfg.patience, min_delta=cfg.min_delta)
        loader = DataLoader(TensorDataset(x_tr, y_tr), cfg.batch_size, shuffle=True,
                            rng=self.rng)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        log = MetricsLog(None if self.run_dir is None else self.run_dir / ckpt.METRICS_FILE)
        best: dict[str, np.ndarray] | None = None
        best_changed = False  # since the last save of model.safetensors
        stop_reason: str | None = None
        if resume:
            best, stop_reason = self._resume(stopper, log)
        result = FitResult(history=log.records, epochs_run=0, best_epoch=None, best_value=None,
                           monitor=monitor)
        self._saved_at = time.perf_counter()
        idle = stop_reason is not None or self.epoch >= cfg.epochs  # no epoch will run
        bar = tqdm(total=cfg.epochs, initial=min(self.epoch, cfg.epochs), desc="train",
                   unit="epoch", file=sys.stderr, disable=not cfg.progress or idle,
                   leave=False, dynamic_ncols=True)
        try:
            while stop_reason is None and self.epoch < cfg.epochs:
                epoch = self.epoch + 1
                start, lr = time.perf_counter(), self._lr()
                train_metrics, message = self._train_epoch(loader, epoch)
                if message is not None:
                    stop_reason = "non-finite loss"
                    result.messages.append(message)
                    break
                self.epoch = epoch
                record: dict[str, Any] = {"epoch": epoch, "step": self.step, **train_metrics}
                if val_data is not None:
                    val_metrics = self.evaluate(*val_data, confusion=False)
                    record.update({f"val_{k}": v for k, v in val_metrics.items()})
                if self.scheduler is not None:
                    self._step_scheduler(record.get(monitor))
                record["lr"] = lr
                record["time"] = time.perf_counter() - start
                record = {k: finite_or_none(v) for k, v in record.items()}
                log.append(record)
                result.epochs_run += 1
                if stopper.update(record):
                    best = {k: v.copy() for k, v in self.model.state_dict().items()}
                    best_changed = True
                if stopper.should_stop:
                    stop_reason = "early stopping"
                if self.run_dir is not None and self._checkpoint_due(stop_reason):
                    log.flush()
                    self._save_checkpoint(stopper, best, best_changed, stop_reason)
                    best_changed = False
                bar.update(1)
                bar.set_postfix({k: f"{record[k]:.4g}" for k in ("train_loss", monitor)
                                 if record.get(k) is not None})
        finally:
            bar.close()
            self._finish(log)
        if self.run_dir is not None and best is not None and best_changed:
            # Stopped by a non-finite loss after a better epoch than the last checkpoint's.
            meta = {**self.model_metadata, "epoch": stopper.best_epoch}
            ckpt.save_weights(self.run_dir / ckpt.MODEL_FILE, best, meta)
        if best is not None:
            self.model.load_state_dict(best)
        result.best_epoch, result.best_value = stopper.best_epoch, stopper.best
        result.stopped_early = stop_reason is not None
        result.stop_reason = stop_reason or "completed"
        return result

    def _checkpoint_due(self, stop_reason: str | None) -> bool:
        cfg = self.config
        return (stop_reason is not None or self.epoch >= cfg.epochs
                or self.epoch % cfg.checkpoint_every == 0
                or time.perf_counter() - self._saved_at >= cfg.checkpoint_seconds)

    def _step_scheduler(self, metric: Any) -> None:
        from scratchnn.optim.lr_scheduler import ReduceLROnPlateau

        if isinstance(self.scheduler, ReduceLROnPlateau):
            if metric is not None:
                self.scheduler.step(metric)
        else:
            self.scheduler.step()

    def _resume(self, stopper: EarlyStopping,
                log: MetricsLog) -> tuple[dict[str, np.ndarray] | None, str | None]:
        """Load the run's last checkpoint; return (best weights, stop reason if finished)."""
        if self.run_dir is None:
            raise ValueError("resume=True needs the Trainer's run_dir")
        state = ckpt.load_training_state(self.run_dir, model=self.model,
                                         optimizer=self.optimizer, scheduler=self.scheduler,
                                         rngs=self.rngs)
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        try:
            stopper.load_state_dict(state["early_stopping"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{self.run_dir / ckpt.STATE_FILE}: cannot restore early "
                                  f"stopping: {e}") from None
        log.load(keep_through_epoch=self.epoch)
        best = None
        if stopper.best_epoch is not None:
            best, _ = ckpt.read_tensors(self.run_dir / ckpt.MODEL_FILE)
        return best, state.get("stop_reason")

    def _finish(self, log: MetricsLog) -> None:
        """Write the metrics and curves of everything logged so far (also after a failure)."""
        if self.run_dir is None or not log.records:
            return
        log.flush()
        if not self.config.plot:
            return
        from scratchnn.training.plots import plot_history

        try:
            plot_history(log.records, self.run_dir / ckpt.CURVES_FILE)
        except ValueError:
            pass  # nothing numeric to draw yet
