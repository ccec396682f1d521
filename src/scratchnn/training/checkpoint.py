"""Checkpoints: model weights, optimizer/scheduler/RNG state, and loading a whole run back.

Every file is written atomically (``scratchnn.serialization``) and none is pickled. The files
of one training checkpoint (``last.safetensors``, ``optimizer.safetensors``,
``trainer_state.json``) all record the epoch and step they belong to, and ``trainer_state.json``
is written last: a save interrupted half-way is detected on load instead of resuming from a
mix of two epochs.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scratchnn.errors import CheckpointError
from scratchnn.random import default_generator
from scratchnn.serialization import load_json, load_tensors, save_json, save_tensors

__all__ = [
    "CONFIG_FILE", "CURVES_FILE", "LAST_FILE", "METRICS_FILE", "MODEL_FILE", "OPTIMIZER_FILE",
    "PREPROCESSING_FILE", "SPLIT_FILE", "STATE_FILE", "LoadedRun", "get_rng_states",
    "load_model_weights", "load_run", "load_training_state", "read_json", "read_run_config",
    "read_tensors", "save_model", "save_training_state", "save_weights", "set_rng_states",
    "versions",
]

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
LAST_FILE = "last.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
PREPROCESSING_FILE = "preprocessing.json"
SPLIT_FILE = "split.json"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"

_STATE_FORMAT = "scratchnn.trainer_state"
_STATE_VERSION = 1
#: Key of the default generator (``scratchnn.manual_seed``) in the saved RNG states.
_DEFAULT_RNG = "default"

PathLike = str | os.PathLike


def versions() -> dict[str, str]:
    """Versions of scratchnn, NumPy and Python, recorded in a run's config."""
    from scratchnn import __version__

    return {"scratchnn": __version__, "numpy": np.__version__,
            "python": platform.python_version()}


# --------------------------------------------------------------------------- file reading
def read_tensors(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``load_tensors`` with a CheckpointError naming the file when it is missing or corrupt."""
    try:
        return load_tensors(path)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} is missing") from None
    except ValueError as e:  # its message names the file
        raise CheckpointError(str(e)) from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None


def read_json(path: PathLike) -> Any:
    """``load_json`` with a CheckpointError naming the file when it is missing or corrupt."""
    try:
        return load_json(path)
    except FileNotFoundError:
        raise CheckpointError(f"run file {path} is missing") from None
    except ValueError as e:  # its message names the file
        raise CheckpointError(str(e)) from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None


def read_run_config(run_dir: PathLike) -> dict[str, Any]:
    """A run directory's ``config.json``: the one place every saved run is opened from.

    Raises:
        CheckpointError: the directory does not exist, has no ``config.json`` (it is not a
            run directory), or its config is unreadable or not a JSON object.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{run_dir} is not a scratchnn run directory (no {CONFIG_FILE})")
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} is not a scratchnn run config (not a JSON "
                              f"object)")
    return config


def _meta_int(meta: Mapping[str, str], key: str, path: PathLike) -> int:
    try:
        return int(meta[key])
    except (KeyError, ValueError):
        raise CheckpointError(f"{path} has no valid {key!r} in its header metadata; "
                              "it was not written by a scratchnn Trainer") from None


# --------------------------------------------------------------------------- model weights
def save_weights(path: PathLike, arrays: Mapping[str, Any],
                 metadata: Mapping[str, Any] | None = None) -> None:
    """Write named arrays to a safetensors file; non-string metadata values are JSON-encoded."""
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    save_tensors(path, arrays, metadata=meta)


def save_model(path: PathLike, model: Any, metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``model.state_dict()`` to a safetensors file (see :func:`save_weights`)."""
    save_weights(path, model.state_dict(), metadata)


def load_model_weights(model: Any, path: PathLike,
                       tensors: tuple[dict[str, np.ndarray], dict[str, str]] | None = None
                       ) -> dict[str, str]:
    """Load a safetensors file (or its already-read ``tensors``) into ``model``; return its
    metadata. Every key and shape must match."""
    arrays, meta = read_tensors(path) if tensors is None else tensors
    try:
        model.load_state_dict(arrays, strict=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path} does not match the model: {e}") from None
    return meta


# --------------------------------------------------------------------------- RNG states
def get_rng_states(rngs: Mapping[str, np.random.Generator]) -> dict[str, Any]:
    """``bit_generator.state`` of each named generator and of the default generator."""
    states = {name: rng.bit_generator.state for name, rng in rngs.items()}
    states[_DEFAULT_RNG] = default_generator().bit_generator.state
    return states


def set_rng_states(rngs: Mapping[str, np.random.Generator], states: Mapping[str, Any],
                   path: PathLike = STATE_FILE) -> None:
    """Put the states saved by :func:`get_rng_states` back into the same generators."""
    targets = dict(rngs)
    targets[_DEFAULT_RNG] = default_generator()
    missing = sorted(set(targets) - set(states))
    if missing:
        raise CheckpointError(f"{path} has no saved state for random generator(s) {missing}; "
                              f"saved: {sorted(states)}")
    for name, rng in targets.items():
        try:
            rng.bit_generator.state = states[name]
        except (TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: cannot restore random generator {name!r}: {e}") \
                from None


# --------------------------------------------------------------------------- training state
def save_training_state(run_dir: PathLike, *, model: Any, optimizer: Any, scheduler: Any,
                        rngs: Mapping[str, np.random.Generator], state: Mapping[str, Any]
                        ) -> None:
    """Write ``last.safetensors``, ``optimizer.safetensors`` and ``trainer_state.json``.

    ``state`` must hold ``epoch`` and ``step``; it is saved with the optimizer's JSON part,
    the scheduler's state and the RNG states. ``trainer_state.json`` goes last, so it only
    ever names a complete set of files.
    """
    from scratchnn.optim import flatten_state_dict

    run_dir = Path(run_dir)
    tag = {"epoch": str(int(state["epoch"])), "step": str(int(state["step"]))}
    save_model(run_dir / LAST_FILE, model, tag)
    arrays, opt_json = flatten_state_dict(optimizer.state_dict())
    save_tensors(run_dir / OPTIMIZER_FILE, arrays,
                 metadata={**tag, "optimizer": json.dumps(opt_json)})
    full = {
        "format": _STATE_FORMAT,
        "version": _STATE_VERSION,
        **state,
        "optimizer_class": type(optimizer).__name__,
        "scheduler_class": None if scheduler is None else type(scheduler).__name__,
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": get_rng_states(rngs),
    }
    save_json(run_dir / STATE_FILE, full)


def load_training_state(run_dir: PathLike, *, model: Any, optimizer: Any, scheduler: Any,
                        rngs: Mapping[str, np.random.Generator]) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNGs from a run directory; return the state.

    Raises:
        CheckpointError: a file is missing, corrupt, from another epoch, or does not match
            the model/optimizer/scheduler (the message names the file).
    """
    from scratchnn.optim import unflatten_state_dict

    run_dir = Path(run_dir)
    state_path = run_dir / STATE_FILE
    state = read_json(state_path)
    if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
        raise CheckpointError(f"{state_path} is not a scratchnn trainer state file")
    if state.get("version") != _STATE_VERSION:
        raise CheckpointError(f"{state_path} has version {state.get('version')!r}; this "
                              f"scratchnn reads version {_STATE_VERSION}")
    for key in ("epoch", "step", "rng", "optimizer_class"):
        if key not in state:
            raise CheckpointError(f"{state_path} is missing {key!r}")
    epoch, step = int(state["epoch"]), int(state["step"])

    last_path, opt_path = run_dir / LAST_FILE, run_dir / OPTIMIZER_FILE
    opt_arrays, opt_meta = read_tensors(opt_path)
    last = read_tensors(last_path)
    for path, meta in ((opt_path, opt_meta), (last_path, last[1])):
        got = (_meta_int(meta, "epoch", path), _meta_int(meta, "step", path))
        if got != (epoch, step):
            raise CheckpointError(
                f"{path} is from epoch {got[0]} (step {got[1]}) but {state_path} is from epoch "
                f"{epoch} (step {step}); the last save was interrupted"
            )
    if state["optimizer_class"] != type(optimizer).__name__:
        raise CheckpointError(f"{state_path} holds {state['optimizer_class']} state, but the "
                              f"optimizer is {type(optimizer).__name__}")
    try:
        opt_json = json.loads(opt_meta["optimizer"])
        optimizer.load_state_dict(unflatten_state_dict(opt_arrays, opt_json))
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"cannot restore the optimizer from {opt_path}: {e}") from None
    saved_sched = state.get("scheduler")
    if (saved_sched is None) != (scheduler is None) or (
            scheduler is not None and state.get("scheduler_class") != type(scheduler).__name__):
        raise CheckpointError(f"{state_path} holds scheduler {state.get('scheduler_class')!r}, "
                              f"but the run uses {type(scheduler).__name__ if scheduler else None}")
    if scheduler is not None:
        try:
            scheduler.load_state_dict(saved_sched)
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"cannot restore the scheduler from {state_path}: {e}") \
                from None
    # The weights go last: the model is only changed once every other file has checked out.
    load_model_weights(model, last_path, last)
    set_rng_states(rngs, state["rng"], state_path)
    return state


# --------------------------------------------------------------------------- whole runs
@dataclass
class LoadedRun:
    """A trained run read back from its directory: model (eval mode), preprocessing, config."""

    model: Any
    preprocessor: Any
    config: dict[str, Any]
    run_dir: Path


def build_model(spec: Mapping[str, Any], source: PathLike = CONFIG_FILE) -> Any:
    """Build an untrained model from a config's ``{"name": ..., "config": {...}}`` section."""
    from scratchnn.models import build_model as _build

    try:
        return _build(spec["name"], spec["config"], rng=np.random.default_rng(0))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: invalid model section {dict(spec)!r}: {e}") from None


def load_run(run_dir: PathLike) -> LoadedRun:
    """Load the best model, the fitted preprocessing and the resolved config of a run.

    Raises:
        CheckpointError: the directory is not a run, or one of its files is missing or
            corrupt (the message names it).
    """
    from scratchnn.data import Preprocessor

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    config_path = run_dir / CONFIG_FILE
    if "model" not in config:
        raise CheckpointError(f"{config_path} is not a scratchnn run config (no 'model' entry)")
    model = build_model(config["model"], config_path)
    load_model_weights(model, run_dir / MODEL_FILE)
    model.eval()
    prep_path = run_dir / PREPROCESSING_FILE
    try:
        prep = Preprocessor.from_dict(read_json(prep_path))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{prep_path} is not valid preprocessing state: {e}") from None
    return LoadedRun(model=model, preprocessor=prep, config=config, run_dir=run_dir)
