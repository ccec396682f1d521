"""Running the ``scratchnn`` CLI in-process from tests, and reading what it printed."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

from scratchnn.cli.main import main


def cli(*args: object) -> tuple[int, str, str]:
    """Run ``scratchnn ARGS`` in-process; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def one_error_line(err: str) -> str:
    """The single ``error: ...`` line a failing command must print (asserted)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]
