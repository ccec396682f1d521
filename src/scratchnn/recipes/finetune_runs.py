"""Use a fine-tuning run: load it (rebuilding a LoRA run from its base), evaluate it, predict
with it, and merge a LoRA run's adapters into a standalone run (``scratchnn lora merge``).

A full fine-tuning run holds ``model.safetensors``. A LoRA run holds ``adapter.safetensors``
(the adapters and every other trained tensor, such as a new head) with
``adapter_config.json``, ``buffers.safetensors`` when the model has buffers (BatchNorm
statistics), and names its base (FROM) in ``config.json`` with the SHA-256 of the base's
weights: loading rebuilds the base, checks that hash, and applies the adapters.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scratchnn.data import Preprocessor, Table, write_csv
from scratchnn.errors import CheckpointError, ScratchnnError
from scratchnn.finetune import ADAPTER_CONFIG, ADAPTER_WEIGHTS, load_lora, merge_lora, save_lora
from scratchnn.finetune.freezing import trainable_parameter_names
from scratchnn.recipes.finetune_data import Reader, TokenEncoder
from scratchnn.recipes.finetune_models import (
    RECIPE,
    build_architecture,
    file_digest,
    read_tokenizer,
    spec_of,
)
from scratchnn.recipes.tabular_data import Splits
from scratchnn.serialization import load_tensors, save_json, save_tensors
from scratchnn.training import checkpoint as ckpt
from scratchnn.training.rundir import RunDir

__all__ = ["BUFFERS_FILE", "TOKENIZER_FILE", "FinetunedRun", "evaluate_finetuned",
           "load_finetuned", "merge_lora_run", "predict_finetuned", "save_finetuned_weights"]

TOKENIZER_FILE = "tokenizer.json"
BUFFERS_FILE = "buffers.safetensors"
#: Files a merged run copies from the LoRA run unchanged.
_COPIED = ("preprocessing.json", "split.json", "inputs.json", TOKENIZER_FILE, "metrics.jsonl",
           "curves.png", "results.json")


@dataclass
class FinetunedRun:
    """A fine-tuning run read back: the model (eval mode) and how it reads data."""

    run_dir: Path
    config: dict[str, Any]
    model: Any
    kind: str
    prep: Preprocessor
    inputs: dict[str, Any] | None
    tokenizer: Any
    text: dict[str, Any]
    digest: str
    reader: Reader


def save_finetuned_weights(path: Path, model: Any, spec: dict[str, Any], lora: bool,
                           epoch: int | None) -> None:
    """``model.safetensors``, or (LoRA) the adapters, trained tensors and buffers."""
    if not lora:
        ckpt.save_weights(path / ckpt.MODEL_FILE, model.state_dict(),
                          {"model": spec, "epoch": epoch})
        return
    trained = [n for n in trainable_parameter_names(model)
               if not n.endswith((".lora_A", ".lora_B"))]
    save_lora(model, path, include=trained or None)
    buffers = {n: b._data for n, b in model.named_buffers()}
    if buffers:
        save_tensors(path / BUFFERS_FILE, buffers, metadata={"format": "scratchnn-buffers"})


def _rebuild_lora(run_dir: Path, config: dict[str, Any]) -> tuple[Any, str]:
    """The base named by a LoRA run, checked by hash, as the run's classifier, adapted."""
    from scratchnn.recipes.finetune_models import load_source
    from scratchnn.recipes.finetune_setup import build_classifier

    source = config["source"]
    base = load_source(source["path"])
    if base.digest != source["sha256"]:
        raise CheckpointError(f"the base model {source['path']} of LoRA run {run_dir} has "
                              f"changed since training (the SHA-256 of its weights differs); "
                              f"its adapters only fit the weights they were trained on")
    spec = config["model"]
    wraps = spec["name"] in ("bert_classifier", "gpt_classifier")
    cfg = spec["config"]
    rng = np.random.default_rng(0)
    n = cfg.get("num_labels") or cfg.get("num_classes") or cfg.get("num_outputs") or \
        cfg.get("out_features") or 1
    if spec["name"] == "gpt":
        model = base.model
    else:
        same = not wraps and spec_of(base.model) == spec
        model = build_classifier(base.model, n, not same and not wraps, None,
                                 cfg.get("pooling") if wraps else None,
                                 cfg.get("dropout") if wraps else None, rng)
    if spec_of(model) != spec:
        raise CheckpointError(f"the base model {source['path']} does not rebuild the "
                              f"architecture saved in {run_dir / ckpt.CONFIG_FILE}")
    try:
        load_lora(model, run_dir, rng=rng)
    except (ValueError, FileNotFoundError) as e:
        raise CheckpointError(str(e)) from None
    if (run_dir / BUFFERS_FILE).is_file():
        arrays, _ = ckpt.read_tensors(run_dir / BUFFERS_FILE)
        own = dict(model.named_buffers())
        for name, array in arrays.items():
            if name not in own or own[name].shape != array.shape:
                raise CheckpointError(f"{run_dir / BUFFERS_FILE}: buffer {name!r} does not fit "
                                      f"the model")
            own[name]._data[...] = array
    return model, file_digest([run_dir / ADAPTER_WEIGHTS])


def load_finetuned(run_dir: str | Path) -> FinetunedRun:
    """Read a fine-tuning run (a LoRA run is rebuilt from its base and left unmerged).

    Raises:
        CheckpointError: a missing or corrupt file, or a changed base model.
    """
    run_dir = Path(run_dir)
    config = ckpt.read_run_config(run_dir)
    if config.get("recipe") != RECIPE:
        raise CheckpointError(f"{run_dir} is not a fine-tuning run")
    try:
        prep = Preprocessor.from_dict(ckpt.read_json(run_dir / ckpt.PREPROCESSING_FILE))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{run_dir / ckpt.PREPROCESSING_FILE}: {e}") from None
    kind = config["inputs"]["kind"]
    inputs = None
    if (run_dir / "inputs.json").is_file():
        inputs = ckpt.read_json(run_dir / "inputs.json")
    tokenizer, tokens, text = None, None, {}
    if kind == "tokens":
        tokenizer = read_tokenizer(run_dir / TOKENIZER_FILE)
        text = {"text_column": config["inputs"]["text_column"],
                "max_length": config["inputs"]["max_length"]}
        tokens = TokenEncoder(tokenizer, text["max_length"])
    if config.get("lora"):
        model, digest = _rebuild_lora(run_dir, config)
    else:
        try:
            model = build_architecture(config["model"], np.random.default_rng(0))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{run_dir / ckpt.CONFIG_FILE}: invalid model: {e}") from None
        ckpt.load_model_weights(model, run_dir / ckpt.MODEL_FILE)
        digest = file_digest([run_dir / ckpt.MODEL_FILE])
    model.eval()
    reader = Reader.from_dict(kind, config["data"], prep, inputs, tokens)
    return FinetunedRun(run_dir, config, model, kind, prep, inputs, tokenizer, text, digest,
                        reader)


def _present(labels: Table, target: str) -> np.ndarray:
    from scratchnn.data import is_missing

    return np.flatnonzero(~is_missing(labels[target]))


def evaluate_finetuned(run_dir: str | Path, data: str | Path | None = None
                       ) -> dict[str, Any]:
    """Metrics of a fine-tuning run on its test rows (or test file), or on all of ``data``.

    Returns:
        the keys of ``evaluate_run``: run_dir, data, split, n_rows, n_dropped, task, classes,
        metrics.
    """
    from scratchnn.recipes.finetune_train import evaluate

    run = load_finetuned(run_dir)
    reader, target = run.reader, run.reader.target
    test_file = run.config["data"].get("test_data")
    if data is None and test_file is None:
        reader.check_unchanged()
        inputs, labels, _ = reader.load()
        split_path = run.run_dir / ckpt.SPLIT_FILE
        splits = Splits.from_dict(ckpt.read_json(split_path), len(labels), split_path)
        if splits.test.size == 0:
            raise ScratchnnError(f"run {run.run_dir} has no test rows; pass --data")
        rows, split, name, n_dropped = splits.test, "test", reader.spec.source, 0
    else:
        path = Path(data) if data is not None else Path(test_file["source"])
        if data is None and test_file.get("sha256") and path.is_file() \
                and file_digest([path]) != test_file["sha256"]:
            raise ScratchnnError(f"the run's test data {path} has changed since training; "
                                 f"pass --data to evaluate on it as new data")
        inputs, labels, _ = reader.load(path)
        rows = _present(labels, target)
        n_dropped = len(labels) - rows.size
        if rows.size == 0:
            raise ScratchnnError(f"{path} has no examples with a value in target {target!r}")
        split, name = ("test" if data is None else "all"), str(path)
    x = reader.encode(reader.take(inputs, rows))
    y = run.prep.transform_target(labels.take(rows))
    metrics = evaluate(run.model, x, y, run.prep.n_classes)
    return {"run_dir": str(run.run_dir), "data": name, "split": split, "n_rows": int(rows.size),
            "n_dropped": int(n_dropped), "task": "classification", "classes": run.prep.classes,
            "metrics": metrics}


def predict_logits_of(run: FinetunedRun, inputs: Any) -> np.ndarray:
    """Logits of loaded examples."""
    from scratchnn.recipes.finetune_train import predict_logits

    return predict_logits(run.model, run.reader.encode(inputs))


def predict_finetuned(run_dir: str | Path, input_path: str | Path, output_csv: str | Path,
                      overwrite: bool = False) -> dict[str, Any]:
    """Predict every input with a fine-tuning run; write ``output_csv`` atomically.

    Columns: ``path`` (images from files), ``prediction`` and ``prob_<class>`` per class.
    """
    from scratchnn.recipes.classify_predict import _check_output, _softmax

    output = Path(output_csv)
    _check_output(output, Path(input_path), overwrite)
    run = load_finetuned(run_dir)
    inputs, _, _ = run.reader.load(input_path, labelled=False)
    logits = predict_logits_of(run, inputs)
    columns: dict[str, Any] = {}
    names = getattr(inputs, "names", None)
    if names is not None:
        columns["path"] = names
    columns["prediction"] = run.prep.inverse_target(logits.argmax(axis=1))
    probs = _softmax(logits)
    for k, label in enumerate(run.prep.classes):
        columns[f"prob_{label}"] = probs[:, k]
    table = Table(columns)
    write_csv(table, output)
    return {"run_dir": str(run.run_dir), "input": str(input_path), "output": str(output),
            "n_rows": len(table), "columns": table.columns}


def merge_lora_run(run_dir: str | Path, out: str | Path | None = None,
                   overwrite: bool = False) -> Path:
    """Write a standalone run with the adapters merged into the weights; return its path.

    The new run (default ``RUN_DIR-merged``) has ``model.safetensors`` instead of the adapter
    files and no longer needs the base model; evaluate and predict give the same results.
    """
    run_dir = Path(run_dir)
    config = ckpt.read_run_config(run_dir)
    if config.get("recipe") == "lm" and \
            (run_dir / ADAPTER_CONFIG).is_file():
        raise ScratchnnError(f"{run_dir} is a language-model LoRA run: its model.safetensors "
                             f"already holds the merged weights")
    run = load_finetuned(run_dir)
    if not run.config.get("lora"):
        raise ScratchnnError(f"{run_dir} is not a LoRA run (it has no {ADAPTER_CONFIG}); "
                             f"its model.safetensors is already standalone")
    merged = merge_lora(run.model, replace=True)
    target = Path(out) if out is not None else run_dir.with_name(run_dir.name + "-merged")
    new_config = dict(run.config, lora=None, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    new_config["merged_from"] = {"run_dir": str(run_dir.resolve()), "adapter_sha256":
                                 run.digest, "modules": merged}
    dest = RunDir(target, overwrite)
    try:
        path = dest.create()
        for name in _COPIED:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, path / name)
        save_json(path / ckpt.CONFIG_FILE, new_config)
        ckpt.save_weights(path / ckpt.MODEL_FILE, run.model.state_dict(),
                          {"model": run.config["model"], "merged_from": str(run_dir)})
        final = dest.commit()
    except BaseException:
        dest.discard(resumable=ckpt.MODEL_FILE)
        raise
    return final


def adapter_tensors(run_dir: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a LoRA run's ``adapter.safetensors``."""
    return load_tensors(Path(run_dir) / ADAPTER_WEIGHTS)[0]
