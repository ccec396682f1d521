"""Checks shared by the recipes' option dataclasses, with errors that name the CLI flag."""

from __future__ import annotations

from collections.abc import Iterable

from scratchnn.errors import UsageError

__all__ = ["check_ints", "flag"]


def flag(name: str) -> str:
    """The command-line flag of an option field: ``batch_size`` → ``--batch-size``."""
    return "--" + name.replace("_", "-")


def check_ints(options: object, names: Iterable[str], minimum: int = 1,
               optional: bool = True) -> None:
    """Every field in ``names`` of ``options`` is an int >= ``minimum`` (or None, where
    ``optional``: an option left to its default).

    Raises:
        UsageError: naming the flag and the value given.
    """
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    for name in names:
        value = getattr(options, name)
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise UsageError(f"{flag(name)} must be {what}, got {value!r}")
