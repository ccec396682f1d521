"""Data sources of the CNN/RNN classifiers: resolve where the examples come from, load them.

Three kinds of input:

- ``images``: the built-in ``digits`` as 1×8×8 images (pixel values 0..16), or a folder with
  one subfolder per class (see ``scratchnn.data.images``);
- ``text``: one text column of a CSV file; every other column except the target is ignored;
- ``sequence``: the numeric feature columns of a table (a CSV file or a built-in set) read as
  ``seq_len`` steps of equal width, step by step (``digits``: 8 rows of 8 pixels).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scratchnn.data import BUILTIN_DATASETS, Table, builtin_info, load_builtin, read_csv
from scratchnn.data.images import (
    detect_color_mode,
    folder_fingerprint,
    list_image_folder,
    list_images,
    read_images,
)
from scratchnn.errors import ScratchnnError, UsageError

__all__ = ["BUILTIN_IMAGES", "FOLDER_TARGET", "KINDS", "PATH_COLUMN", "DataSpec", "Samples",
           "check_class_labels", "load_samples", "load_unlabelled", "resolve_data"]

KINDS: tuple[str, ...] = ("images", "text", "sequence")
#: The target name of a class-per-subfolder image folder.
FOLDER_TARGET = "label"
#: Built-in sets that are images: name -> (C, H, W, largest pixel value).
BUILTIN_IMAGES = {"digits": (1, 8, 8, 16.0)}
#: The CSV column that lists image files to predict.
PATH_COLUMN = "path"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class DataSpec:
    """Where the examples come from and how to read them (``config.json``'s "data")."""

    kind: str  # one of KINDS
    origin: str  # 'builtin' | 'csv' | 'folder'
    source: str  # a built-in name or an absolute path
    target: str
    sha256: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """A short name for run directories."""
        return self.source if self.origin == "builtin" else Path(self.source).stem

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "origin": self.origin, "source": self.source,
                "sha256": self.sha256, "target": self.target, "task": "classification",
                **self.settings}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        """Rebuild from :meth:`to_dict` output."""
        fixed = ("kind", "origin", "source", "sha256", "target", "task")
        settings = {k: v for k, v in d.items() if k not in fixed}
        return cls(d["kind"], d["origin"], d["source"], d["target"], d.get("sha256"), settings)

    def fingerprint(self) -> str | None:
        """SHA-256 of the data now (None for a built-in set)."""
        path = Path(self.source)
        if self.origin == "csv":
            return _sha256(path)
        if self.origin == "folder":
            return folder_fingerprint(path, list_image_folder(path)[0])
        return None

    def check_unchanged(self) -> None:
        """Raise if the data is gone or differs from when the run was made."""
        if self.origin == "builtin":
            return
        path = Path(self.source)
        if not path.exists():
            raise ScratchnnError(f"the run's data {path} no longer exists; pass --data to use "
                                 "other data")
        if self.sha256 is not None and self.fingerprint() != self.sha256:
            raise ScratchnnError(f"the run's data {path} has changed since training (its "
                                 "SHA-256 differs), so its saved split no longer applies; "
                                 "pass --data to evaluate on it as new data")


def resolve_data(data: str, kind: str, target: str | None,
                 settings: dict[str, Any]) -> DataSpec:
    """Check that ``data`` suits ``kind`` and fill in the defaults that depend on it."""
    path = Path(data)
    settings = dict(settings)
    if path.is_dir():
        origin, source = "folder", str(path.resolve())
    elif path.is_file():
        origin, source = "csv", str(path.resolve())
    elif data in BUILTIN_DATASETS:
        origin, source = "builtin", data
    else:
        raise ScratchnnError(f"data source {data!r} is neither an existing folder or CSV file "
                             f"nor a built-in data set ({', '.join(BUILTIN_DATASETS)})")
    if kind == "images" and not (origin == "folder" or source in BUILTIN_IMAGES):
        raise UsageError(f"a CNN needs images: a folder with one subfolder per class or "
                         f"{', '.join(BUILTIN_IMAGES)}; got {data!r}")
    if kind == "text" and origin != "csv":
        raise UsageError(f"--text-column needs a CSV file for --data, got {data!r}")
    if kind == "sequence" and origin == "folder":
        raise UsageError(f"a recurrent model reads a CSV file or a built-in table, not the "
                         f"image folder {data!r}; use --model cnn")
    if origin == "folder":
        if target not in (None, FOLDER_TARGET):
            raise UsageError("--target does not apply to an image folder (the subfolder "
                             "names are the classes)")
        target = FOLDER_TARGET
    elif target is None:
        if origin != "builtin":
            columns = ", ".join(read_csv(path).columns)
            raise UsageError(f"--target is required for a CSV file ({source}); its columns "
                             f"are: {columns}")
        target = builtin_info(source).target
    spec = DataSpec(kind, origin, source, target, settings=settings)
    if origin == "folder" and settings.get("color_mode", "auto") == "auto":
        spec.settings["color_mode"] = detect_color_mode(list_image_folder(path)[0])
    if origin == "builtin" and kind == "images":
        c, h, w, _ = BUILTIN_IMAGES[source]
        spec.settings.update(color_mode="L" if c == 1 else "RGB", image_size=[h, w])
    return spec


@dataclass
class Samples:
    """Loaded examples: raw inputs, their labels (a Table with the target; None when
    unlabelled), file names (images from files) and notes for the user."""

    inputs: Any  # images (N, C, H, W); texts (N,) object; a Table of sequence columns
    labels: Table | None
    names: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inputs)

    def take(self, rows: np.ndarray) -> Samples:
        """The examples at ``rows``."""
        inputs = self.inputs.take(rows) if isinstance(self.inputs, Table) else self.inputs[rows]
        return Samples(inputs, None if self.labels is None else self.labels.take(rows),
                       None if self.names is None else [self.names[i] for i in rows])


def check_class_labels(spec: DataSpec, labels: Table) -> None:
    """Raise unless the target holds class labels (the CNN/RNN recipe only classifies)."""
    y = labels[spec.target]
    regression = spec.origin == "builtin" and builtin_info(spec.source).task == "regression"
    if not regression and y.dtype != object:
        present = y[~np.isnan(y)]
        regression = bool(present.size) and not np.array_equal(present, np.round(present))
    if regression:
        raise UsageError(f"target {spec.target!r} holds continuous values, but the cnn/rnn "
                         "models train classifiers; use --model mlp for regression")


def _builtin_images(name: str, table: Table, target: str | None) -> np.ndarray:
    """The pixel columns of built-in image set ``name`` as (N, C, H, W) float64."""
    c, h, w, _ = BUILTIN_IMAGES[name]
    columns = [col for col in load_builtin(name).columns if col != builtin_info(name).target]
    missing = [col for col in columns if col not in table]
    if missing:
        raise ScratchnnError(f"the input needs the {len(columns)} pixel columns of {name} "
                             f"({columns[0]} ... {columns[-1]}); missing: {missing[0]}")
    pixels = np.stack([table[col] for col in columns], axis=1)  # (N, C·H·W)
    if np.isnan(pixels).any():
        raise ScratchnnError(f"pixel columns of {name} must not have missing values")
    return pixels.reshape(len(table), c, h, w)


def _image_settings(spec: DataSpec) -> tuple[str, tuple[int, int]]:
    size = spec.settings["image_size"]
    return spec.settings["color_mode"], (int(size[0]), int(size[1]))


def _text_table(spec: DataSpec, path: Path, labelled: bool) -> tuple[Table, list[str]]:
    """The CSV with the text column read as text; notes naming the columns ignored."""
    column = spec.settings["text_column"]
    table = read_csv(path, column_types={column: "categorical"})
    table[column]  # raises listing the columns that exist
    used = {column, spec.target} if labelled else {column}
    ignored = [c for c in table.columns if c not in used]
    notes = [f"text model: reading column {column!r} only; ignoring column(s) "
             f"{', '.join(repr(c) for c in ignored)}"] if ignored else []
    return table, notes


def _check_numeric(table: Table, target: str | None) -> None:
    for name in table.columns:
        if name != target and not table.is_numeric(name):
            raise ScratchnnError(f"a sequence model reads numeric feature columns, but column "
                                 f"{name!r} is not numeric; pass --text-column {name} for "
                                 "text, or use --model mlp")


def load_samples(spec: DataSpec, source: str | Path | None = None) -> Samples:
    """Every labelled example of the run's data, or of ``source`` read the same way."""
    origin = spec.origin
    path = Path(source if source is not None else spec.source)
    if source is not None:
        if not path.exists():
            raise ScratchnnError(f"data {source} does not exist")
        origin = "folder" if path.is_dir() else "csv"
    if spec.kind == "images" and spec.origin == "builtin":  # or a CSV of its pixel columns
        table = load_builtin(spec.source) if source is None else read_csv(path)
        table[spec.target]  # raises listing the columns that exist
        return Samples(_builtin_images(spec.source, table, spec.target),
                       table.select([spec.target]))
    if spec.kind == "images":
        if origin != "folder":
            raise ScratchnnError(f"evaluating an image model needs a folder with one "
                                 f"subfolder per class, got {source}")
        files, labels, _ = list_image_folder(path)
        mode, size = _image_settings(spec)
        return Samples(read_images(files, mode, size), Table({spec.target: labels}),
                       [str(f) for f in files])
    if spec.kind == "text":
        table, notes = _text_table(spec, path, labelled=True)
        return Samples(table[spec.settings["text_column"]], table.select([spec.target]),
                       notes=notes)
    table = load_builtin(spec.source) if origin == "builtin" else read_csv(path)
    table[spec.target]  # raises listing the columns that exist
    _check_numeric(table, spec.target)
    return Samples(table, table.select([spec.target]))


def load_unlabelled(spec: DataSpec, source: str | Path) -> Samples:
    """Inputs to predict: an image folder or CSV of paths, a CSV of texts or of features."""
    path = Path(source)
    if not path.exists():
        raise ScratchnnError(f"input {source} does not exist")
    if spec.kind == "images" and spec.origin == "folder":
        if path.is_dir():
            files = list_images(path)
            if not files:
                raise ScratchnnError(f"input folder {source} has no files")
        else:
            table = read_csv(path, column_types={PATH_COLUMN: "categorical"})
            if PATH_COLUMN not in table:
                raise ScratchnnError(f"a CSV of images to predict needs a {PATH_COLUMN!r} "
                                     f"column; its columns are: {', '.join(table.columns)}")
            if any(p is None for p in table[PATH_COLUMN]):
                raise ScratchnnError(f"{source}: column {PATH_COLUMN!r} has empty cells")
            files = [path.parent / p for p in table[PATH_COLUMN]]  # relative to the CSV
        mode, size = _image_settings(spec)
        return Samples(read_images(files, mode, size), None, [str(f) for f in files])
    if path.is_dir():
        raise ScratchnnError(f"input {source} is a folder; this model predicts the rows of a "
                             "CSV file")
    if spec.kind == "images":  # a built-in image set: a CSV of its pixel columns
        return Samples(_builtin_images(spec.source, read_csv(path), None), None)
    if spec.kind == "text":
        table, _ = _text_table(spec, path, labelled=False)
        return Samples(table[spec.settings["text_column"]], None)
    table = read_csv(path)
    return Samples(table, None)
