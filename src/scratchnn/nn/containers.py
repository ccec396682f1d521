"""Containers of modules: ``Sequential``, ``ModuleList`` and ``ModuleDict``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping

from scratchnn.nn.module import Module


def _index(index: int, length: int) -> int:
    """``index`` as a non-negative position; IndexError names the index and the length."""
    if not isinstance(index, int):
        raise TypeError(f"index must be an int or a slice, got {type(index).__name__}")
    position = index + length if index < 0 else index
    if not 0 <= position < length:
        raise IndexError(f"index {index} is out of range for a container of {length} modules")
    return position


class _IndexedModules(Module):
    """Modules kept under the keys "0", "1", ... and reached by position."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for module in modules:
            self.append(module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            # A new container of the same class sharing the modules (and, as in PyTorch,
            # their keys for Sequential; ModuleList renumbers).
            new = type(self).__new__(type(self))
            Module.__init__(new)
            items = list(self._modules.items())[index]
            for i, (key, module) in enumerate(items):
                new.add_module(key if isinstance(self, Sequential) else str(i), module)
            return new
        values = list(self._modules.values())
        return values[_index(index, len(values))]

    def __setitem__(self, index: int, module: Module) -> None:
        key = list(self._modules)[_index(index, len(self))]
        self.add_module(key, module)

    def __delitem__(self, index) -> None:
        values = list(self._modules.values())
        if isinstance(index, slice):
            del values[index]
        else:
            del values[_index(index, len(values))]
        # Renumber so the keys (and state_dict names) stay "0".."n-1", as in PyTorch.
        self._modules.clear()
        for module in values:
            self.append(module)

    def append(self, module: Module) -> _IndexedModules:
        """Add ``module`` at the end; returns self."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> _IndexedModules:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        values = list(self._modules.values())
        values.insert(index, module)
        self._modules.clear()
        for m in values:
            self.append(m)


class Sequential(_IndexedModules):
    """Modules applied one after another: ``Sequential(Linear(4, 8), ReLU(), Linear(8, 2))``.

    Also accepts one ``OrderedDict`` of named modules.
    """

    def __init__(self, *modules: Module) -> None:
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            Module.__init__(self)
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            super().__init__(modules)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x


class ModuleList(_IndexedModules):
    """A list of modules, registered so that their parameters are found; it has no forward."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__(modules or ())


class ModuleDict(Module):
    """A dict of modules, registered in insertion order; it has no forward."""

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules: Mapping[str, Module]) -> None:
        items = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in items:
            self.add_module(key, module)
