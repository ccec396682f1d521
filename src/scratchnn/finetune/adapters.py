"""Saving LoRA adapters alone and loading them onto a fresh base model.

A folder holds ``adapter.safetensors`` (``{module}.lora_A`` / ``{module}.lora_B``, plus any
``include``-d full tensors such as a new head, under their parameter names) and
``adapter_config.json``::

    {"format": "scratchnn-lora", "version": 1, "targets": [...], "rank": 8, "alpha": 16.0,
     "dropout": 0.0, "modules": ["h.0.attn.c_attn", ...], "extra_parameters": [...]}

The base weights are not saved: load the same pretrained base, then ``load_lora``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from scratchnn import nn
from scratchnn.finetune.freezing import match_parameters
from scratchnn.nn.lora import apply_lora, linear_module_names, lora_modules, lora_state_dict
from scratchnn.serialization import load_json, load_tensors, save_json, save_tensors

__all__ = ["ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "load_lora", "save_lora"]

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
_FORMAT = "scratchnn-lora"


def _uniform_settings(model: nn.Module) -> dict[str, Any]:
    mods = lora_modules(model)
    if not mods:
        raise ValueError(f"{type(model).__name__} has no LoRA modules to save (call "
                         f"apply_lora first)")
    settings = {(m.rank, m.alpha, m.dropout_p) for m in mods.values()}
    if len(settings) > 1:
        raise ValueError(f"save_lora needs one rank/alpha/dropout for all LoRA modules, "
                         f"found {sorted(settings)}")
    rank, alpha, dropout = settings.pop()
    return {"rank": rank, "alpha": alpha, "dropout": dropout, "modules": list(mods)}


def save_lora(model: nn.Module, path_dir: str | os.PathLike,
              include: str | Iterable[str] | None = None) -> Path:
    """Write the adapters (and ``include``-d parameters, e.g. ``["classifier"]``) to a folder.

    Args:
        model: a model with LoRA modules (one rank, alpha and dropout for all).
        path_dir: the folder (created if needed); its two files are replaced atomically.
        include: patterns (as in :func:`scratchnn.finetune.freeze`) of other parameters to
            save in full, such as a new head trained alongside the adapters.

    Returns:
        The folder's path.
    """
    settings = _uniform_settings(model)
    tensors = dict(lora_state_dict(model))
    extra: list[str] = []
    if include is not None:
        params = dict(model.named_parameters())
        extra = [n for n in match_parameters(model, include) if n not in tensors]
        tensors.update({n: params[n]._data for n in extra})
    targets: list[str] = []
    for record in getattr(model, "lora_config", None) or []:
        targets += [t for t in record["targets"] if t not in targets]
    config = {"format": _FORMAT, "version": 1, "targets": targets or settings["modules"],
              **settings, "extra_parameters": extra}
    folder = Path(path_dir)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / ADAPTER_WEIGHTS, tensors, metadata={"format": _FORMAT})
    save_json(folder / ADAPTER_CONFIG, config)
    return folder


def _read(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    config = load_json(folder / ADAPTER_CONFIG)
    if not isinstance(config, dict) or config.get("format") != _FORMAT:
        raise ValueError(f"{folder / ADAPTER_CONFIG} is not a scratchnn LoRA adapter config "
                         f"(format {config.get('format') if isinstance(config, dict) else None!r})")
    missing = [k for k in ("rank", "alpha", "dropout", "modules") if k not in config]
    if missing:
        raise ValueError(f"{folder / ADAPTER_CONFIG} lacks {missing}")
    tensors, _ = load_tensors(folder / ADAPTER_WEIGHTS)
    return config, tensors


def _expected_shapes(model: nn.Module, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Key → shape of every tensor the adapter must hold, checked against the model."""
    rank = int(config["rank"])
    shapes: dict[str, tuple[int, ...]] = {}
    for name in config["modules"]:
        layer = model.get_submodule(name)
        shapes[f"{name}.lora_A"] = (rank, layer.in_features)
        shapes[f"{name}.lora_B"] = (layer.out_features, rank)
    params = dict(model.named_parameters())
    for name in config.get("extra_parameters", []):
        if name not in params:
            raise ValueError(f"the adapter holds parameter {name!r}, which this "
                             f"{type(model).__name__} lacks")
        shapes[name] = tuple(params[name].shape)
    return shapes


def _check_modules(model: nn.Module, config: dict[str, Any], folder: Path) -> None:
    """The model must either have exactly the adapter's LoRA modules, or none and the
    adapter's target Linear layers."""
    wanted = list(config["modules"])
    have = lora_modules(model)
    if have:
        same = {(m.rank, m.alpha) for m in have.values()} == {(config["rank"],
                                                               float(config["alpha"]))}
        if any(m.merged for m in have.values()):
            raise ValueError("the model's LoRA modules are merged; unmerge_lora(model) before "
                             "loading adapter weights")
        if sorted(have) != sorted(wanted) or not same:
            raise ValueError(f"{type(model).__name__} already has LoRA on {sorted(have)[:5]} "
                             f"that does not match the adapter in {folder} (modules "
                             f"{wanted[:5]}, rank {config['rank']}); load onto a fresh base")
        return
    linears = set(linear_module_names(model))
    absent = [n for n in wanted if n not in linears]
    if absent:
        raise ValueError(f"the adapter in {folder} targets modules this "
                         f"{type(model).__name__} has no Linear for: {absent[:5]}; is it the "
                         f"same base architecture?")


def load_lora(model: nn.Module, path_dir: str | os.PathLike,
              rng: np.random.Generator | None = None) -> list[str]:
    """Apply LoRA to ``model`` as saved in ``path_dir`` and load the adapter weights.

    ``model`` is a fresh base (the same pretrained weights the adapter was trained on), or a
    model already carrying exactly the adapter's LoRA modules. Every module, key and shape is
    checked before anything changes, so a failing load leaves the model as it was.

    Returns:
        The adapted module names.

    Raises:
        FileNotFoundError: a file is missing (named).
        ValueError: a corrupt file, or modules, keys or shapes that do not match the model.
    """
    folder = Path(path_dir)
    config, tensors = _read(folder)
    _check_modules(model, config, folder)
    shapes = _expected_shapes(model, config)
    missing = [k for k in shapes if k not in tensors]
    unexpected = [k for k in tensors if k not in shapes]
    bad = [f"{k}: file {tuple(tensors[k].shape)}, model {s}" for k, s in shapes.items()
           if k in tensors and tuple(tensors[k].shape) != s]
    if missing or unexpected or bad:
        raise ValueError(f"adapter {folder / ADAPTER_WEIGHTS} does not fit "
                         f"{type(model).__name__}: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}, shape mismatches {bad[:5]}")
    if not lora_modules(model):
        apply_lora(model, list(config["modules"]), int(config["rank"]), float(config["alpha"]),
                   float(config["dropout"]), rng=rng)
        model.lora_config[-1]["targets"] = list(config.get("targets") or config["modules"])
    params = dict(model.named_parameters())
    for key, array in tensors.items():
        target = params[key]
        target._data[...] = array  # cast to the parameter's dtype
        target._version += 1
    return list(config["modules"])
