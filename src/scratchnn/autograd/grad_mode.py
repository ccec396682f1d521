"""Grad mode: whether ops record the graph. The only global besides the default generator."""

from __future__ import annotations

import functools


class _State:
    enabled = True


_state = _State()


def is_grad_enabled() -> bool:
    """True when ops record the graph for backward."""
    return _state.enabled


class _GradMode:
    """Context manager and decorator that sets grad mode, restoring the old one on exit."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._prev: list[bool] = []

    def __enter__(self) -> None:
        self._prev.append(_state.enabled)
        _state.enabled = self._enabled

    def __exit__(self, *exc) -> None:
        _state.enabled = self._prev.pop()

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(self._enabled):
                return fn(*args, **kwargs)

        return wrapper


def no_grad() -> _GradMode:
    """Disable graph recording inside a ``with`` block or a decorated function."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Enable graph recording inside a ``with`` block (e.g. within ``no_grad``)."""
    return _GradMode(True)
