"""A trainability audit: after the first step, frozen things did not move and trainable ones
learned.

Usage::

    audit = TrainabilityAudit(model, optimizer)
    print(audit.report())        # trainable 1,234 / total 98,765 parameters (1.25%)
    audit.snapshot()             # before the first optimizer step
    loss.backward(); optimizer.step()
    audit.check_after_step()     # before zero_grad(); raises TrainabilityError on a violation

The snapshot copies every frozen parameter and every protected buffer (the running statistics
of BatchNorm layers with frozen statistics, plus ``protect_buffers`` patterns), so it costs
their memory once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np

from scratchnn import nn
from scratchnn.finetune.freezing import batchnorm_modules
from scratchnn.finetune.layout import model_layout
from scratchnn.nn.lora import lora_modules

__all__ = ["TrainabilityAudit", "TrainabilityError", "TrainabilityReport"]

#: How many offending names a message lists before "and N more".
_SHOWN = 10


class TrainabilityError(RuntimeError):
    """A frozen tensor moved, or a trainable parameter did not learn."""


@dataclass(frozen=True)
class TrainabilityReport:
    """Parameter counts (scalars, each shared tensor once); ``str()`` is the one-line summary."""

    trainable: int
    total: int
    trainable_tensors: int
    total_tensors: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (f"trainable {self.trainable:,} / total {self.total:,} parameters "
                f"({100 * self.fraction:.2f}%)")


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality (NaN equals itself, -0.0 differs from 0.0)."""
    return a.shape == b.shape and a.dtype == b.dtype and \
        np.array_equal(np.ascontiguousarray(a).view(np.uint8),
                       np.ascontiguousarray(b).view(np.uint8))


def _grad_array(p) -> np.ndarray:
    grad = p.grad
    return grad._data if hasattr(grad, "_data") else np.asarray(grad)


def _listing(names: list[str]) -> str:
    extra = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + extra


class TrainabilityAudit:
    """Check that fine-tuning trains exactly what it should.

    Args:
        model: the model being trained.
        optimizer: its optimizer; when given, the check also requires every trainable
            parameter to be in one of its groups and every frozen one to have no state.
        protect_buffers: glob patterns over buffer names that must not change either (the
            running statistics of BatchNorm layers with ``frozen_stats`` are always protected).
    """

    def __init__(self, model: nn.Module, optimizer=None,
                 protect_buffers: Iterable[str] = ()) -> None:
        self.model = model
        self.optimizer = optimizer
        self.protect_buffers = list(protect_buffers)
        self._frozen: dict[str, np.ndarray] | None = None
        self._buffers: dict[str, np.ndarray] = {}
        self._zero_grad_ok: set[str] = set()

    def report(self) -> TrainabilityReport:
        """Trainable and total parameter counts."""
        params = [p for _, p in self.model.named_parameters()]
        live = [p for p in params if p.requires_grad]
        return TrainabilityReport(sum(p.numel() for p in live), sum(p.numel() for p in params),
                                  len(live), len(params))

    def _protected_buffer_names(self) -> list[str]:
        frozen_bn = [n for n, m in batchnorm_modules(self.model).items() if m.frozen_stats]
        names = []
        for name, _ in self.model.named_buffers():
            owner, _, _ = name.rpartition(".")
            if owner in frozen_bn or any(fnmatchcase(name, p) for p in self.protect_buffers):
                names.append(name)
        return names

    def snapshot(self) -> None:
        """Copy every frozen parameter and protected buffer; call before the first step."""
        self._frozen = {n: p._data.copy() for n, p in self.model.named_parameters()
                        if not p.requires_grad}
        buffers = dict(self.model.named_buffers())
        self._buffers = {n: buffers[n]._data.copy() for n in self._protected_buffer_names()}
        # LoRA's A gets an exactly zero gradient while B is still zero (dL/dA = Bᵀ·…): expected.
        self._zero_grad_ok = {f"{n}.lora_A" for n, m in lora_modules(self.model).items()
                              if not m.lora_B._data.any()}
        # So may everything but an all-zero head weight (a head made with init='zeros'): below
        # it dL/dh = Wᵀ·… = 0, and its bias's gradient (mean of softmax − one-hot) is zero when
        # the first batch holds every class equally often, as every logit is the same.
        params = dict(self.model.named_parameters())
        weights = [n for n in model_layout(self.model).head if params[n].ndim >= 2]
        if weights and not any(params[n]._data.any() for n in weights):
            self._zero_grad_ok |= set(params) - set(weights)

    def check_after_step(self) -> None:
        """Verify the step (call after ``optimizer.step()``, before ``zero_grad()``).

        Raises:
            TrainabilityError: listing every frozen parameter or protected buffer that changed,
                every trainable parameter whose gradient is missing or all zero, and (with an
                optimizer) trainable parameters it does not hold and frozen ones with state.
            RuntimeError: ``snapshot()`` was not called first.
        """
        if self._frozen is None:
            raise RuntimeError("call snapshot() before the first optimizer step, then "
                               "check_after_step() after it")
        params = dict(self.model.named_parameters())
        buffers = dict(self.model.named_buffers())
        problems = []
        moved = [n for n, old in self._frozen.items()
                 if n in params and not _same_bits(params[n]._data, old)]
        if moved:
            problems.append(f"frozen parameters changed: {_listing(moved)} (is something "
                            f"updating them outside the optimizer, or sharing their arrays?)")
        changed = [n for n, old in self._buffers.items()
                   if n in buffers and not _same_bits(buffers[n]._data, old)]
        if changed:
            problems.append(f"protected buffers changed: {_listing(changed)}")
        trainable = {n: p for n, p in params.items() if p.requires_grad}
        no_grad = [n for n, p in trainable.items() if p.grad is None]
        if no_grad:
            problems.append(f"trainable parameters got no gradient (disconnected from the "
                            f"loss? freeze them, or call check_after_step() before "
                            f"zero_grad()): {_listing(no_grad)}")
        zero = [n for n, p in trainable.items() if p.grad is not None
                and n not in self._zero_grad_ok and not _grad_array(p).any()]
        if zero:
            problems.append(f"trainable parameters got an all-zero gradient: {_listing(zero)}")
        if self.optimizer is not None:
            problems += self._optimizer_problems(params)
        if problems:
            raise TrainabilityError("trainability audit failed: " + "; ".join(problems))

    def _optimizer_problems(self, params: dict) -> list[str]:
        held = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        problems = []
        missing = [n for n, p in params.items() if p.requires_grad and id(p) not in held]
        if missing:
            problems.append(f"trainable parameters not in any optimizer param group: "
                            f"{_listing(missing)}")
        stateful = [n for n, p in params.items()
                    if not p.requires_grad and self.optimizer.state.get(p)]
        if stateful:
            problems.append(f"frozen parameters have optimizer state: {_listing(stateful)}")
        return problems
