"""Data side of the tabular recipe: resolve a data source, infer the task, split and encode."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scratchnn.data import (
    BUILTIN_DATASETS,
    CSVError,
    Preprocessor,
    Table,
    builtin_info,
    is_missing,
    load_table,
    train_val_test_split,
)
from scratchnn.data.split import min_group_rows
from scratchnn.data.table import NUMERIC
from scratchnn.errors import ScratchnnError, UsageError

__all__ = ["DataSource", "Splits", "check_regression_target", "infer_task", "resolve_source",
           "split_rows"]

#: A numeric target with at most this many distinct integer values is taken as class labels.
MAX_INFERRED_CLASSES = 20


@dataclass
class DataSource:
    """Where a table comes from: a built-in data set name or a CSV file (absolute path)."""

    kind: str  # 'builtin' | 'csv'
    source: str
    sha256: str | None = None

    @property
    def name(self) -> str:
        """A short name for run directories and messages."""
        return self.source if self.kind == "builtin" else Path(self.source).stem

    def load(self, column_types: dict[str, str] | None = None) -> Table:
        """Read the table (CSV columns typed as ``column_types`` says)."""
        return load_table(self.source, column_types=column_types)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for a run's config."""
        return {"kind": self.kind, "source": self.source, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSource:
        """Rebuild from :meth:`to_dict` output."""
        return cls(kind=d["kind"], source=d["source"], sha256=d.get("sha256"))

    def check_unchanged(self) -> None:
        """Raise if a CSV file is gone or its contents differ from when the run was made."""
        if self.kind != "csv":
            return
        path = Path(self.source)
        if not path.is_file():
            raise ScratchnnError(f"the run's data file {path} no longer exists; pass --data "
                                 "to use another file")
        if self.sha256 is not None and _sha256(path) != self.sha256:
            raise ScratchnnError(f"the run's data file {path} has changed since training (its "
                                 "SHA-256 differs), so its saved split no longer applies; pass "
                                 "--data to evaluate on it as new data")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resolve_source(data: str) -> DataSource:
    """A built-in name or an existing CSV file (an existing file wins over a built-in name)."""
    path = Path(data)
    if path.is_file():
        return DataSource("csv", str(path.resolve()), _sha256(path))
    if data in BUILTIN_DATASETS:
        return DataSource("builtin", data)
    if path.exists():
        raise ScratchnnError(f"data source {data!r} is not a file")
    raise ScratchnnError(f"data source {data!r} is neither an existing CSV file nor a built-in "
                         f"data set ({', '.join(BUILTIN_DATASETS)})")


def default_target(source: DataSource, target: str | None, table: Table) -> str:
    """``target`` itself, else the built-in data set's target; a CSV needs it given."""
    if target is not None:
        return target
    if source.kind == "builtin":
        return builtin_info(source.source).target
    raise UsageError(f"--target is required for a CSV file ({source.source}); its columns "
                     f"are: {', '.join(table.columns)}")


def infer_task(table: Table, target: str, source: DataSource) -> tuple[str, str | None]:
    """(task, note): the built-in's task, or for a CSV 'classification' when the target is
    non-numeric or has few distinct integer values, else 'regression' (the note says why)."""
    if source.kind == "builtin" and target == builtin_info(source.source).target:
        return builtin_info(source.source).task, None
    col = table[target]
    present = col[~is_missing(col)]
    if col.dtype == object:
        return "classification", (f"task: classification (target {target!r} is not numeric); "
                                  "pass --task to override")
    values = np.unique(present)
    few = len(values) <= MAX_INFERRED_CLASSES and len(values) <= max(2, len(present) // 2)
    if len(values) >= 2 and few and np.all(values == np.round(values)):
        return "classification", (f"task: classification (target {target!r} has "
                                  f"{len(values)} distinct integer values); pass --task "
                                  "regression to override")
    return "regression", (f"task: regression (target {target!r} is numeric with "
                          f"{len(values)} distinct values); pass --task to override")


def check_regression_target(table: Table, target: str, task: str, source: DataSource) -> None:
    """Raise when ``task`` is regression but the target column is not numeric; for a CSV file
    the message names the line of the first non-numeric value."""
    if task != "regression" or table.is_numeric(target):
        return
    hint = (f"--task regression needs a numeric target (pass --task classification, or leave "
            f"--task out, to predict {target!r} as classes)")
    if source.kind == "csv":
        try:  # reading the target as numeric fails at its first non-number, naming the line
            source.load({target: NUMERIC})
        except CSVError as e:
            raise UsageError(f"{e}; {hint}") from None
    raise UsageError(hint)


@dataclass
class Splits:
    """Row indices of each split into the table as loaded (before dropping missing targets)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def to_dict(self) -> dict[str, list[int]]:
        """JSON form (``split.json``)."""
        return {k: getattr(self, k).tolist() for k in ("train", "val", "test")}

    @classmethod
    def from_dict(cls, d: dict[str, Any], n_rows: int, path: Any) -> Splits:
        """Rebuild, checking every index against the table's ``n_rows``."""
        out = {}
        for key in ("train", "val", "test"):
            if key not in d:
                raise ScratchnnError(f"{path} has no {key!r} split")
            idx = np.asarray(d[key], dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= n_rows):
                raise ScratchnnError(f"{path}: the {key} split has row {int(idx.max())} but "
                                     f"the data has {n_rows} rows; has the data changed?")
            out[key] = idx
        return cls(**out)


def split_rows(table: Table, target: str, task: str, val_fraction: float,
               test_fraction: float, rng: np.random.Generator,
               regression_hint: str = "pass --task regression",
               notes: list[str] | None = None) -> tuple[Splits, int]:
    """Drop rows with a missing target, split the rest (stratified for classification).

    A split asked for (a non-zero fraction) that comes out empty is an error, and so is a
    classification target where most rows are in classes too small to stratify (a continuous
    value taken as class labels: ``regression_hint`` says what to do instead). Classes that
    are too small to reach every split are named in ``notes``.

    Returns:
        (splits as indices into ``table``, number of rows dropped).
    """
    keep = np.flatnonzero(~is_missing(table[target]))
    if keep.size == 0:
        raise ScratchnnError(f"target column {target!r} has no values")
    labels = table[target][keep] if task == "classification" else None
    tr, va, te = train_val_test_split(len(keep), val_fraction=val_fraction,
                                      test_fraction=test_fraction, stratify=labels, rng=rng)
    if labels is not None:
        _check_classes(table[target], labels, target, val_fraction, test_fraction,
                       regression_hint, notes)
    if tr.size == 0:
        raise ScratchnnError(f"too few rows ({keep.size}) to train on")
    empty = [(name, flag) for name, flag, fraction, rows in (
        ("validation", "--val-fraction", val_fraction, va),
        ("test", "--test-fraction", test_fraction, te)) if fraction > 0 and rows.size == 0]
    if empty:
        raise ScratchnnError(
            f"too few rows ({keep.size}) for {' and '.join(n for n, _ in empty)} rows "
            f"(val_fraction {val_fraction}, test_fraction {test_fraction}); add rows, or "
            f"pass {' '.join(f'{flag} 0' for _, flag in empty)}")
    return Splits(keep[tr], keep[va], keep[te]), int(len(table) - keep.size)


def _check_classes(column: np.ndarray, labels: np.ndarray, target: str, val_fraction: float,
                   test_fraction: float, regression_hint: str,
                   notes: list[str] | None) -> None:
    """Raise when most rows are in classes too small to stratify; note the small classes."""
    need = min_group_rows(val_fraction, test_fraction)
    values, counts = np.unique(labels, return_counts=True)
    small = counts < need
    if not small.any():
        return
    singles = int((counts == 1).sum())
    held_out = ["validation"] * (val_fraction > 0) + ["test"] * (test_fraction > 0)
    hint = f"; if {target!r} is a continuous value, {regression_hint}"
    if 2 * int(counts[small].sum()) > len(labels):
        raise ScratchnnError(
            f"target {target!r} has {len(values)} classes for {len(labels)} rows and "
            f"{int(small.sum())} of them have fewer than {need} rows ({singles} have a single "
            f"row): too few rows per class to split into {'/'.join(['train', *held_out])} "
            f"rows{hint if column.dtype != object else ''}")
    if notes is not None:
        shown = ", ".join(repr(_label(v)) for v in values[small][:5])
        more = "" if small.sum() <= 5 else ", ..."
        fractional = column.dtype != object and not np.all(values == np.round(values))
        notes.append(f"{int(small.sum())} of {len(values)} classes of target {target!r} have "
                     f"fewer than {need} rows and are in the training rows only, not in the "
                     f"{' or '.join(held_out)} rows: {shown}{more}{hint if fractional else ''}")


def _label(value: Any) -> Any:
    """A class label as the user wrote it: 3.0 -> 3."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value.item() if isinstance(value, np.generic) else value


def encode(prep: Preprocessor, table: Table, rows: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(features, targets) of ``rows`` of ``table`` (all rows when None)."""
    part = table if rows is None else table.take(rows)
    return prep.transform_features(part), prep.transform_target(part)
