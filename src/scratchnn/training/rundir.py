"""Run directories: naming, refusing to clobber, staged overwrites, and the metrics log."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from scratchnn.errors import CheckpointError, RunDirExistsError
from scratchnn.serialization import atomic_write_bytes

__all__ = ["DEFAULT_RUNS_ROOT", "MetricsLog", "RunDir", "default_run_dir"]

#: Runs go to ``./runs/<data>-<timestamp>`` (relative to the working directory) by default.
DEFAULT_RUNS_ROOT = "runs"

#: Directories this process created in :func:`default_run_dir`, still empty: a failed run
#: removes them entirely, as if it had created them itself.
_CLAIMED: set[Path] = set()

#: The file whose presence marks a directory as a scratchnn run (safe to overwrite).
_MARKER = "config.json"


def default_run_dir(data_name: str, root: str | os.PathLike = DEFAULT_RUNS_ROOT) -> Path:
    """A new, empty ``root/<data>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... if taken).

    The directory is created here, atomically: two runs started in the same second each get
    their own directory instead of writing into one.
    """
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(data_name).stem) or "run"
    base = Path(root) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    base.parent.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            _CLAIMED.add(path)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


class RunDir:
    """Where a new run writes its files; an overwrite is staged so a failure loses nothing.

    A missing or empty directory is written to directly. An existing non-empty one is refused
    unless ``overwrite`` is set and it is a scratchnn run (it has ``config.json``); then the
    new run is written to a hidden sibling folder and only :meth:`commit` swaps it in, after
    training succeeded. Until then the old run is untouched.

    Args:
        path: the run directory the user asked for.
        overwrite: replace an existing run there.
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        self.final = Path(path)
        if self.final.exists() and not self.final.is_dir():
            raise RunDirExistsError(f"run directory {self.final} exists and is not a directory")
        self.staged = self.final.exists() and not _is_empty_dir(self.final)
        if self.staged and not overwrite:
            raise RunDirExistsError(f"run directory {self.final} already exists and is not "
                                    "empty; choose another --out or pass --overwrite")
        if self.staged and not (self.final / _MARKER).is_file():
            raise RunDirExistsError(f"refusing to overwrite {self.final}: it is not a scratchnn "
                                    f"run directory (it has no {_MARKER})")
        self.path = self.final
        self._was_empty = False
        self._created = False

    def create(self) -> Path:
        """Create the folder the run writes to (the staging folder for an overwrite)."""
        if self.staged:
            self.path = self.final.with_name(f".{self.final.name}.staging-{os.getpid()}")
            shutil.rmtree(self.path, ignore_errors=True)
        self._created = not self.path.exists() or self.path in _CLAIMED
        self._was_empty = self._created or _is_empty_dir(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def commit(self) -> Path:
        """Move a staged run into place (replacing the old run); return the final path."""
        if self.staged and self.path != self.final:
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            os.replace(self.final, old)
            os.replace(self.path, self.final)
            shutil.rmtree(old, ignore_errors=True)
            self.path = self.final
        return self.final

    def discard(self, resumable: str = "trainer_state.json") -> None:
        """After a failure: remove a staging folder, or the files of a new run that never
        reached its first checkpoint (one that did is kept, to be resumed)."""
        if self.staged:
            if self.path != self.final:
                shutil.rmtree(self.path, ignore_errors=True)
            return
        if self._was_empty and self.path.is_dir() and not (self.path / resumable).exists():
            for child in self.path.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
            if self._created:
                self.path.rmdir()


class MetricsLog:
    """The per-epoch records and their JSON-lines file, rewritten atomically by :meth:`flush`.

    The Trainer flushes together with each checkpoint, so the file never runs ahead of the
    state a resume starts from by more than the epochs since the last checkpoint.
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = None if path is None else Path(path)
        self.records: list[dict[str, Any]] = []

    def append(self, record: dict[str, Any]) -> None:
        """Add one epoch's record (in memory; see :meth:`flush`)."""
        self.records.append(record)

    def flush(self) -> None:
        """Rewrite the file with every record so far."""
        if self.path is None:
            return
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in self.records)
        atomic_write_bytes(self.path, text.encode("utf-8"))

    def load(self, keep_through_epoch: int | None = None) -> list[dict[str, Any]]:
        """Read the file back (records after ``keep_through_epoch`` are dropped and the file
        rewritten, e.g. epochs logged after the checkpoint a resume starts from)."""
        self.records = read_metrics(self.path) if self.path and self.path.exists() else []
        if keep_through_epoch is not None:
            kept = [r for r in self.records if r.get("epoch", 0) <= keep_through_epoch]
            if len(kept) != len(self.records):
                self.records = kept
                self.flush()
        return self.records


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Parse a ``metrics.jsonl`` file; a corrupt line raises CheckpointError naming it."""
    records = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise CheckpointError(f"{path}, line {i} is corrupt: {e}") from None
        if not isinstance(record, dict):
            raise CheckpointError(f"{path}, line {i} is not a JSON object")
        records.append(record)
    return records
