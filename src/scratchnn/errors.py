"""User-facing errors: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "NonFiniteLossError",
    "NonFiniteLossWarning",
    "RunDirExistsError",
    "ScratchnnError",
    "UsageError",
]


class ScratchnnError(Exception):
    """Base class of errors caused by the user's input rather than by a bug."""


class UsageError(ScratchnnError):
    """A command-line option or option combination is invalid (the CLI exits with 2)."""


class RunDirExistsError(ScratchnnError):
    """The run directory exists and is not empty, and overwriting was not asked for."""


class CheckpointError(ScratchnnError):
    """A run directory or checkpoint file is missing, truncated, corrupt or inconsistent."""


class NonFiniteLossError(ScratchnnError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the step and epoch."""


class NonFiniteLossWarning(UserWarning):
    """Training stopped early because the loss became NaN or infinite (warn mode)."""
