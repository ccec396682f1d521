"""Optimizer param groups for fine-tuning: a head learning rate and layer-wise lr decay.

Depth comes from :func:`scratchnn.finetune.layout.model_layout`: the stem (embeddings) is
depth 0, block ``i`` (1-based: GPT's ``h.0`` is block 1) is depth ``i``, and what follows the
last block (final norm, pooler) is depth ``n + 1``. With ``layer_decay`` the lr at depth ``d``
is ``base_lr · layer_decay ** max(n − d, 0)`` (Clark et al. 2020, ELECTRA; BEiT): the last
block and the top train at ``base_lr``, block ``i`` at ``base_lr · decay^(n − i)``, the
embeddings lowest at ``base_lr · decay^n``. The head trains at ``head_lr`` (default
``base_lr``).

Each group carries its own ``lr``, so schedulers (which scale each group's initial lr) keep
the ratios. Groups also carry ``name`` (e.g. ``"block.3"``, ``"head.no_decay"``), saved with
the optimizer state.
"""

from __future__ import annotations

import numbers
from typing import Any

from scratchnn import nn
from scratchnn.finetune.layout import model_layout

__all__ = ["describe_param_groups", "param_groups"]


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and (
        value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a number {'>=' if allow_zero else '>'} 0, "
                         f"got {value!r}")
    return float(value)


def param_groups(model: nn.Module, base_lr: float, head_lr: float | None = None,
                 layer_decay: float | None = None, weight_decay: float = 0.0,
                 no_decay_for_1d: bool = True, include_frozen: bool = False
                 ) -> list[dict[str, Any]]:
    """Param groups for ``scratchnn.optim`` optimizers, one per (depth, decay) pair.

    Args:
        model: the model (its family decides the depth layout).
        base_lr: lr of the body (of the last block when ``layer_decay`` is given).
        head_lr: lr of the output head (None: ``base_lr``).
        layer_decay: factor in (0, 1] per block of depth below the last; None: one body group.
        weight_decay: decay of the tensors with ndim >= 2 (and of all tensors when
            ``no_decay_for_1d`` is False).
        no_decay_for_1d: biases and norm scales (ndim < 2) get weight_decay 0, as in nanoGPT.
        include_frozen: also list frozen parameters (optimizers skip them until they are
            unfrozen — needed with :class:`GradualUnfreezer`); by default they are left out.

    Returns:
        Non-empty groups ``{"params", "lr", "weight_decay", "name"}``, embeddings first, head
        last. A parameter shared by two names (tied weights) appears once.
    """
    base_lr = _positive("base_lr", base_lr)
    head_lr = base_lr if head_lr is None else _positive("head_lr", head_lr)
    weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)
    if layer_decay is not None:
        layer_decay = _positive("layer_decay", layer_decay)
        if layer_decay > 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    layout = model_layout(model)
    params = dict(model.named_parameters())
    n = layout.n_blocks
    depth = layout.depth_of()
    head = set(layout.head)

    def group_of(name: str) -> tuple[str, int, float]:
        """(name, order, lr) of the group holding parameter ``name``."""
        if name in head:
            return "head", n + 2, head_lr
        if layer_decay is None:
            return "body", 0, base_lr
        d = depth[name]
        label = "embeddings" if d == 0 else "top" if d == n + 1 else f"block.{d}"
        return label, d, base_lr * layer_decay ** max(n - d, 0)

    groups: dict[tuple[str, bool], dict[str, Any]] = {}
    order: dict[tuple[str, bool], tuple[int, bool]] = {}
    for name, p in params.items():
        if not (p.requires_grad or include_frozen):
            continue
        label, rank, lr = group_of(name)
        decayed = p.ndim >= 2 or not no_decay_for_1d
        key = (label, decayed)
        if key not in groups:
            groups[key] = {"params": [], "lr": lr,
                           "weight_decay": weight_decay if decayed else 0.0,
                           "name": label if decayed else f"{label}.no_decay"}
            order[key] = (rank, not decayed)
        groups[key]["params"].append(p)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters to optimize "
                         f"(everything is frozen; pass include_frozen=True for gradual "
                         f"unfreezing)")
    return [groups[k] for k in sorted(groups, key=order.__getitem__)]


def describe_param_groups(groups: list[dict[str, Any]]) -> str:
    """A small table: one line per group with its name, lr, weight decay and size."""
    lines = [f"{'group':<22}{'lr':>12}{'decay':>9}{'tensors':>9}{'params':>12}"]
    for i, g in enumerate(groups):
        size = sum(p.numel() for p in g["params"])
        lines.append(f"{g.get('name', str(i)):<22}{g['lr']:>12.4g}{g.get('weight_decay', 0):>9.3g}"
                     f"{len(g['params']):>9}{size:>12,}")
    return "\n".join(lines)
