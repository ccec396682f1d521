"""``Optimizer``: the base class that owns param groups, per-parameter state and checkpoints.

Subclasses implement ``_init_state`` (the state a parameter gets on its first update) and
``_update`` (one in-place step on raw arrays). The base class decides which parameters are
updated: one whose ``requires_grad`` is False, or whose ``grad`` is None, is never touched:
no weight decay, no momentum, no state and no step count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from scratchnn.autograd.grad_mode import enable_grad, no_grad
from scratchnn.autograd.tensor import Tensor

__all__ = [
    "Optimizer",
    "flatten_state_dict",
    "param_groups_for_weight_decay",
    "unflatten_state_dict",
]

#: The marker that ``flatten_state_dict`` leaves in the JSON part where an array was.
_ARRAY_KEY = "__array__"


def _grad_array(p: Tensor) -> np.ndarray | None:
    """The gradient of ``p`` as an array in the parameter's dtype, or None."""
    grad = p.grad
    if grad is None:
        return None
    grad = grad._data if isinstance(grad, Tensor) else np.asarray(grad)
    if grad.shape != p._data.shape:
        raise ValueError(f"gradient shape {grad.shape} does not match parameter {p.shape}")
    return grad.astype(p._data.dtype, copy=False)


class Optimizer:
    """Base class for optimizers: param groups, lazy per-parameter state, state_dict.

    Args:
        params: an iterable of Tensors, or of dicts (param groups) each with a ``"params"``
            iterable and optional per-group hyperparameters overriding ``defaults``.
        defaults: the default hyperparameters of every group.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict) -> None:
        self._check_hyperparams(defaults)
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or dicts, got a Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)
        if not any(group["params"] for group in self.param_groups):
            raise ValueError("optimizer got an empty parameter list")

    # ----------------------------------------------------------------- hooks
    @staticmethod
    def _check_hyperparams(h: Mapping[str, Any]) -> None:
        """Raise ValueError naming any invalid hyperparameter in ``h``."""
        lr = h.get("lr", 0.0)
        if not lr >= 0.0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        weight_decay = h.get("weight_decay", 0.0)
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        eps = h.get("eps", 0.0)
        if not eps >= 0.0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        momentum = h.get("momentum", 0.0)
        if not momentum >= 0.0:
            raise ValueError(f"momentum must be >= 0, got {momentum}")

    def _init_state(self, p: np.ndarray, group: dict[str, Any]) -> dict[str, Any]:
        """The state a parameter gets on its first update (empty: none is stored)."""
        return {}

    def _update(
        self, p: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        """Update ``p`` in place from ``grad``; never write to ``grad``."""
        raise NotImplementedError("abstract: each optimizer defines _update")

    # ----------------------------------------------------------------- groups
    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones from defaults)."""
        if not isinstance(param_group, Mapping) or "params" not in param_group:
            raise TypeError("a param group must be a dict with a 'params' entry")
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer params must be Tensors, got {type(p).__name__}")
            if p._data.dtype.kind != "f":
                raise TypeError(f"optimizer params must be floating point, got {p.dtype}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids) or seen.intersection(ids):
            raise ValueError("some parameters appear in more than one param group (or twice)")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_hyperparams(group)
        group["params"] = params
        self.param_groups.append(group)

    # ----------------------------------------------------------------- stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: set it to None, or fill it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    grad = p.grad._data if isinstance(p.grad, Tensor) else p.grad
                    grad.fill(0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that requires grad and has one; return ``closure()`` if given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if not p.requires_grad:
                        continue
                    grad = _grad_array(p)
                    if grad is None:
                        continue
                    state = self.state.get(p)
                    if state is None:
                        state = self._init_state(p._data, group)
                        if state:
                            self.state[p] = state
                    self._update(p._data, grad, state, group)
                    # Autograd nodes that saved this array must see that it changed.
                    p._version += 1
        return loss

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The optimizer state as ``{"state": {index: {name: array or number}}, "param_groups"}``.

        Parameters are numbered across all groups in order; arrays are copies, so stepping
        afterwards does not change a state dict already taken.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            saved = {k: v for k, v in group.items() if k != "params"}
            saved["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                saved["params"].append(index[id(p)])
            groups.append(saved)
        state = {
            index[id(p)]: {
                k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()
            }
            for p, s in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a state from ``state_dict()``; group count and sizes must match this optimizer."""
        if "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("an optimizer state dict needs 'state' and 'param_groups' entries")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        by_index: dict[int, Tensor] = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"param group {i} has {len(saved['params'])} parameters in the loaded state "
                    f"dict, this optimizer's has {len(group['params'])}"
                )
            for idx, p in zip(saved["params"], group["params"]):
                by_index[int(idx)] = p
        new_state: dict[Tensor, dict[str, Any]] = {}
        for idx, saved_state in state_dict["state"].items():
            p = by_index.get(int(idx))
            if p is None:
                raise ValueError(f"loaded state has an entry for parameter {idx}, "
                                 f"which no param group lists")
            new_state[p] = {
                name: self._load_value(value, p, name, idx) for name, value in saved_state.items()
            }
        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            new_group = dict(group)
            for key, value in saved.items():
                if key == "params":
                    continue
                # JSON turns tuples (Adam's betas) into lists; keep the optimizer's own type.
                if isinstance(group.get(key), tuple) and isinstance(value, list):
                    value = tuple(value)
                new_group[key] = value
            new_groups.append(new_group)
        self.param_groups = new_groups
        self.state = new_state

    @staticmethod
    def _load_value(value: Any, p: Tensor, name: str, idx: Any) -> Any:
        """A copy of one saved state value, float arrays cast to the parameter's dtype."""
        if not isinstance(value, np.ndarray):
            return value
        if value.ndim and value.shape != p._data.shape:
            raise ValueError(
                f"state {name!r} of parameter {idx} has shape {value.shape}, "
                f"the parameter has shape {p.shape}"
            )
        if value.dtype.kind == "f":
            return value.astype(p._data.dtype, copy=True)
        return value.copy()

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def flatten_state_dict(state_dict: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
    """Split an optimizer state dict into arrays (for safetensors) and a JSON-able dict.

    Each array ``state[i][name]`` is stored under the key ``"state.{i}.{name}"`` and replaced in
    the JSON part by ``{"__array__": key}``; NumPy scalars become 0-d arrays so that their dtype
    survives. ``unflatten_state_dict`` reverses it exactly.
    """
    arrays: dict[str, np.ndarray] = {}
    json_state: dict[str, dict[str, Any]] = {}
    for idx, entries in state_dict["state"].items():
        out: dict[str, Any] = {}
        for name, value in entries.items():
            if isinstance(value, (np.ndarray, np.generic)):
                key = f"state.{idx}.{name}"
                arrays[key] = np.ascontiguousarray(value)
                out[name] = {_ARRAY_KEY: key}
            else:
                out[name] = _to_json_value(value)
        json_state[str(idx)] = out
    groups = [
        {k: _to_json_value(v) for k, v in group.items()} for group in state_dict["param_groups"]
    ]
    return arrays, {"state": json_state, "param_groups": groups}


def unflatten_state_dict(arrays: Mapping[str, np.ndarray], json_dict: Mapping[str, Any]) -> dict:
    """Rebuild the state dict that ``flatten_state_dict`` split (integer keys, arrays back)."""
    state: dict[int, dict[str, Any]] = {}
    for idx, entries in json_dict["state"].items():
        out = {}
        for name, value in entries.items():
            if isinstance(value, Mapping) and set(value) == {_ARRAY_KEY}:
                key = value[_ARRAY_KEY]
                if key not in arrays:
                    raise KeyError(f"optimizer state array {key!r} is missing from the arrays")
                value = np.array(arrays[key], copy=True)
            out[name] = value
        state[int(idx)] = out
    groups = [dict(group) for group in json_dict["param_groups"]]
    return {"state": state, "param_groups": groups}


def _to_json_value(value: Any) -> Any:
    """``value`` with NumPy scalars and tuples turned into Python numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_to_json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        raise TypeError("arrays belong in the state, not in a param group")
    return value


def param_groups_for_weight_decay(model_or_named_params: Any, weight_decay: float) -> list[dict]:
    """Two param groups: tensors with ndim >= 2 get ``weight_decay``, the rest get 0.0.

    Biases and norm scales (ndim < 2) are not decayed, as in nanoGPT. Frozen parameters
    (``requires_grad`` False) are left out; a parameter shared by two names appears once.

    Args:
        model_or_named_params: a Module (anything with ``named_parameters()``), or an
            iterable of ``(name, param)`` pairs or of parameters.
        weight_decay: the decay of the matrices and higher-rank tensors.
    """
    if not weight_decay >= 0.0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if hasattr(model_or_named_params, "named_parameters"):
        items = model_or_named_params.named_parameters()
    else:
        items = model_or_named_params
    decay: list[Tensor] = []
    no_decay: list[Tensor] = []
    seen: set[int] = set()
    for item in items:
        p = item[1] if isinstance(item, tuple) else item
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
