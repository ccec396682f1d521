"""``Module``: the base class of layers and models, registering parameters, buffers and children.

Parameters, buffers and child modules live in three ordered dicts (``_parameters``,
``_buffers``, ``_modules``) filled by ``__setattr__`` in attribute order. ``__getattr__`` is
consulted only when normal lookup fails, so plain attributes stay as fast as on any object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from scratchnn.autograd.grad_mode import no_grad
from scratchnn.autograd.tensor import Tensor
from scratchnn.nn.parameter import Parameter


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns; unpacks as ``(missing, unexpected)``."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class RemovableHandle:
    """Returned by ``register_forward_hook``; ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict) -> None:
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)


def _as_buffer(value, like: Tensor | None) -> Tensor | None:
    """A buffer Tensor for ``value``; arrays take the dtype of the buffer they replace."""
    if value is None or isinstance(value, Tensor):
        return value
    if isinstance(value, (np.ndarray, np.generic, int, float, bool, list)):
        return Tensor(value, dtype=None if like is None else like.dtype)
    raise TypeError(f"a buffer must be a Tensor, an array or None, got {type(value).__name__}")


class Module:
    """Base class of every layer and model; subclasses define ``forward``."""

    training: bool

    def __init__(self) -> None:
        # object.__setattr__: our own __setattr__ needs these dicts to exist already.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_forward_hooks", {})

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward() (abstract)")

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, args, out)
                if result is not None:
                    out = result
        return out

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward; a non-None return replaces
        the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ----------------------------------------------------------------- registration
    def _dicts(self) -> dict:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(
                f"cannot assign to {type(self).__name__} before Module.__init__() is called; "
                f"call super().__init__() first"
            )
        return d

    def __setattr__(self, name: str, value: Any) -> None:
        d = self._dicts() if isinstance(value, (Parameter, Module)) else self.__dict__
        params, modules, buffers = d.get("_parameters"), d.get("_modules"), d.get("_buffers")
        if isinstance(value, Parameter):
            self._discard(name, keep="_parameters")
            params[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} "
                    f"(Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self._discard(name, keep="_modules")
            modules[name] = value
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module {name!r} "
                    f"(Module or None expected)"
                )
            modules[name] = None
        elif buffers is not None and name in buffers:
            buffers[name] = _as_buffer(value, buffers[name])
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails; never recurse before __init__ has run.
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            store = d.get(key)
            if store is not None and name in store:
                return store[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        if not self._discard(name):
            object.__delattr__(self, name)

    def _discard(self, name: str, keep: str = "") -> bool:
        """Forget ``name`` wherever it is registered except in the store ``keep`` (where a
        re-assignment keeps its place in the order); True if it was anywhere."""
        d = self.__dict__
        found = False
        for key in ("_parameters", "_buffers", "_modules"):
            store = d.get(key, {})
            if key != keep and name in store:
                del store[name]
                found = True
        d.get("_non_persistent", set()).discard(name)
        if name in d:
            del d[name]
            found = True
        return found

    def __dir__(self) -> list[str]:
        extra = [*self._parameters, *self._buffers, *self._modules]
        return sorted(set(super().__dir__()) | set(extra))

    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"a module attribute name must be a non-empty str without '.', "
                           f"got {name!r}")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None, a placeholder such as a missing bias) as ``name``."""
        self._check_name(name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"parameter {name!r} must be a Parameter or None, "
                            f"got {type(param).__name__}")
        self._dicts()
        self._discard(name, keep="_parameters")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register a non-trainable tensor (array, Tensor or None); ``persistent=False`` keeps
        it out of ``state_dict``."""
        self._check_name(name)
        self._dicts()
        value = _as_buffer(tensor, None)
        self._discard(name, keep="_buffers")
        self._buffers[name] = value
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the child ``name``."""
        self._check_name(name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"child {name!r} must be a Module or None, "
                            f"got {type(module).__name__}")
        self._dicts()
        self._discard(name, keep="_modules")
        self._modules[name] = module

    def get_submodule(self, target: str) -> Module:
        """The module at dotted path ``target`` (``""`` is this module)."""
        module = self
        for part in target.split(".") if target else ():
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} "
                                     f"(looking up {target!r})")
            module = child
        return module

    # ----------------------------------------------------------------- iteration
    def named_modules(self, prefix: str = "", memo: set | None = None) -> Iterator:
        """(dotted name, module) for this module and every descendant, each once, pre-order."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator:
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, key: str, prefix: str, recurse: bool) -> Iterator:
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, value in module.__dict__[key].items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator:
        """(dotted name, Parameter), a parameter shared by several modules only once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """The number of scalars in the (unique) parameters."""
        return sum(p.numel() for p in self.parameters()
                   if p.requires_grad or not trainable_only)

    # ----------------------------------------------------------------- state dict
    def _state_items(self, prefix: str = "") -> Iterator:
        """(key, tensor) in state_dict order: per module its parameters, then its buffers."""
        for mod_prefix, module in self.named_modules(prefix):
            dot = f"{mod_prefix}." if mod_prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    yield dot + name, p
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    yield dot + name, b

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> dict[str, Any]:
        """Dotted key → array of every parameter and persistent buffer.

        The arrays are the tensors' own (shared, not copied): copy them (``{k: v.copy()}``) to
        keep a snapshot across training steps. ``keep_vars=True`` gives the Tensors instead.
        """
        return {k: (t if keep_vars else t._data) for k, t in self._state_items(prefix)}

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy ``state_dict``'s values into this module's tensors, in place.

        Values (arrays or Tensors) are cast to each tensor's dtype. Every key and shape is
        checked before anything is copied, so a failing load leaves the module unchanged.

        Returns:
            ``(missing_keys, unexpected_keys)``.

        Raises:
            RuntimeError: a shape mismatch (always), or missing/unexpected keys when ``strict``.
        """
        own = dict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        arrays = {}
        problems = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value._data if isinstance(value, Tensor) else np.asarray(value)
            if array.shape != target.shape:
                problems.append(f"size mismatch for {key!r}: checkpoint has shape "
                                f"{tuple(array.shape)}, the model has {tuple(target.shape)}")
            arrays[key] = array
        if strict and (missing or unexpected):
            problems.append(f"missing keys: {missing}; unexpected keys: {unexpected}")
        if problems:
            raise RuntimeError(f"error loading state_dict into {type(self).__name__}: "
                               + "; ".join(problems))
        with no_grad():
            for key, array in arrays.items():
                target = own[key]
                target._data[...] = array  # NumPy casts to the target's dtype
                target._version += 1
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- modes and dtype
    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout on, batch statistics updated) here and in every child."""
        if not isinstance(mode, bool):
            raise TypeError(f"training mode must be a bool, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or zero it in place with ``set_to_none=False``)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad._data[...] = 0

    def to(self, dtype) -> Module:
        """Convert every float parameter and float buffer (and their grads) to ``dtype``."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise ValueError(f"Module.to() converts to a float dtype, got {dtype}")
        tensors = list(self.parameters()) + list(self.buffers())
        for t in tensors:
            if t._data.dtype.kind == "f" and t._data.dtype != dtype:
                t._data = t._data.astype(dtype)
                t._version += 1
                if t.grad is not None:
                    t.grad = Tensor._wrap(t.grad._data.astype(dtype), False)
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every child (recursively), then on this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ----------------------------------------------------------------- display
    def extra_repr(self) -> str:
        """The text shown between this module's parentheses in its repr."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [f"({name}): {_indent(repr(m))}" for name, m in self._modules.items()]
        lines += children
        if not lines:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and not children:
            return f"{type(self).__name__}({extra})"
        return type(self).__name__ + "(\n  " + "\n  ".join(lines) + "\n)"

    def summary(self, input_shape: tuple[int, ...] | None = None, dtype=None) -> str:
        """A table of modules, output shapes and parameter counts (see ``nn.summary``)."""
        from scratchnn.nn.summary import summary

        return summary(self, input_shape, dtype)


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")
