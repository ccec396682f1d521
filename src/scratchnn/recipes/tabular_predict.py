"""Reuse a saved tabular run: re-compute its test metrics, or predict on a new CSV file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scratchnn.data import BUILTIN_DATASETS, Table, drop_missing_target, load_table, write_csv
from scratchnn.errors import ScratchnnError
from scratchnn.recipes.tabular_data import DataSource, Splits, encode
from scratchnn.training import checkpoint as ckpt
from scratchnn.training.checkpoint import LoadedRun, load_run
from scratchnn.training.trainer import Trainer, TrainerConfig

__all__ = ["evaluate_run", "predict_run"]


def _trainer(run: LoadedRun) -> Trainer:
    """An inference-only Trainer for a loaded run (no optimizer, no files written)."""
    training = dict(run.config.get("training", {}))
    cfg = TrainerConfig(task=run.preprocessor.task, loss=training.get("loss", "mse"),
                        progress=False)
    return Trainer(run.model, None, cfg, num_classes=run.preprocessor.n_classes,
                   target_inverse=run.preprocessor.inverse_target)


def _types_without_target(run: LoadedRun) -> dict[str, str]:
    """Column types to read a CSV with; the target is left free (it may be absent or ignored)."""
    prep = run.preprocessor
    return {k: v for k, v in prep.column_types.items() if k != prep.target}


def evaluate_run(run_dir: str | Path, data: str | Path | None = None) -> dict[str, Any]:
    """Metrics of a saved run's best model on its held-out test rows, or on all rows of ``data``.

    Without ``data`` the run's own data source is reloaded and the saved test row indices are
    used, so the numbers equal those printed at the end of training.

    Returns:
        ``{"run_dir", "data", "split", "n_rows", "n_dropped", "task", "classes", "metrics"}``.
    """
    run = load_run(run_dir)
    prep = run.preprocessor
    if data is None:
        source = DataSource.from_dict(run.config["data"])
        source.check_unchanged()
        table = source.load(prep.column_types)
        split_path = run.run_dir / ckpt.SPLIT_FILE
        splits = Splits.from_dict(ckpt.read_json(split_path), len(table), split_path)
        if splits.test.size == 0:
            raise ScratchnnError(f"run {run.run_dir} has no test rows; pass --data to "
                                 "evaluate on a CSV file")
        rows, split, n_dropped, name = splits.test, "test", 0, source.source
    else:
        table = load_table(data, column_types=prep.column_types)
        table[prep.target]  # the target must be there: raises listing the columns
        table, n_dropped = drop_missing_target(table, prep.target)
        if len(table) == 0:
            raise ScratchnnError(f"{data} has no rows with a value in target {prep.target!r}")
        rows, split, name = None, "all", str(data)
    x, y = encode(prep, table, rows)
    metrics = _trainer(run).evaluate(x, y)
    return {"run_dir": str(run.run_dir), "data": name, "split": split, "n_rows": int(len(y)),
            "n_dropped": n_dropped, "task": prep.task, "classes": prep.classes,
            "metrics": metrics}


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict_run(run_dir: str | Path, input_csv: str | Path, output_csv: str | Path,
                overwrite: bool = False) -> dict[str, Any]:
    """Predict every row of ``input_csv`` with a saved run and write ``output_csv``.

    The saved preprocessing is applied (the CSV is typed as at training time); a target column
    in the input is ignored. The output has one row per input row, in order: ``prediction``
    (original label values, or values in the target's units) and, for classification, one
    ``prob_<class>`` column per class. The file is written atomically.

    Returns:
        ``{"run_dir", "input", "output", "n_rows", "columns"}``.
    """
    if not Path(input_csv).exists() and str(input_csv) not in BUILTIN_DATASETS:
        raise ScratchnnError(f"input file {input_csv} does not exist")
    if Path(input_csv).is_dir():
        raise ScratchnnError(f"input {input_csv} is a folder; this model predicts the rows "
                             "of a CSV file")
    output = Path(output_csv)
    if output.exists() and not overwrite:
        raise ScratchnnError(f"output file {output} already exists; pass --overwrite to "
                             "replace it")
    if output.exists() and output.is_dir():
        raise ScratchnnError(f"output path {output} is a directory")
    if Path(input_csv).exists() and output.exists() and output.samefile(input_csv):
        raise ScratchnnError(f"output file {output} is the input file; choose another name")
    if not output.parent.is_dir():
        raise ScratchnnError(f"output folder {output.parent} does not exist")
    run = load_run(run_dir)
    prep = run.preprocessor
    table = load_table(input_csv, column_types=_types_without_target(run))
    out = _trainer(run).predict(prep.transform_features(table))
    if prep.task == "classification":
        probs = _softmax(out)
        columns: dict[str, Any] = {"prediction": prep.inverse_target(out.argmax(axis=1))}
        for k, label in enumerate(prep.classes):
            columns[f"prob_{label}"] = probs[:, k]
    else:
        columns = {"prediction": prep.inverse_target(out[:, 0])}
    result = Table(columns)
    write_csv(result, output)
    return {"run_dir": str(run.run_dir), "input": str(input_csv), "output": str(output),
            "n_rows": len(result), "columns": result.columns}
