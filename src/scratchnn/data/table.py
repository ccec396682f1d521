"""A small column table and its CSV reader/writer (stdlib csv, no pandas)."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Strings that mean "no value" in a CSV cell (compared after stripping whitespace).
MISSING_MARKERS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "None", "?"})

NUMERIC = "numeric"
CATEGORICAL = "categorical"

PathLike = str | os.PathLike


class ColumnNotFoundError(KeyError, ValueError):
    """A column was asked for that the table does not have; the message lists those it has."""

    def __str__(self) -> str:
        # KeyError's default __str__ shows the repr of the message, quotes and all.
        return str(self.args[0]) if self.args else ""


class CSVError(ValueError):
    """A CSV file could not be read into a Table; the message names the file."""


def is_missing(column: np.ndarray) -> np.ndarray:
    """Return a boolean mask of the missing entries (NaN or None) of a table column."""
    if column.dtype == object:
        return np.fromiter((v is None for v in column), dtype=bool, count=len(column))
    return np.isnan(column)


def _as_column(name: str, values: Any) -> np.ndarray:
    """Convert values to a table column: float64 with NaN, or object str with None."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"column {name!r} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    values = arr.tolist()
    if values and all(v is None or isinstance(v, (int, float)) for v in values):
        # e.g. [1.5, None]: numbers with holes stay numeric, the holes become NaN.
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    out = np.empty(len(arr), dtype=object)
    for i, v in enumerate(values):
        missing = v is None or (isinstance(v, float) and math.isnan(v))
        out[i] = None if missing else str(v)
    return out


def _separator_hint(columns: list[str]) -> str:
    """When the only column's name holds ';' or a tab, the file was probably read with the
    wrong delimiter: say so."""
    if len(columns) == 1:
        for sep, name in ((";", "';'"), ("\t", "tab")):
            if sep in columns[0]:
                return (f" (one column only: the file looks {name}-separated, but scratchnn "
                        "reads comma-separated CSV)")
    return ""


class Table(Mapping[str, np.ndarray]):
    """An ordered mapping column name -> 1-D column, all of the same length.

    Numeric columns are float64 with NaN for missing values; other columns are object arrays
    of str with None for missing values.
    """

    def __init__(self, columns: Mapping[str, Any] | None = None) -> None:
        self._cols: dict[str, np.ndarray] = {}
        n_rows = None
        for name, values in (columns or {}).items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"column names must be non-empty strings, got {name!r}")
            col = _as_column(name, values)
            if n_rows is not None and len(col) != n_rows:
                raise ValueError(
                    f"column {name!r} has {len(col)} rows but earlier columns have {n_rows}"
                )
            n_rows = len(col)
            self._cols[name] = col
        self._n_rows = n_rows or 0

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        return list(self._cols)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return self._n_rows, len(self._cols)

    def __len__(self) -> int:
        return self._n_rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    def __getitem__(self, name: str) -> np.ndarray:
        self._check(name)
        return self._cols[name]

    def _check(self, name: str) -> None:
        if name not in self._cols:
            have = ", ".join(self._cols) or "(none)"
            raise ColumnNotFoundError(f"column {name!r} not found; columns are: {have}"
                                      f"{_separator_hint(self.columns)}")

    def is_numeric(self, name: str) -> bool:
        """Whether column ``name`` is numeric (float64) rather than categorical."""
        return self[name].dtype != object

    def kind(self, name: str) -> str:
        """'numeric' or 'categorical'."""
        return NUMERIC if self.is_numeric(name) else CATEGORICAL

    def select(self, names: Sequence[str]) -> Table:
        """Return a table with only the given columns, in the given order."""
        if isinstance(names, str):
            names = [names]
        for name in names:
            self._check(name)
        return self._from_cols({name: self._cols[name] for name in names}, self._n_rows)

    def drop(self, names: str | Sequence[str]) -> Table:
        """Return a table without the given column(s)."""
        if isinstance(names, str):
            names = [names]
        for name in names:
            self._check(name)
        gone = set(names)
        kept = {k: v for k, v in self._cols.items() if k not in gone}
        return self._from_cols(kept, self._n_rows)

    def take(self, indices: Any) -> Table:
        """Return the rows at ``indices`` (integer array or boolean mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self._n_rows,):
                raise ValueError(
                    f"boolean row mask must have shape ({self._n_rows},), got {idx.shape}"
                )
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64)
        elif idx.dtype.kind not in "iu":
            raise ValueError(f"row indices must be integers, got dtype {idx.dtype}")
        if idx.ndim != 1:
            raise ValueError(f"row indices must be 1-D, got shape {idx.shape}")
        if idx.size and (idx.max() >= self._n_rows or idx.min() < -self._n_rows):
            raise IndexError(f"row index out of range for a table of {self._n_rows} rows")
        return self._from_cols({k: v[idx] for k, v in self._cols.items()}, len(idx))

    def with_column(self, name: str, values: Any) -> Table:
        """Return a copy with column ``name`` added (at the end) or replaced (in place)."""
        cols = dict(self._cols)
        cols[name] = values
        return Table(cols)

    @classmethod
    def _from_cols(cls, cols: dict[str, np.ndarray], n_rows: int) -> Table:
        # Columns are already validated: skip the conversion in __init__.
        table = cls.__new__(cls)
        table._cols = cols
        table._n_rows = n_rows if cols else 0
        return table

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table) or self.columns != other.columns:
            return False
        for name, col in self._cols.items():
            o = other._cols[name]
            if col.dtype != o.dtype or col.shape != o.shape:
                return False
            if col.dtype == object:
                if col.tolist() != o.tolist():
                    return False
            elif not np.array_equal(col, o, equal_nan=True):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container: not hashable

    def __repr__(self) -> str:
        names = ", ".join(self._cols)
        if len(names) > 80:
            names = names[:77] + "..."
        return f"Table({self._n_rows} rows x {len(self._cols)} columns: {names})"


def _parse_float(text: str) -> float | None:
    """Parse a CSV cell as a float, or return None when it is not a number."""
    if "_" in text:  # float() accepts "1_000"; a CSV reader should not.
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_csv(path: PathLike, column_types: Mapping[str, str] | None = None) -> Table:
    """Read a CSV file with a header row into a Table.

    Each column is numeric when every non-missing cell parses as a number, else categorical;
    ``column_types`` ({name: 'numeric' | 'categorical'}) forces the kind of named columns, so
    that a file read at predict time is typed like the training file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"CSV file not found: {path}")
    if not path.is_file():
        raise CSVError(f"{path} is not a file")
    forced = dict(column_types or {})
    for name, kind in forced.items():
        if kind not in (NUMERIC, CATEGORICAL):
            raise ValueError(
                f"column type for {name!r} must be 'numeric' or 'categorical', got {kind!r}"
            )
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            while header is not None and not header:  # skip blank lines before the header
                header = next(reader, None)
            if header is None:
                raise CSVError(f"CSV file {path} is empty (expected a header row)")
            names = [h.strip() for h in header]
            _check_header(path, names)
            width = len(names)
            cells: list[list[str]] = [[] for _ in names]
            lines: list[int] = []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip() and width > 1):
                    continue  # blank line
                if len(row) != width:
                    raise CSVError(
                        f"{path}, line {reader.line_num}: expected {width} fields "
                        f"(from the header), got {len(row)}"
                    )
                for j, cell in enumerate(row):
                    cells[j].append(cell.strip())
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise CSVError(f"{path} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise CSVError(f"{path}: malformed CSV: {exc}") from None
    if not lines:
        raise CSVError(f"CSV file {path} has a header but no data rows")
    cols = {}
    for name, values in zip(names, cells):
        cols[name] = _infer_column(path, name, values, lines, forced.get(name))
    return Table._from_cols(cols, len(lines))


def _check_header(path: Path, names: list[str]) -> None:
    for j, name in enumerate(names):
        if not name:
            raise CSVError(f"{path}, line 1: header field {j + 1} is empty")
    seen = set()
    for name in names:
        if name in seen:
            raise CSVError(f"{path}, line 1: duplicate column name {name!r} in the header")
        seen.add(name)


def _infer_column(
    path: Path, name: str, values: list[str], lines: list[int], kind: str | None
) -> np.ndarray:
    """Turn one column of stripped cells into a numeric or categorical column."""
    missing = [v in MISSING_MARKERS for v in values]
    if kind != CATEGORICAL:
        numbers = np.full(len(values), np.nan)
        for i, (v, m) in enumerate(zip(values, missing)):
            if m:
                continue
            x = _parse_float(v)
            if x is None:
                if kind == NUMERIC:
                    raise CSVError(
                        f"{path}, line {lines[i]}: column {name!r} must be numeric, "
                        f"got {v!r}"
                    )
                break
            numbers[i] = x
        else:
            return numbers
    out = np.empty(len(values), dtype=object)
    for i, (v, m) in enumerate(zip(values, missing)):
        out[i] = None if m else v
    return out


def _format_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        # repr round-trips exactly; integral values are written without ".0" for readability.
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)


def write_csv(table: Table, path: PathLike) -> None:
    """Write a Table to a CSV file (missing values as empty cells), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    cols = [table[name].tolist() for name in table.columns]
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(table.columns)
            for i in range(len(table)):
                writer.writerow([_format_cell(col[i]) for col in cols])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
