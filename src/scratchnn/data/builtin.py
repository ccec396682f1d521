"""Built-in tabular data sets: the small files that ship with scikit-learn (no download)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchnn.data.table import Table, read_csv

BUILTIN_TARGET = "target"


@dataclass(frozen=True)
class BuiltinInfo:
    """What a built-in data set is for: its default task and target column."""

    name: str
    task: str
    target: str = BUILTIN_TARGET


_INFO = {
    "iris": BuiltinInfo("iris", "classification"),
    "wine": BuiltinInfo("wine", "classification"),
    "breast_cancer": BuiltinInfo("breast_cancer", "classification"),
    "digits": BuiltinInfo("digits", "classification"),
    "diabetes": BuiltinInfo("diabetes", "regression"),
}

BUILTIN_DATASETS: tuple[str, ...] = tuple(_INFO)
BUILTIN_TASKS: dict[str, str] = {name: info.task for name, info in _INFO.items()}


def _unknown(name: object) -> ValueError:
    return ValueError(
        f"unknown built-in data set {name!r}; valid names are: {', '.join(BUILTIN_DATASETS)}"
    )


def builtin_info(name: str) -> BuiltinInfo:
    """Return the default task and target column of built-in data set ``name``."""
    if name not in _INFO:
        raise _unknown(name)
    return _INFO[name]


def _load_bunch(name: str):
    # sklearn is imported here only: the rest of scratchnn.data must not need it.
    from sklearn import datasets

    if name == "diabetes":
        # The raw (unscaled) values: our own preprocessing standardises on the train split.
        return datasets.load_diabetes(as_frame=False, scaled=False)
    return getattr(datasets, f"load_{name}")(as_frame=False)


def load_builtin(name: str) -> Table:
    """Load built-in data set ``name`` as a Table of its features plus a 'target' column.

    Classification targets are the integer class codes (as float64, like every numeric
    column); the regression target of 'diabetes' is the disease-progression score.
    """
    if name not in _INFO:
        raise _unknown(name)
    bunch = _load_bunch(name)
    data = np.asarray(bunch.data, dtype=np.float64)
    cols = {str(fname): data[:, j] for j, fname in enumerate(bunch.feature_names)}
    cols[BUILTIN_TARGET] = np.asarray(bunch.target, dtype=np.float64)
    return Table(cols)


def load_table(source: str | os.PathLike, column_types: dict[str, str] | None = None) -> Table:
    """Load a Table from a built-in data set name or a CSV file path.

    An existing file wins over a built-in name, so a file called 'iris' is read as CSV.
    """
    path = Path(source)
    if path.is_file():
        return read_csv(path, column_types=column_types)
    if isinstance(source, str) and source in _INFO:
        return load_builtin(source)
    if path.exists():
        raise ValueError(f"data source {str(source)!r} is not a file")
    raise FileNotFoundError(
        f"data source {str(source)!r} is neither an existing CSV file nor a built-in data set "
        f"({', '.join(BUILTIN_DATASETS)})"
    )
