"""Learning-rate schedulers: set each param group's ``lr`` as a function of the step count.

Call ``scheduler.step()`` after ``optimizer.step()``. Schedulers here use closed forms of the
step count (``last_epoch``) and the groups' initial learning rates, so they give PyTorch's
sequences (to rounding) and resume exactly from a JSON-able ``state_dict()``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

from scratchnn.optim.optimizer import Optimizer

__all__ = [
    "CosineAnnealingLR",
    "LRScheduler",
    "LambdaLR",
    "LinearWarmupCosine",
    "MultiStepLR",
    "ReduceLROnPlateau",
    "StepLR",
]


def _check_optimizer(optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"a scheduler needs an Optimizer, got {type(optimizer).__name__}")


def _per_group(value: float | Sequence[float], n: int, name: str) -> list[float]:
    """``value`` repeated for ``n`` groups, or a per-group list checked for length."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"expected {n} values of {name} (one per param group), "
                             f"got {len(value)}")
        return [float(v) for v in value]
    return [float(value)] * n


class LRScheduler:
    """Base class: ``lr = f(base_lr, last_epoch)`` for each group; subclasses define ``_lr_at``.

    Args:
        optimizer: the optimizer whose groups' ``lr`` is set.
        last_epoch: the index of the last step taken; -1 starts a new schedule (the groups'
            current ``lr`` becomes their ``initial_lr``).
    """

    #: Attributes (besides the step count and learning rates) that ``state_dict`` saves.
    _state_keys: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"param_groups[{i}] has no 'initial_lr' to resume from "
                               f"(last_epoch={last_epoch}); load the optimizer state first")
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._last_lr: list[float] = []
        self.step()

    def _lr_at(self, base_lr: float, epoch: int, group_index: int) -> float:
        """The learning rate of a group whose initial lr is ``base_lr`` after ``epoch`` steps."""
        raise NotImplementedError("abstract: each scheduler defines _lr_at")

    def get_lr(self) -> list[float]:
        """The learning rates for the current ``last_epoch``."""
        return [self._lr_at(base, self.last_epoch, i) for i, base in enumerate(self.base_lrs)]

    def step(self) -> None:
        """Advance the schedule by one step and set every group's ``lr``."""
        self.last_epoch += 1
        self._set_lrs(self.get_lr())

    def _set_lrs(self, lrs: Sequence[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = float(lr)
        self._last_lr = [float(lr) for lr in lrs]

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last ``step()``, one per param group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """The schedule's position and settings, as JSON-able Python values."""
        sd: dict[str, Any] = {
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "last_lr": list(self._last_lr),
        }
        for key in self._state_keys:
            value = getattr(self, key)
            sd[key] = list(value) if isinstance(value, tuple) else value
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``state_dict()`` and put its learning rates back into the optimizer."""
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(
                f"scheduler state has {len(state_dict['base_lrs'])} param groups, "
                f"the optimizer has {len(self.optimizer.param_groups)}"
            )
        self.last_epoch = int(state_dict["last_epoch"])
        self.base_lrs = [float(v) for v in state_dict["base_lrs"]]
        for key in self._state_keys:
            if key in state_dict:
                setattr(self, key, state_dict[key])
        # Whatever order optimizer and scheduler were rebuilt in, resume at the saved lr.
        self._set_lrs(state_dict["last_lr"])


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(epoch)``; one callable, or one per param group.

    The callables are not saved by ``state_dict``; pass the same ones when resuming.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"expected {n} lr_lambdas (one per param group), "
                                 f"got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, base_lr: float, epoch: int, group_index: int) -> float:
        return base_lr * self.lr_lambdas[group_index](epoch)


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    _state_keys = ("step_size", "gamma")

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        if not (isinstance(step_size, int) and step_size > 0):
            raise ValueError(f"step_size must be a positive int, got {step_size}")
        self.step_size = step_size
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, base_lr: float, epoch: int, group_index: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """``lr = base_lr * gamma ** (number of milestones <= epoch)``."""

    _state_keys = ("milestones", "gamma")

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Sequence[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, base_lr: float, epoch: int, group_index: int) -> float:
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

    Past ``T_max`` the cosine keeps going (back up towards base_lr), as in PyTorch.
    """

    _state_keys = ("T_max", "eta_min")

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        if not T_max > 0:
            raise ValueError(f"T_max must be > 0, got {T_max}")
        self.T_max = T_max
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, base_lr: float, epoch: int, group_index: int) -> float:
        cosine = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (base_lr - self.eta_min) * cosine


class LinearWarmupCosine(LRScheduler):
    """Linear warmup to each group's base lr, then cosine decay to ``min_lr``.

    With ``w = warmup_steps``, ``T = total_steps`` and step ``t``::

        t < w:       lr = base_lr * (start_factor + (1 - start_factor) * t / w)
        w <= t <= T: lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * (t - w) / (T - w))) / 2
        t > T:       lr = min_lr

    So ``lr(0) = start_factor * base_lr`` (0 by default), ``lr(w) = base_lr`` and
    ``lr(T) = min_lr``. Call ``step()`` once per optimizer step.

    Args:
        optimizer: the optimizer whose groups' ``lr`` is set.
        warmup_steps: length of the linear warmup (0: start at base_lr).
        total_steps: the step at which the cosine reaches ``min_lr``; > warmup_steps.
        min_lr: the final learning rate, one value or one per param group.
        start_factor: the fraction of base_lr at step 0, in [0, 1].
    """

    _state_keys = ("warmup_steps", "total_steps", "min_lrs", "start_factor")

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        total_steps: int,
        min_lr: float | Sequence[float] = 0.0,
        start_factor: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        if not (isinstance(warmup_steps, int) and warmup_steps >= 0):
            raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps}")
        if not (isinstance(total_steps, int) and total_steps > warmup_steps):
            raise ValueError(f"total_steps must be an int > warmup_steps ({warmup_steps}), "
                             f"got {total_steps}")
        if not 0.0 <= start_factor <= 1.0:
            raise ValueError(f"start_factor must be in [0, 1], got {start_factor}")
        self.min_lrs = _per_group(min_lr, len(optimizer.param_groups), "min_lr")
        if any(not m >= 0.0 for m in self.min_lrs):
            raise ValueError(f"min_lr must be >= 0, got {min_lr}")
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.start_factor = float(start_factor)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, base_lr: float, epoch: int, group_index: int) -> float:
        w, total = self.warmup_steps, self.total_steps
        min_lr = self.min_lrs[group_index]
        if epoch < w:
            return base_lr * (self.start_factor + (1.0 - self.start_factor) * epoch / w)
        if epoch > total:
            return min_lr
        cosine = (1 + math.cos(math.pi * (epoch - w) / (total - w))) / 2
        return min_lr + (base_lr - min_lr) * cosine


def _encode_float(x: float) -> float | str:
    """``x`` as a JSON-safe value: non-finite floats become strings ('inf', '-inf', 'nan')."""
    return x if math.isfinite(x) else repr(float(x))


class ReduceLROnPlateau:
    """Multiply every group's lr by ``factor`` when a metric stopped improving.

    ``step(metric)`` once per evaluation. The metric improves when it beats the best so far by
    ``threshold`` (relative: ``best * (1 -/+ threshold)``; absolute: ``best -/+ threshold``).
    After more than ``patience`` evaluations without improvement, ``lr = max(lr * factor,
    min_lr)`` (skipped if that changes lr by less than ``eps``), then ``cooldown`` evaluations
    are ignored. Matches ``torch.optim.lr_scheduler.ReduceLROnPlateau``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        _check_optimizer(optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if not 0.0 <= factor < 1.0:
            raise ValueError(f"factor must be in [0, 1), got {factor}")
        if not (isinstance(patience, int) and patience >= 0):
            raise ValueError(f"patience must be an int >= 0, got {patience}")
        if not (isinstance(cooldown, int) and cooldown >= 0):
            raise ValueError(f"cooldown must be an int >= 0, got {cooldown}")
        if not threshold >= 0.0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        self.optimizer = optimizer
        self.mode = mode
        self.factor = float(factor)
        self.patience = patience
        self.threshold = float(threshold)
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.min_lrs = _per_group(min_lr, len(optimizer.param_groups), "min_lr")
        self.eps = float(eps)
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = [float(group["lr"]) for group in optimizer.param_groups]

    def _is_better(self, current: float) -> bool:
        best, threshold = self.best, self.threshold
        if self.mode == "min":
            bar = best * (1.0 - threshold) if self.threshold_mode == "rel" else best - threshold
            return current < bar
        bar = best * (1.0 + threshold) if self.threshold_mode == "rel" else best + threshold
        return current > bar

    def step(self, metric: float) -> None:
        """Record one evaluation of the monitored metric and reduce the lr if it plateaued."""
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad evaluations during cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs, strict=True):
                old_lr = float(group["lr"])
                new_lr = max(old_lr * self.factor, min_lr)
                if old_lr - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates after the last ``step()``, one per param group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Settings, counters and the best metric so far, as JSON-able Python values."""
        return {
            "mode": self.mode, "factor": self.factor, "patience": self.patience,
            "threshold": self.threshold, "threshold_mode": self.threshold_mode,
            "cooldown": self.cooldown, "min_lrs": list(self.min_lrs), "eps": self.eps,
            "last_epoch": self.last_epoch, "best": _encode_float(self.best),
            "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter,
            "last_lr": list(self._last_lr),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``state_dict()`` and put its learning rates back into the optimizer."""
        n = len(self.optimizer.param_groups)
        if len(state_dict["last_lr"]) != n:
            raise ValueError(f"scheduler state has {len(state_dict['last_lr'])} param groups, "
                             f"the optimizer has {n}")
        for key in ("mode", "threshold_mode", "patience", "cooldown", "last_epoch",
                    "num_bad_epochs", "cooldown_counter"):
            setattr(self, key, state_dict[key])
        for key in ("factor", "threshold", "eps", "best"):
            setattr(self, key, float(state_dict[key]))
        self.min_lrs = [float(v) for v in state_dict["min_lrs"]]
        self._last_lr = [float(v) for v in state_dict["last_lr"]]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr
