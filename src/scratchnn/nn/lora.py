"""LoRA (Hu et al. 2021): a low-rank trainable update wrapped around a frozen ``Linear``.

``LoRALinear`` is a wrapper module, never a branch inside ``Linear``: ``apply_lora`` swaps the
chosen ``Linear`` children of a model for wrappers in place, ``merge_lora`` swaps them back for
plain ``Linear`` layers holding the merged weights. Parameter names inside a wrapper are
``{module}.base.weight``, ``{module}.base.bias``, ``{module}.lora_A`` and ``{module}.lora_B``.

Load pretrained weights before ``apply_lora``: a wrapped layer's state_dict keys become
``{module}.base.weight`` / ``{module}.base.bias``. Adapters are saved and loaded by
``scratchnn.finetune.save_lora`` / ``load_lora`` (files live above ``nn``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from fnmatch import fnmatchcase

import numpy as np

from scratchnn.autograd.grad_mode import no_grad
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.nn import init
from scratchnn.nn.dropout import Dropout
from scratchnn.nn.linear import Linear
from scratchnn.nn.module import Module
from scratchnn.nn.parameter import Parameter
from scratchnn.ops._operands import ensure_tensor
from scratchnn.ops.linear import linear

__all__ = [
    "LoRALinear",
    "apply_lora",
    "linear_module_names",
    "lora_modules",
    "lora_state_dict",
    "merge_lora",
    "unmerge_lora",
]


def _check_lora_args(rank, alpha, dropout) -> tuple[int, float, float]:
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank <= 0:
        raise ValueError(f"rank must be a positive int, got {rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
        raise ValueError(f"alpha must be a number > 0, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
            or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    return int(rank), float(alpha), float(dropout)


class LoRALinear(Module):
    """``y = base(x) + dropout(x) @ Aᵀ @ Bᵀ · (alpha / rank)`` with ``base`` frozen.

    ``lora_A`` (rank, in) starts kaiming-uniform (a=√5, as PEFT) and ``lora_B`` (out, rank)
    starts at zeros, so the wrapped layer equals the base layer until B is trained. The base
    layer's parameters are frozen (``requires_grad`` False) when wrapped.

    ``merge()`` adds ``B A · scale`` into the base weight once (a second ``merge()`` raises);
    ``unmerge()`` restores the original weight bit for bit from a copy taken by ``merge()``.
    While merged, ``forward`` is the base layer alone and the adapters get no gradient.

    Args:
        base: the ``Linear`` to adapt (kept as the child ``base``).
        rank: r, the rank of the update.
        alpha: the update is scaled by ``alpha / rank``.
        dropout: dropout probability on the adapter's input, in [0, 1).
        rng: generator for A's initial values and the dropout masks.

    Shape: (..., in_features) → (..., out_features).
    """

    def __init__(self, base: Linear, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(base, Linear):
            raise TypeError(f"LoRALinear wraps a Linear, got {type(base).__name__}")
        self.rank, self.alpha, self.dropout_p = _check_lora_args(rank, alpha, dropout)
        self.scale = self.alpha / self.rank
        base.requires_grad_(False)
        self.base = base
        dtype = base.weight.dtype
        self.lora_A = Parameter(xp.zeros((self.rank, base.in_features), dtype=dtype), dtype=dtype)
        self.lora_B = Parameter(xp.zeros((base.out_features, self.rank), dtype=dtype),
                                dtype=dtype)
        self.lora_dropout = Dropout(self.dropout_p, rng=rng)
        self.merged = False
        self._original_weight: np.ndarray | None = None
        self.reset_lora_parameters(rng)

    def reset_lora_parameters(self, rng: np.random.Generator | None = None) -> None:
        """A ~ kaiming-uniform(a=√5) as PEFT; B = 0 (the update starts at zero)."""
        if self.base.in_features:
            init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), rng=rng)
        init.zeros_(self.lora_B)

    # The wrapped layer reads like the Linear it replaces (MultiheadAttention reads
    # ``out_proj.weight.dtype``; heads read ``in_features``).
    @property
    def weight(self) -> Parameter:
        return self.base.weight

    @property
    def bias(self) -> Parameter | None:
        return self.base.bias

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> np.ndarray:
        """The update ``B @ A · scale`` as an (out, in) array in the weight's dtype."""
        w = self.base.weight._data
        return (self.lora_B._data @ self.lora_A._data) * w.dtype.type(self.scale)

    def forward(self, x) -> Tensor:
        y = self.base(x)  # (..., out); the base checks the input's shape and dtype
        if self.merged:
            return y
        h = linear(self.lora_dropout(ensure_tensor(x)), self.lora_A)  # (..., rank)
        # Scaling the rank-r activations is cheaper than scaling the (..., out) update.
        return y + linear(h * self.scale, self.lora_B)  # (..., out)

    def merge(self) -> None:
        """Add the update into the base weight (keeping a copy of the original); once only."""
        if self.merged:
            raise RuntimeError("this LoRALinear is already merged; merging twice would add the "
                               "update twice (call unmerge() first)")
        w = self.base.weight
        self._original_weight = w._data.copy()
        with no_grad():
            w._data += self.delta_weight()
            w._version += 1
        self.merged = True

    def unmerge(self) -> None:
        """Restore the base weight exactly as it was before ``merge()``."""
        if not self.merged:
            raise RuntimeError("this LoRALinear is not merged; there is nothing to unmerge")
        w = self.base.weight
        with no_grad():
            w._data[...] = self._original_weight
            w._version += 1
        self._original_weight = None
        self.merged = False

    def extra_repr(self) -> str:
        return (f"rank={self.rank}, alpha={self.alpha:g}, dropout={self.dropout_p:g}, "
                f"merged={self.merged}")


def lora_modules(model: Module) -> dict[str, LoRALinear]:
    """Dotted name → ``LoRALinear`` for every LoRA wrapper in ``model``, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def linear_module_names(model: Module) -> list[str]:
    """Names of the plain ``Linear`` modules that ``apply_lora`` could wrap."""
    wrapped = {id(m.base) for m in lora_modules(model).values()}
    return [name for name, m in model.named_modules()
            if name and isinstance(m, Linear) and id(m) not in wrapped]


def _shared_weights(model: Module) -> dict[int, list[str]]:
    """id(parameter) → every ``module.param`` name holding it (tied weights appear twice)."""
    owners: dict[int, list[str]] = {}
    for mod_name, module in model.named_modules():
        for pname, p in module._parameters.items():
            if p is not None:
                owners.setdefault(id(p), []).append(f"{mod_name}.{pname}" if mod_name else pname)
    return owners


def _set_submodule(model: Module, name: str, module: Module) -> None:
    parent_name, _, child = name.rpartition(".")
    model.get_submodule(parent_name).add_module(child, module)


def _as_patterns(targets) -> list[str]:
    if isinstance(targets, str):
        return [targets]
    targets = list(targets)
    if not targets or not all(isinstance(t, str) and t for t in targets):
        raise ValueError(f"targets must be a non-empty list of glob patterns, got {targets!r}")
    return targets


def apply_lora(model: Module, targets: str | Iterable[str], rank: int = 8,
               alpha: float = 16.0, dropout: float = 0.0,
               rng: np.random.Generator | None = None, verbose: bool = False) -> list[str]:
    """Wrap every ``Linear`` whose name matches a target glob in a ``LoRALinear``, in place.

    Patterns are matched with ``fnmatch`` (case-sensitive) against ``named_modules`` names,
    e.g. ``"*.attn.c_attn"`` (GPT) or ``"encoder.layer.*.attention.self.query"`` (BERT).
    Every pattern must match at least one ``Linear``; everything is checked before any module
    is replaced, so a failing call leaves the model unchanged. The call is recorded on the
    model (``model.lora_config``) for ``save_lora``.

    Args:
        model: the model to adapt (its root cannot itself be the target).
        targets: glob patterns over module names.
        rank, alpha, dropout: see :class:`LoRALinear`.
        rng: generator for the adapters' initial values and dropout masks.
        verbose: print the wrapped module names.

    Returns:
        The names of the wrapped modules, in module order.

    Raises:
        ValueError: a pattern matches no (unwrapped) ``Linear`` — the message lists some that
            exist — or a matched layer's weight is tied to another module's.
    """
    patterns = _as_patterns(targets)
    rank, alpha, dropout = _check_lora_args(rank, alpha, dropout)
    candidates = linear_module_names(model)
    wrapped = lora_modules(model)
    matched: list[str] = []
    for pattern in patterns:
        hits = [n for n in candidates if fnmatchcase(n, pattern)]
        if not hits:
            already = [n for n in wrapped if fnmatchcase(n, pattern)]
            others = [n for n, m in model.named_modules()
                      if n and fnmatchcase(n, pattern) and n not in already]
            hint = (f" (it matches modules that already have LoRA: {already[:5]})" if already
                    else f" (it matches non-Linear modules {others[:5]}; LoRA wraps Linear "
                         f"layers only)" if others else "")
            shown = ", ".join(candidates[:8]) + (", ..." if len(candidates) > 8 else "")
            raise ValueError(f"LoRA target pattern {pattern!r} matches no Linear module{hint}; "
                             f"{len(candidates)} Linear modules exist, e.g.: {shown or 'none'}")
        matched += [n for n in hits if n not in matched]
    matched.sort(key=candidates.index)
    owners = _shared_weights(model)
    for name in matched:
        holders = owners[id(model.get_submodule(name).weight)]
        if len(holders) > 1:
            raise ValueError(f"cannot apply LoRA to {name!r}: its weight is tied to "
                             f"{[h for h in holders if h != name + '.weight']}; merging would "
                             f"change the other module too (untie it or pick another target)")
    for name in matched:
        _set_submodule(model, name, LoRALinear(model.get_submodule(name), rank, alpha,
                                               dropout, rng))
    record = {"targets": patterns, "rank": rank, "alpha": alpha, "dropout": dropout,
              "modules": matched}
    history = list(getattr(model, "lora_config", None) or [])
    object.__setattr__(model, "lora_config", [*history, record])
    if verbose:
        print(f"LoRA (rank={rank}, alpha={alpha:g}) on {len(matched)} modules:")
        for name in matched:
            print(f"  {name}")
    return matched


def lora_state_dict(model: Module) -> dict[str, np.ndarray]:
    """Only the adapter tensors: ``{module}.lora_A`` and ``{module}.lora_B`` (shared arrays)."""
    out: dict[str, np.ndarray] = {}
    for name, m in lora_modules(model).items():
        out[f"{name}.lora_A"] = m.lora_A._data
        out[f"{name}.lora_B"] = m.lora_B._data
    return out


def merge_lora(model: Module, replace: bool = True) -> list[str]:
    """Merge every adapter into its base weight; returns the merged module names.

    With ``replace`` (for export) each ``LoRALinear`` is swapped for its base ``Linear``, now
    holding ``W + B A · scale``; this cannot be undone, and the merged weights keep the base's
    ``requires_grad`` (frozen). With ``replace=False`` the wrappers stay and are merged in
    place (``unmerge_lora`` undoes it). Wrappers already merged are not merged again.
    """
    modules = lora_modules(model)
    for name, m in modules.items():
        if not m.merged:
            m.merge()
        if replace:
            m._original_weight = None
            _set_submodule(model, name, m.base)
    if replace:
        object.__setattr__(model, "lora_config", [])
    return list(modules)


def unmerge_lora(model: Module) -> list[str]:
    """Unmerge every merged ``LoRALinear`` (base weights restored bit for bit); their names."""
    names = []
    for name, m in lora_modules(model).items():
        if m.merged:
            m.unmerge()
            names.append(name)
    return names
