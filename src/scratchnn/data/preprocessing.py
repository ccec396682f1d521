"""Preprocessing fitted on the training split: impute, standardise, one-hot, label-encode.

Everything fitted is kept as plain Python numbers and strings so that ``to_dict`` is JSON
and a Preprocessor rebuilt with ``from_dict`` transforms bit for bit like the original.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from scratchnn.data.table import CATEGORICAL, NUMERIC, ColumnNotFoundError, Table, is_missing

TASKS = ("classification", "regression")
_FORMAT = "scratchnn.preprocessor"
_VERSION = 1


class StandardScaler:
    """Standardise each column of a 2-D array to zero mean and unit variance.

    A constant column gets scale 1 and its value as mean, so it maps to exactly 0.
    """

    def __init__(self, mean: Any = None, scale: Any = None) -> None:
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)

    def fit(self, x: np.ndarray) -> StandardScaler:
        """Compute per-column mean and standard deviation (ddof=0) of ``x`` (N, F)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"StandardScaler.fit needs a non-empty (N, F) array, got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("StandardScaler.fit got NaN or infinite values; impute them first")
        constant = np.all(x == x[0], axis=0)
        # Exact constants are special-cased: mean() of n copies of 0.1 need not be 0.1, and a
        # tiny non-zero std would blow rounding noise up to +-1.
        self.mean = np.where(constant, x[0], x.mean(axis=0))
        std = x.std(axis=0)
        self.scale = np.where(constant | (std == 0), 1.0, std)
        return self

    def _check_fitted(self, x: np.ndarray) -> np.ndarray:
        if self.mean is None or self.scale is None:
            raise RuntimeError("StandardScaler is not fitted; call fit() first")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"StandardScaler expected (N, {self.mean.shape[0]}) input, got {x.shape}"
            )
        return x

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Return ``(x - mean) / scale`` as float64."""
        return (self._check_fitted(x) - self.mean) / self.scale

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """Undo ``transform``."""
        return self._check_fitted(x) * self.scale + self.mean

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state."""
        self._check_fitted(np.zeros((0, 0 if self.mean is None else self.mean.shape[0])))
        return {"mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StandardScaler:
        """Rebuild from ``to_dict`` output."""
        return cls(mean=_key(d, "mean", "StandardScaler"), scale=_key(d, "scale", "StandardScaler"))


def _key(d: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in d:
        raise ValueError(f"{what} state is missing key {key!r}; keys present: {sorted(d)}")
    return d[key]


def _number_to_label(x: float) -> str:
    """Format a parsed number the way it was most likely written in the CSV ('3', '2.5')."""
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)


def _as_strings(col: np.ndarray) -> list[str | None]:
    """A categorical view of a column (a numeric one if the file happened to parse as numbers)."""
    if col.dtype == object:
        return col.tolist()
    return [None if math.isnan(v) else _number_to_label(v) for v in col.tolist()]


def _as_floats(col: np.ndarray, name: str) -> np.ndarray:
    """A numeric view of a column; a value that is not a number raises naming column and row."""
    if col.dtype != object:
        return col
    out = np.full(len(col), np.nan)
    for i, v in enumerate(col.tolist()):
        if v is None:
            continue
        try:
            out[i] = float(v)
        except ValueError:
            raise ValueError(f"column {name!r} must be numeric, got {v!r} at row {i}") from None
    return out


def _check_finite(values: np.ndarray, name: str) -> None:
    bad = np.flatnonzero(np.isinf(values))
    if bad.size:
        raise ValueError(f"column {name!r} has infinite value {values[bad[0]]} at row {bad[0]}")


def _missing_target_error(target: str, mask: np.ndarray) -> ValueError:
    rows = np.flatnonzero(mask)
    return ValueError(
        f"target column {target!r} has {rows.size} missing value(s) out of {mask.size} rows "
        f"(first at row {rows[0]}); drop those rows first (drop_missing_target)"
    )


def _list(values: list[Any], limit: int = 20) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def drop_missing_target(table: Table, target: str) -> tuple[Table, int]:
    """Drop the rows whose ``target`` value is missing; return (table, number dropped)."""
    mask = is_missing(table[target])
    n_dropped = int(mask.sum())
    return (table.take(~mask) if n_dropped else table), n_dropped


class Preprocessor:
    """Turns a Table into a float32 feature matrix and an encoded target.

    Numeric features: impute the training median, then standardise with the training mean
    and std. Categorical features: impute the most frequent training value, then one-hot over
    the training categories (an unseen category gives an all-zero block). A classification
    target is label-encoded over its sorted training classes; a regression target is float
    (optionally standardised).
    """

    def __init__(self) -> None:
        self.task: str | None = None
        self.target: str | None = None
        self._features: list[dict[str, Any]] = []
        self._classes: list[Any] | None = None
        self._target_scale: dict[str, float] | None = None

    # ----------------------------------------------------------------------------- fitting
    def fit(
        self, table: Table, target: str, task: str, *, standardize_target: bool = False
    ) -> Preprocessor:
        """Fit on the training table: every column except ``target`` is a feature."""
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        y = table[target]  # raises listing the columns when the target is absent
        if len(table) == 0:
            raise ValueError("cannot fit preprocessing on a table with no rows")
        names = [c for c in table.columns if c != target]
        if not names:
            raise ValueError(f"the table has no feature columns besides the target {target!r}")
        self.task, self.target = task, target
        self._features = [self._fit_feature(name, table[name]) for name in names]
        num = [f for f in self._features if f["kind"] == NUMERIC]
        if num:
            block = np.stack([self._impute_numeric(f, table[f["name"]]) for f in num], axis=1)
            scaler = StandardScaler().fit(block)  # (N, n_numeric)
            for f, m, s in zip(num, scaler.mean.tolist(), scaler.scale.tolist()):
                f["mean"], f["std"] = m, s
        mask = is_missing(y)
        if mask.any():
            raise _missing_target_error(target, mask)
        self._classes, self._target_scale = None, None
        if task == "classification":
            self._fit_classes(y)
        else:
            values = _as_floats(y, target)
            _check_finite(values, target)
            if standardize_target:
                sc = StandardScaler().fit(values[:, None])
                self._target_scale = {"mean": float(sc.mean[0]), "std": float(sc.scale[0])}
        return self

    def _fit_feature(self, name: str, col: np.ndarray) -> dict[str, Any]:
        if col.dtype != object:
            present = col[~np.isnan(col)]
            if present.size == 0:
                raise ValueError(f"feature column {name!r} has no values in the training rows")
            _check_finite(present, name)
            return {"name": name, "kind": NUMERIC, "median": float(np.median(present))}
        counts: dict[str, int] = {}
        for v in col.tolist():
            if v is not None:
                counts[v] = counts.get(v, 0) + 1
        if not counts:
            raise ValueError(f"feature column {name!r} has no values in the training rows")
        categories = sorted(counts)
        # Ties go to the first category in sorted order, so the fill value is deterministic.
        top = max(counts.values())
        fill = next(c for c in categories if counts[c] == top)
        return {"name": name, "kind": CATEGORICAL, "fill": fill, "categories": categories}

    def _fit_classes(self, y: np.ndarray) -> None:
        if y.dtype == object:
            classes: list[Any] = sorted(set(y.tolist()))
        else:
            _check_finite(y, self.target)
            classes = np.unique(y).tolist()
            if all(c.is_integer() and abs(c) < 2**53 for c in classes):
                classes = [int(c) for c in classes]  # 0.0, 1.0 -> 0, 1: labels read as numbers
        if len(classes) < 2:
            raise ValueError(
                f"classification needs at least 2 classes in target {self.target!r}, "
                f"found {len(classes)}: {_list(classes)}"
            )
        self._classes = classes

    # ------------------------------------------------------------------------- properties
    def _check_fitted(self) -> None:
        if self.task is None:
            raise RuntimeError("Preprocessor is not fitted; call fit() or from_dict() first")

    @property
    def input_features(self) -> list[str]:
        """The raw feature column names the table must have."""
        return [f["name"] for f in self._features]

    @property
    def feature_names(self) -> list[str]:
        """Output feature names; one-hot columns are named 'column=category'."""
        out = []
        for f in self._features:
            if f["kind"] == NUMERIC:
                out.append(f["name"])
            else:
                out.extend(f"{f['name']}={c}" for c in f["categories"])
        return out

    @property
    def n_features(self) -> int:
        """Width of the feature matrix."""
        return sum(1 if f["kind"] == NUMERIC else len(f["categories"]) for f in self._features)

    @property
    def classes(self) -> list[Any] | None:
        """Sorted training classes (ints, floats or strings), or None for regression."""
        return None if self._classes is None else list(self._classes)

    @property
    def n_classes(self) -> int | None:
        """Number of classes, or None for regression."""
        return None if self._classes is None else len(self._classes)

    @property
    def column_types(self) -> dict[str, str]:
        """{column: 'numeric' | 'categorical'} as fitted; pass to read_csv at predict time."""
        self._check_fitted()
        types = {f["name"]: f["kind"] for f in self._features}
        labels_are_text = self._classes is not None and isinstance(self._classes[0], str)
        types[self.target] = CATEGORICAL if labels_are_text else NUMERIC
        return types

    # ------------------------------------------------------------------------- transforms
    @staticmethod
    def _impute_numeric(f: dict[str, Any], col: np.ndarray) -> np.ndarray:
        values = _as_floats(col, f["name"])
        _check_finite(values, f["name"])
        return np.where(np.isnan(values), f["median"], values)

    def transform_features(self, table: Table) -> np.ndarray:
        """Return the float32 feature matrix (N, n_features); the target column may be absent."""
        self._check_fitted()
        missing = [n for n in self.input_features if n not in table]
        if missing:
            raise ColumnNotFoundError(
                f"missing feature column(s) {', '.join(repr(m) for m in missing)}; "
                f"expected: {', '.join(self.input_features)}; "
                f"the table has: {', '.join(table.columns) or '(none)'}"
            )
        out = np.zeros((len(table), self.n_features), dtype=np.float64)
        j = 0
        for f in self._features:
            col = table[f["name"]]
            if f["kind"] == NUMERIC:
                out[:, j] = (self._impute_numeric(f, col) - f["mean"]) / f["std"]
                j += 1
                continue
            index = {c: k for k, c in enumerate(f["categories"])}
            fill = f["fill"]
            for i, v in enumerate(_as_strings(col)):
                k = index.get(fill if v is None else v)
                if k is not None:  # an unseen category leaves the block all zero
                    out[i, j + k] = 1.0
            j += len(index)
        return out.astype(np.float32)

    def transform_target(self, table: Table) -> np.ndarray:
        """Return the target: int64 class indices (N,) or float32 values (N,)."""
        self._check_fitted()
        y = table[self.target]
        mask = is_missing(y)
        if mask.any():
            raise _missing_target_error(self.target, mask)
        if self._classes is None:
            values = _as_floats(y, self.target)
            _check_finite(values, self.target)
            if self._target_scale is not None:
                values = (values - self._target_scale["mean"]) / self._target_scale["std"]
            return values.astype(np.float32)
        if isinstance(self._classes[0], str):
            labels: list[Any] = _as_strings(y)
        else:
            labels = [_to_number(v) for v in y.tolist()]
        index = {c: k for k, c in enumerate(self._classes)}
        out = np.empty(len(labels), dtype=np.int64)
        for i, v in enumerate(labels):
            k = index.get(v)
            if k is None:
                raise ValueError(
                    f"unknown label {y[i]!r} in target column {self.target!r} (row {i}); "
                    f"known classes: {_list(self._classes)}"
                )
            out[i] = k
        return out

    def fit_transform(
        self, table: Table, target: str, task: str, *, standardize_target: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fit, then return (features, target) of the same table."""
        self.fit(table, target, task, standardize_target=standardize_target)
        return self.transform_features(table), self.transform_target(table)

    def inverse_target(self, values: Any) -> np.ndarray:
        """Map class indices back to the original labels, or scaled values back to targets."""
        self._check_fitted()
        arr = np.asarray(values)
        if self._classes is None:
            arr = arr.astype(np.float64)
            if self._target_scale is not None:
                arr = arr * self._target_scale["std"] + self._target_scale["mean"]
            return arr
        if arr.dtype.kind not in "iu":
            raise ValueError(f"class indices must be integers, got dtype {arr.dtype}")
        n = len(self._classes)
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            bad = arr.min() if arr.min() < 0 else arr.max()
            raise ValueError(f"class index {bad} out of range [0, {n})")
        return np.asarray(self._classes)[arr]

    # ---------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; ``from_dict`` rebuilds an identical Preprocessor."""
        self._check_fitted()
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "task": self.task,
            "target": self.target,
            "features": [dict(f) for f in self._features],
            "classes": self.classes,
            "target_scale": None if self._target_scale is None else dict(self._target_scale),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessor:
        """Rebuild a fitted Preprocessor from ``to_dict`` output."""
        if d.get("format") != _FORMAT or d.get("version") != _VERSION:
            raise ValueError(
                f"not a {_FORMAT} v{_VERSION} state (format={d.get('format')!r}, "
                f"version={d.get('version')!r})"
            )
        p = cls()
        p.task = _key(d, "task", "Preprocessor")
        if p.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {p.task!r}")
        p.target = _key(d, "target", "Preprocessor")
        need = {NUMERIC: ("median", "mean", "std"), CATEGORICAL: ("fill", "categories")}
        for f in _key(d, "features", "Preprocessor"):
            kind = _key(f, "kind", "feature")
            if kind not in need:
                raise ValueError(f"feature kind must be 'numeric' or 'categorical', got {kind!r}")
            for k in ("name", *need[kind]):
                _key(f, k, f"feature {f.get('name')!r}")
            p._features.append(dict(f))
        classes = _key(d, "classes", "Preprocessor")
        p._classes = None if classes is None else list(classes)
        if (p._classes is None) != (p.task == "regression"):
            raise ValueError(f"classes {classes!r} do not match task {p.task!r}")
        scale = d.get("target_scale")
        p._target_scale = None if scale is None else dict(scale)
        return p

    def __repr__(self) -> str:
        if self.task is None:
            return "Preprocessor(unfitted)"
        extra = f", classes={self.n_classes}" if self._classes is not None else ""
        return (
            f"Preprocessor(task={self.task!r}, target={self.target!r}, "
            f"inputs={len(self._features)}, n_features={self.n_features}{extra})"
        )


def _to_number(v: Any) -> Any:
    """Turn a label into the int/float form numeric classes are stored in (else keep it)."""
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return v
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v
