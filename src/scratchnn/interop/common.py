"""Shared pieces of the Hugging Face loaders: errors, config checks, reading and loading weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scratchnn.errors import CheckpointError, ScratchnnError
from scratchnn.serialization import load_json, load_tensors

__all__ = [
    "UnsupportedModelError", "check_flags", "check_value", "load_hf_tensors", "load_weights",
]


class UnsupportedModelError(ScratchnnError, ValueError):
    """A checkpoint's architecture or config field is one scratchnn cannot reproduce exactly."""


def check_value(hf: dict[str, Any], field: str, supported: tuple, default: Any) -> None:
    """Refuse ``hf[field]`` (``default`` when absent) unless it is one of ``supported``."""
    value = hf.get(field, default)
    if value is None:
        value = default
    if value not in supported:
        raise UnsupportedModelError(
            f"config.json field {field!r} = {value!r} is not supported (supported: "
            f"{', '.join(repr(s) for s in supported)})")


def check_flags(hf: dict[str, Any], fields: tuple[str, ...], supported: bool = False) -> None:
    """Refuse boolean fields whose value is not ``supported`` (absent counts as supported)."""
    for field in fields:
        value = hf.get(field, supported)
        if bool(value) != supported:
            raise UnsupportedModelError(
                f"config.json field {field!r} = {value!r} is not supported (only "
                f"{supported!r})")


def load_hf_tensors(folder: Path) -> dict[str, np.ndarray]:
    """The float32 arrays of ``model.safetensors`` (or of every shard listed in its index)."""
    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        weight_map = load_json(index).get("weight_map", {})
        files = [folder / name for name in sorted(set(weight_map.values()))]
    else:
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise FileNotFoundError(
            f"no model.safetensors (or model.safetensors.index.json) in {folder}; found "
            f"{found}. Only safetensors weights are read (pickle files such as "
            f"pytorch_model.bin can run code)")
    tensors: dict[str, np.ndarray] = {}
    for path in files:
        arrays, _ = load_tensors(path)
        tensors.update(arrays)
    for key, array in tensors.items():
        if array.dtype.kind == "f" and array.dtype != np.float32:
            tensors[key] = array.astype(np.float32)
    return tensors


def load_weights(model, state: dict[str, np.ndarray], folder: Path) -> None:
    """Copy ``state`` into ``model``; missing or unexpected names raise, listing them all."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"weights in {folder} do not match the {type(model).__name__} built from its "
            f"config.json: missing {missing}; unexpected {unexpected}")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"weights in {folder}: {e}") from None
