"""Reuse a saved CNN/RNN run: re-compute its test metrics, or predict images, texts or
sequences; and tell which recipe made a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scratchnn.data import Table, write_csv
from scratchnn.errors import CheckpointError, ScratchnnError
from scratchnn.recipes.classify import RECIPE
from scratchnn.recipes.classify_data import (
    DataSpec,
    Samples,
    load_samples,
    load_unlabelled,
)
from scratchnn.recipes.classify_inputs import INPUTS_FILE, Encoder, inputs_from_dict
from scratchnn.recipes.tabular_data import Splits
from scratchnn.training import checkpoint as ckpt
from scratchnn.training.checkpoint import LoadedRun, load_run
from scratchnn.training.trainer import Trainer, TrainerConfig

__all__ = ["evaluate_classifier", "predict_classifier", "run_recipe"]


def run_recipe(run_dir: str | Path) -> str:
    """The recipe that made ``run_dir`` (its config's "recipe"; 'tabular' when it names
    none: the tabular loader then reports what else is wrong with the directory).

    Raises:
        CheckpointError: ``run_dir`` does not exist, is not a run directory (no
            ``config.json``), or its config is unreadable.
    """
    recipe = ckpt.read_run_config(run_dir).get("recipe")
    return recipe if isinstance(recipe, str) else "tabular"


def _load(run_dir: str | Path) -> tuple[LoadedRun, DataSpec, Encoder, Trainer]:
    """The run's model and encoders, and an inference-only Trainer (no files written)."""
    run = load_run(run_dir)
    if run.config.get("recipe") != RECIPE:
        raise ScratchnnError(f"{run.run_dir} was not made by the {RECIPE} recipe")
    path = run.run_dir / INPUTS_FILE
    try:
        encoder = inputs_from_dict(ckpt.read_json(path), run.preprocessor)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} is not a valid input encoder: {e}") from None
    training = run.config.get("training", {})
    cfg = TrainerConfig(task="classification", loss=training.get("loss", "ce"), progress=False,
                        eval_batch_size=training.get("eval_batch_size", 64))
    trainer = Trainer(run.model, None, cfg, num_classes=run.preprocessor.n_classes)
    return run, DataSpec.from_dict(run.config["data"]), encoder, trainer


def evaluate_classifier(run_dir: str | Path, data: str | Path | None = None) -> dict[str, Any]:
    """Metrics of a saved run's best model on its held-out test examples, or on all of
    ``data`` (an image folder with class subfolders, or a CSV file with the target).

    Returns:
        the same keys as ``evaluate_run``: run_dir, data, split, n_rows, n_dropped, task,
        classes, metrics.
    """
    run, spec, encoder, trainer = _load(run_dir)
    prep = run.preprocessor
    if data is None:
        spec.check_unchanged()
        samples = load_samples(spec)
        split_path = run.run_dir / ckpt.SPLIT_FILE
        splits = Splits.from_dict(ckpt.read_json(split_path), len(samples), split_path)
        if splits.test.size == 0:
            raise ScratchnnError(f"run {run.run_dir} has no test examples; pass --data")
        part, split, name, n_dropped = samples.take(splits.test), "test", spec.source, 0
    else:
        samples = load_samples(spec, data)
        keep = np.flatnonzero(_present(samples.labels[spec.target]))
        n_dropped = len(samples) - keep.size
        if keep.size == 0:
            raise ScratchnnError(f"{data} has no examples with a value in target "
                                 f"{spec.target!r}")
        part, split, name = samples.take(keep), "all", str(data)
    metrics = trainer.evaluate(encoder.encode(part), prep.transform_target(part.labels))
    return {"run_dir": str(run.run_dir), "data": name, "split": split, "n_rows": len(part),
            "n_dropped": n_dropped, "task": "classification", "classes": prep.classes,
            "metrics": metrics}


def _present(column: np.ndarray) -> np.ndarray:
    from scratchnn.data import is_missing

    return ~is_missing(column)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check_output(output: Path, source: Path, overwrite: bool) -> None:
    if output.exists() and output.is_dir():
        raise ScratchnnError(f"output path {output} is a directory")
    if output.exists() and not overwrite:
        raise ScratchnnError(f"output file {output} already exists; pass --overwrite to "
                             "replace it")
    if source.exists() and output.exists() and output.samefile(source):
        raise ScratchnnError(f"output file {output} is the input file; choose another name")
    if not output.parent.is_dir():
        raise ScratchnnError(f"output folder {output.parent} does not exist")


def predict_classifier(run_dir: str | Path, input_path: str | Path, output_csv: str | Path,
                       overwrite: bool = False) -> dict[str, Any]:
    """Predict every input with a saved run and write ``output_csv`` atomically.

    Inputs: for an image-folder run, a folder (every file under it, sorted) or a CSV file with
    a ``path`` column (paths relative to the CSV's folder); for a text run, a CSV with the text
    column; otherwise a CSV with the feature columns. One output row per input, in order:
    ``path`` (images from files), ``prediction`` and one ``prob_<class>`` column per class.

    Returns:
        ``{"run_dir", "input", "output", "n_rows", "columns"}``.
    """
    output = Path(output_csv)
    _check_output(output, Path(input_path), overwrite)
    run, spec, encoder, trainer = _load(run_dir)
    samples: Samples = load_unlabelled(spec, input_path)
    logits = trainer.predict(encoder.encode(samples))
    prep = run.preprocessor
    columns: dict[str, Any] = {}
    if samples.names is not None:
        columns["path"] = samples.names
    columns["prediction"] = prep.inverse_target(logits.argmax(axis=1))
    probs = _softmax(logits)
    for k, label in enumerate(prep.classes):
        columns[f"prob_{label}"] = probs[:, k]
    result = Table(columns)
    write_csv(result, output)
    return {"run_dir": str(run.run_dir), "input": str(input_path), "output": str(output),
            "n_rows": len(result), "columns": result.columns}
