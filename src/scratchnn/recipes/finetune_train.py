"""The fine-tuning loop for classifiers: per-step warm-up/decay, gradual unfreezing, the
trainability audit after the first step (and after each unfreezing), best-epoch keeping.

Unlike the Trainer it feeds token batches (ids + attention mask, cut to their longest row),
steps the learning rate every batch, and times each optimizer step (``s_per_step``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from scratchnn.autograd.grad_mode import no_grad
from scratchnn.autograd.tensor import Tensor
from scratchnn.errors import NonFiniteLossError, ScratchnnError
from scratchnn.finetune import GradualUnfreezer, TrainabilityAudit, TrainabilityError
from scratchnn.nn import functional as F
from scratchnn.nn.utils import clip_grad_norm_
from scratchnn.optim.lr_scheduler import LambdaLR
from scratchnn.recipes.finetune_data import Batch, forward
from scratchnn.training.callbacks import EarlyStopping
from scratchnn.training.metrics import classification_metrics
from scratchnn.training.rundir import MetricsLog
from scratchnn.training.trainer_config import finite_or_none

__all__ = ["SCHEDULES", "FitSummary", "LoopConfig", "audit_step", "evaluate", "fit",
           "lr_factor", "predict_logits"]

SCHEDULES = ("none", "linear", "cosine")
Echo = Callable[[str], None]


@dataclass
class LoopConfig:
    """Options of :func:`fit` (see ``FinetuneOptions`` for their meaning)."""

    epochs: int
    batch_size: int
    eval_batch_size: int = 64
    patience: int | None = None
    monitor: str = "val_loss"
    grad_clip: float | None = None
    warmup_steps: int = 0
    schedule: str = "none"
    log_every: int = 0
    progress: bool = True


@dataclass
class FitSummary:
    """How training went: epochs, steps, seconds per step, best epoch, why it stopped."""

    epochs_run: int = 0
    steps: int = 0
    s_per_step: float | None = None
    train_seconds: float = 0.0
    best_epoch: int | None = None
    stop_reason: str = "completed"
    notes: list[str] = field(default_factory=list)


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """The lr multiplier of 0-based ``step``: linear warm-up, then none/linear/cosine decay."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "none" or total <= warmup:
        return 1.0
    progress = min((step - warmup) / (total - warmup), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def predict_logits(model: Any, batch: Batch, batch_size: int = 64) -> np.ndarray:
    """Logits (N, C) in eval mode; token batches run sorted by length (less padding)."""
    n = len(batch)
    order = np.arange(n)
    if len(batch.arrays) == 2:
        order = np.argsort(batch.arrays[1].sum(axis=1), kind="stable")
    was_training = model.training
    model.eval()
    outs = []
    try:
        with no_grad():
            for start in range(0, n, batch_size):
                outs.append(np.asarray(forward(model, batch.take(order[start:start + batch_size]))
                                       .data))
    finally:
        model.train(was_training)
    if not outs:
        return np.zeros((0, 0), np.float32)
    logits = np.concatenate(outs)
    result = np.empty_like(logits)
    result[order] = logits
    return result


def evaluate(model: Any, batch: Batch, y: np.ndarray, num_classes: int,
             batch_size: int = 64, confusion: bool = True) -> dict[str, Any]:
    """Cross-entropy loss, accuracy and macro precision/recall/F1 (+ confusion matrix)."""
    logits = predict_logits(model, batch, batch_size)
    with no_grad():
        loss = float(F.cross_entropy(Tensor(logits), Tensor(y)).item())
    metrics = classification_metrics(y, logits.argmax(axis=1), num_classes)
    if not confusion:
        metrics.pop("confusion_matrix")
    return {k: finite_or_none(v) for k, v in {"loss": loss, **metrics}.items()}


def audit_step(audit: TrainabilityAudit, when: str) -> None:
    """``check_after_step`` with a failure turned into a one-line ScratchnnError."""
    try:
        audit.check_after_step()
    except TrainabilityError as e:
        raise ScratchnnError(f"{e} ({when}); nothing was saved") from None


def fit(model: Any, optimizer: Any, cfg: LoopConfig, train: tuple[Batch, np.ndarray],
        val: tuple[Batch, np.ndarray] | None, num_classes: int, rng: np.random.Generator,
        log: MetricsLog, audit: TrainabilityAudit, unfreezer: GradualUnfreezer | None = None,
        echo: Echo | None = None) -> tuple[FitSummary, dict[str, np.ndarray] | None]:
    """Train ``model``; return the summary and the best epoch's state dict (None: the last).

    The audit's snapshot is taken before the first step and checked right after it (and
    again after the first step of every epoch in which ``unfreezer`` opened a stage).

    Raises:
        ScratchnnError: the audit failed (the message lists what moved or did not learn).
        NonFiniteLossError: the loss became NaN or infinite (the message names the step).
    """
    echo = echo or (lambda message: None)
    x_tr, y_tr = train
    n = len(x_tr)
    per_epoch = math.ceil(n / cfg.batch_size)
    total = per_epoch * cfg.epochs
    scheduler = LambdaLR(optimizer, lambda s: lr_factor(s, cfg.warmup_steps, total,
                                                        cfg.schedule))
    monitor = cfg.monitor if val is not None else "train_loss"
    stopper = EarlyStopping(monitor, cfg.patience)
    summary, best = FitSummary(), None
    bar = tqdm(total=total, desc="finetune", unit="step", file=sys.stderr,
               disable=not cfg.progress, leave=False, dynamic_ncols=True)
    audit.snapshot()
    check_at = 1
    try:
        for epoch in range(1, cfg.epochs + 1):
            if unfreezer is not None and epoch > 1:
                opened = unfreezer.step(epoch - 1)
                if opened:
                    echo(f"epoch {epoch}: unfroze {len(opened)} tensors ({audit.report()})")
                    audit.snapshot()
                    check_at = summary.steps + 1
            model.train()
            start, loss_sum, correct = time.perf_counter(), 0.0, 0
            order = rng.permutation(n)
            for b in range(per_epoch):
                rows = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                t0 = time.perf_counter()
                lr = optimizer.param_groups[-1]["lr"]
                out = forward(model, x_tr.take(rows))
                yb = Tensor(y_tr[rows])
                loss = F.cross_entropy(out, yb)
                value = float(loss.item())
                if not math.isfinite(value):
                    raise NonFiniteLossError(f"non-finite training loss ({value}) at step "
                                             f"{summary.steps + 1} (epoch {epoch}); try a "
                                             f"lower --lr")
                optimizer.zero_grad()
                loss.backward()
                if cfg.grad_clip is not None:
                    clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                summary.steps += 1
                if summary.steps == check_at:
                    audit_step(audit, f"after step {summary.steps}")
                scheduler.step()
                summary.train_seconds += time.perf_counter() - t0
                loss_sum += value * len(rows)
                correct += int((out.data.argmax(axis=1) == y_tr[rows]).sum())
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}")
                if cfg.log_every and summary.steps % cfg.log_every == 0:
                    echo(f"step {summary.steps}/{total}: loss {value:.4f}, lr {lr:.3g}, "
                         f"{summary.train_seconds / summary.steps:.3f} s/step")
            record: dict[str, Any] = {"epoch": epoch, "step": summary.steps,
                                      "train_loss": loss_sum / n, "train_accuracy": correct / n}
            if val is not None:
                metrics = evaluate(model, *val, num_classes, cfg.eval_batch_size,
                                   confusion=False)
                record.update({f"val_{k}": v for k, v in metrics.items()})
            record.update(lr=lr, time=time.perf_counter() - start,
                          s_per_step=summary.train_seconds / summary.steps)
            record = {k: finite_or_none(v) for k, v in record.items()}
            log.append(record)
            log.flush()
            summary.epochs_run = epoch
            shown = ", ".join(f"{k} {record[k]:.4f}" for k in ("train_loss", "val_loss",
                                                                 "val_accuracy")
                              if record.get(k) is not None)
            echo(f"epoch {epoch}/{cfg.epochs}: {shown} ({record['time']:.1f} s)")
            if stopper.update(record):
                best = {k: v.copy() for k, v in model.state_dict().items()}
            if stopper.should_stop:
                summary.stop_reason = "early stopping"
                break
    finally:
        bar.close()
    summary.best_epoch = stopper.best_epoch
    summary.s_per_step = summary.train_seconds / summary.steps if summary.steps else None
    return summary, best
