"""Choosing what trains: freeze/unfreeze by name, by depth, on a schedule; frozen BN statistics.

Patterns are ``fnmatch`` globs (case-sensitive) over ``named_parameters`` names. A pattern
also matches every parameter under a module of that name, so ``"h.0"`` is ``"h.0.*"`` and
``"classifier"`` covers ``classifier.weight`` and ``classifier.bias``. Every pattern must
match at least one parameter, else ``ValueError`` (a typo must not silently train nothing).

Freezing sets ``requires_grad`` False: optimizers then never touch the parameter (no update,
no weight decay, no state), even when it is in one of their param groups. That is what makes
gradual unfreezing work: build the optimizer over all parameters
(``param_groups(..., include_frozen=True)``) and open stages as training goes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from scratchnn import nn
from scratchnn.finetune.layout import model_layout

__all__ = [
    "GradualUnfreezer",
    "batchnorm_modules",
    "freeze",
    "freeze_all_but",
    "freeze_batchnorm_stats",
    "freeze_first_blocks",
    "match_parameters",
    "trainable_parameter_names",
    "unfreeze",
    "unfreeze_batchnorm_stats",
]

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _as_patterns(patterns: str | Iterable[str]) -> list[str]:
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    if not all(isinstance(p, str) and p for p in patterns):
        raise ValueError(f"patterns must be non-empty strings, got {patterns!r}")
    return patterns


def name_matches(name: str, pattern: str) -> bool:
    """Whether parameter/module ``name`` matches ``pattern`` itself or lies under it."""
    return fnmatchcase(name, pattern) or fnmatchcase(name, pattern + ".*")


def match_parameters(model: nn.Module, patterns: str | Iterable[str]) -> list[str]:
    """Parameter names matching any pattern, in model order; each pattern must match one."""
    patterns = _as_patterns(patterns)
    names = [n for n, _ in model.named_parameters()]
    for pattern in patterns:
        if not any(name_matches(n, pattern) for n in names):
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise ValueError(f"pattern {pattern!r} matches no parameter of "
                             f"{type(model).__name__}; parameters include: {shown or 'none'}")
    return [n for n in names if any(name_matches(n, p) for p in patterns)]


def _set_requires_grad(model: nn.Module, names: Iterable[str], flag: bool) -> None:
    params = dict(model.named_parameters())
    for name in names:
        params[name].requires_grad_(flag)


def freeze(model: nn.Module, patterns: str | Iterable[str]) -> list[str]:
    """Freeze the parameters matching ``patterns``; returns their names."""
    names = match_parameters(model, patterns)
    _set_requires_grad(model, names, False)
    return names


def unfreeze(model: nn.Module, patterns: str | Iterable[str]) -> list[str]:
    """Make the parameters matching ``patterns`` trainable; returns their names."""
    names = match_parameters(model, patterns)
    _set_requires_grad(model, names, True)
    return names


def freeze_all_but(model: nn.Module, patterns: str | Iterable[str]) -> list[str]:
    """Freeze everything except the parameters matching ``patterns``; returns the trainable."""
    keep = match_parameters(model, patterns)
    model.requires_grad_(False)
    _set_requires_grad(model, keep, True)
    return keep


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters with ``requires_grad`` True."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def freeze_first_blocks(model: nn.Module, n: int) -> list[str]:
    """Freeze the stem (embeddings) and the first ``n`` blocks; returns the frozen names.

    Blocks are the model's ordered stages (``scratchnn.finetune.layout``): GPT ``h.{i}``,
    BERT ``encoder.layer.{i}``, CNN conv blocks, RNN layers, MLP hidden layers, else the
    top-level children. ``n=0`` freezes nothing; ``n`` may be at most the number of blocks.
    """
    layout = model_layout(model)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= layout.n_blocks:
        raise ValueError(f"n must be an int in [0, {layout.n_blocks}] (the {layout.family} "
                         f"model has {layout.n_blocks} blocks), got {n!r}")
    if n == 0:
        return []
    names = layout.stem + [name for block in layout.blocks[:n] for name in block]
    _set_requires_grad(model, names, False)
    return names


def batchnorm_modules(model: nn.Module, patterns: str | Iterable[str] | None = None
                      ) -> dict[str, nn.Module]:
    """BatchNorm modules with running statistics, optionally those matching module patterns."""
    mods = {n: m for n, m in model.named_modules()
            if isinstance(m, _BATCHNORMS) and m.track_running_stats}
    if patterns is None:
        return mods
    patterns = _as_patterns(patterns)
    for pattern in patterns:
        if not any(name_matches(n, pattern) for n in mods):
            raise ValueError(f"pattern {pattern!r} matches no BatchNorm module with running "
                             f"statistics; they are: {', '.join(mods) or 'none'}")
    return {n: m for n, m in mods.items() if any(name_matches(n, p) for p in patterns)}


def freeze_batchnorm_stats(model: nn.Module, patterns: str | Iterable[str] | None = None
                           ) -> list[str]:
    """Fix BatchNorm running statistics: those layers act as in eval mode even after
    ``model.train()`` (they normalise with, and never update, their running statistics).

    Sets the layers' ``frozen_stats`` flag; their affine parameters keep their own
    ``requires_grad`` (freeze those with :func:`freeze`). Layers without running statistics
    are skipped. Returns the affected module names.
    """
    mods = batchnorm_modules(model, patterns)
    for m in mods.values():
        m.frozen_stats = True
    return list(mods)


def unfreeze_batchnorm_stats(model: nn.Module, patterns: str | Iterable[str] | None = None
                             ) -> list[str]:
    """Let BatchNorm layers update their running statistics in training mode again."""
    mods = batchnorm_modules(model, patterns)
    for m in mods.values():
        m.frozen_stats = False
    return list(mods)


class GradualUnfreezer:
    """Open the model stage by stage, from the head downwards (ULMFiT's gradual unfreezing).

    On construction every parameter of every stage is frozen, then the stages due at epoch 0
    are opened (like an lr scheduler, construction takes the first step). Call ``step()`` once
    per epoch *after* the epoch, or ``step(epoch)`` before epoch ``epoch``. Parameters in no
    stage keep their ``requires_grad``.

    Args:
        model: the model.
        stages: per stage, the patterns of its parameters, top (head) first.
        every_n_epochs: stage ``s`` opens at epoch ``s * every_n_epochs``.
        schedule: instead, stage index → the epoch it opens (every stage listed).
        freeze_bn_stats: also fix the running statistics of BatchNorm layers inside closed
            stages (released when their stage opens).

    The optimizer must hold the frozen parameters too: ``param_groups(model, ...,
    include_frozen=True)``.
    """

    def __init__(self, model: nn.Module, stages: list[list[str]], every_n_epochs: int = 1,
                 schedule: Mapping[int, int] | None = None, freeze_bn_stats: bool = True
                 ) -> None:
        if not stages:
            raise ValueError("stages must hold at least one stage of patterns")
        self.model = model
        self.stage_names = [match_parameters(model, stage) for stage in stages]
        if schedule is None:
            if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) \
                    or every_n_epochs < 1:
                raise ValueError(f"every_n_epochs must be a positive int, got {every_n_epochs!r}")
            self.open_at = [s * every_n_epochs for s in range(len(stages))]
        else:
            if sorted(schedule) != list(range(len(stages))):
                raise ValueError(f"schedule must give an epoch for every stage index "
                                 f"0..{len(stages) - 1}, got keys {sorted(schedule)}")
            if any(isinstance(e, bool) or not isinstance(e, int) or e < 0
                   for e in schedule.values()):
                raise ValueError(f"schedule epochs must be ints >= 0, got {dict(schedule)}")
            self.open_at = [schedule[s] for s in range(len(stages))]
        self.freeze_bn_stats = bool(freeze_bn_stats)
        self.stage_bn = [self._bn_in(names) for names in self.stage_names]
        self.opened = [False] * len(stages)
        self.last_epoch = -1
        for s in range(len(stages)):
            self._close(s)
        self.step()

    def _bn_in(self, names: list[str]) -> list[str]:
        """BatchNorm modules whose parameters belong to the stage."""
        chosen = set(names)
        return [m for m in batchnorm_modules(self.model)
                if any(n.startswith(m + ".") for n in chosen)]

    def _close(self, s: int) -> None:
        _set_requires_grad(self.model, self.stage_names[s], False)
        if self.freeze_bn_stats and self.stage_bn[s]:
            freeze_batchnorm_stats(self.model, self.stage_bn[s])

    def _open(self, s: int) -> list[str]:
        _set_requires_grad(self.model, self.stage_names[s], True)
        if self.freeze_bn_stats and self.stage_bn[s]:
            unfreeze_batchnorm_stats(self.model, self.stage_bn[s])
        self.opened[s] = True
        return self.stage_names[s]

    def step(self, epoch: int | None = None) -> list[str]:
        """Move to ``epoch`` (default: the next); open the stages due; their parameter names."""
        epoch = self.last_epoch + 1 if epoch is None else epoch
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self.last_epoch = epoch
        newly: list[str] = []
        for s, due in enumerate(self.open_at):
            if not self.opened[s] and due <= epoch:
                newly += self._open(s)
        return newly

    @property
    def num_open(self) -> int:
        """How many stages are open."""
        return sum(self.opened)

    def state_dict(self) -> dict[str, Any]:
        """The schedule's position, JSON-able (for exact resume)."""
        return {"last_epoch": self.last_epoch, "opened": list(self.opened),
                "open_at": list(self.open_at)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``: re-apply which stages are open and which are closed."""
        if len(state["opened"]) != len(self.opened):
            raise ValueError(f"state has {len(state['opened'])} stages, this unfreezer has "
                             f"{len(self.opened)}")
        self.open_at = [int(e) for e in state["open_at"]]
        self.last_epoch = int(state["last_epoch"])
        for s in range(len(self.opened)):
            self.opened[s] = False
            self._close(s)
        for s, is_open in enumerate(state["opened"]):
            if is_open:
                self._open(s)
