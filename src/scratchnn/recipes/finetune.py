"""Fine-tune a trained model on new labelled data: ``scratchnn finetune FROM --data ...``.

FROM is a scratchnn run (MLP, CNN, RNN, a language-model GPT, or an earlier fine-tuning run)
or a Hugging Face folder (BERT-family or GPT-2). The new data is read the way FROM reads
its inputs (its preprocessing, image statistics, vocabulary or tokenizer), split into
train/validation/test rows (or tested on ``test_data``), and the model is trained with the
chosen parameters frozen, LoRA adapters, a new head, per-group learning rates, warm-up and
gradual unfreezing. A trainability audit checks the first step. The run directory can be
used by ``scratchnn evaluate`` and ``predict``; a LoRA run keeps only its adapters (plus the
head) and rebuilds from FROM, which it names together with the SHA-256 of its weights.

A GPT without ``target`` is fine-tuned as a language model (``finetune_lm``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scratchnn.errors import UsageError
from scratchnn.finetune import TrainabilityAudit
from scratchnn.finetune.heads import HEAD_INITS
from scratchnn.recipes.finetune_data import Reader, TokenEncoder, with_labels
from scratchnn.recipes.finetune_models import RECIPE, Source, load_source, spec_of
from scratchnn.recipes.finetune_runs import TOKENIZER_FILE, save_finetuned_weights
from scratchnn.recipes.finetune_setup import (
    build_classifier,
    fresh_copy,
    make_optimizer,
    setup_training,
)
from scratchnn.recipes.finetune_train import SCHEDULES, LoopConfig, evaluate, fit
from scratchnn.recipes.options import check_ints, flag
from scratchnn.recipes.tabular import OPTIMIZERS, _rngs
from scratchnn.recipes.tabular_data import split_rows
from scratchnn.serialization import save_json
from scratchnn.training import checkpoint as ckpt
from scratchnn.training.plots import plot_history
from scratchnn.training.rundir import MetricsLog, RunDir, default_run_dir

__all__ = ["FinetuneOptions", "FinetuneResult", "finetune"]

Echo = Callable[[str], None]
_RESULTS_FILE = "results.json"
#: (lr, epochs) defaults: transformers (token inputs) / everything else; LoRA lr in brackets.
_DEFAULT_LR = {"tokens": (3e-5, 1e-3), "other": (1e-3, 1e-3)}
_DEFAULT_EPOCHS = {"tokens": 3, "other": 20}
_POSITIVE = ("epochs", "batch_size", "lora_rank", "max_length", "patience", "steps",
             "block_size", "eval_interval", "eval_batches")


@dataclass
class FinetuneOptions:
    """Everything ``scratchnn finetune`` can set; None means the default for FROM."""

    source: str
    data: str | None = None
    target: str | None = None
    text_column: str | None = None
    test_data: str | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    # what trains
    freeze: tuple[str, ...] = ()
    freeze_first: int | None = None
    unfreeze_schedule: str | None = None
    freeze_bn_stats: bool = False
    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ()
    new_head: bool = False
    head_init: str | None = None
    head_lr: float | None = None
    layer_decay: float | None = None
    from_scratch: bool = False
    # inputs and head
    pooling: str | None = None
    max_length: int | None = None
    dropout: float | None = None
    # training
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float = 0.01
    epochs: int | None = None
    batch_size: int = 32
    warmup_steps: int = 0
    scheduler: str = "none"
    grad_clip: float | None = None
    patience: int | None = None
    monitor: str = "val_loss"
    log_every: int = 0
    # language models (a GPT without --target)
    steps: int | None = None
    block_size: int | None = None
    eval_interval: int | None = None
    eval_batches: int | None = None
    min_lr: float | None = None
    seed: int = 0
    out: str | None = None
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_ints(self, _POSITIVE)
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got "
                             f"{self.optimizer!r}")
        if self.scheduler not in SCHEDULES:
            raise UsageError(f"--scheduler must be one of {', '.join(SCHEDULES)}, got "
                             f"{self.scheduler!r}")
        if self.head_init is not None and self.head_init not in HEAD_INITS:
            raise UsageError(f"--head-init must be one of {', '.join(HEAD_INITS)}, got "
                             f"{self.head_init!r}")
        if self.monitor not in ("val_loss", "val_accuracy"):
            raise UsageError(f"--monitor must be val_loss or val_accuracy, got {self.monitor!r}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise UsageError(f"--layer-decay must be in (0, 1], got {self.layer_decay!r}")
        if self.lora_rank is None and (self.lora_targets or self.lora_alpha is not None):
            raise UsageError("--lora-targets and --lora-alpha need --lora-rank R")
        if not 0 <= self.lora_dropout < 1:
            raise UsageError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout!r}")
        if self.lora_rank is not None and self.from_scratch:
            raise UsageError("--from-scratch trains every weight; it cannot be combined with "
                             "--lora-rank")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise UsageError(f"{flag(name)} must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise UsageError("--val-fraction + --test-fraction must be < 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UsageError(f"--seed must be a non-negative integer, got {self.seed!r}")


@dataclass
class FinetuneResult:
    """What a fine-tuning run reports (``to_dict`` for ``--json``)."""

    run_dir: Path
    source: str
    data: str
    target: str
    test_metrics: dict[str, Any]
    n_rows: dict[str, int]
    trainable: int
    total: int
    epochs_run: int
    steps: int
    s_per_step: float | None
    train_seconds: float
    best_epoch: int | None
    stop_reason: str
    classes: list[Any] | None = None
    lora_modules: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    task: str = "classification"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; the test metrics are under "metrics"."""
        d = asdict(self)
        d["run_dir"] = str(self.run_dir)
        d["metrics"] = d.pop("test_metrics")
        return d


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _context(model: Any) -> int:
    """The longest token sequence ``model`` reads (BERT positions, GPT context)."""
    inner = getattr(model, "gpt", None) or getattr(model, "bert", None) or model
    config = inner.config
    return getattr(config, "max_position_embeddings", None) or config.block_size


def _check_known_labels(src: Source, labels: Any, target: str) -> None:
    """Without --new-head the data's labels must be among FROM's classes."""
    from scratchnn.recipes.classify_inputs import fit_labels

    seen = fit_labels(labels, target).classes
    known = [str(c) for c in src.prep.classes]
    unknown = [c for c in seen if str(c) not in known]
    if unknown:
        raise UsageError(f"labels {unknown[:10]} of {target!r} are not among FROM's classes "
                         f"{src.prep.classes}; pass --new-head to train a new output layer")


def finetune(options: FinetuneOptions, echo: Echo | None = None) -> Any:
    """Fine-tune FROM as ``options`` say and save the run (see the module docstring).

    Raises:
        UsageError: options that do not fit FROM or the data (named in the message).
        ScratchnnError: the trainability audit failed, or bad data or files.
    """
    echo = echo or (lambda message: None)
    # An --out that would be refused is refused before FROM is loaded; a default run
    # directory is only claimed once everything else is resolved.
    out = None if options.out is None else RunDir(options.out, options.overwrite)
    src = load_source(options.source)
    if src.kind == "lm" and options.target is None:
        from scratchnn.recipes.finetune_lm import finetune_lm

        return finetune_lm(options, src, echo, out)
    lm_only = [n for n in ("steps", "block_size", "eval_interval", "eval_batches", "min_lr")
               if getattr(options, n) is not None]
    if lm_only:
        raise UsageError(f"{', '.join(flag(n) for n in lm_only)} apply to "
                         f"language-model fine-tuning only (a GPT without --target)")
    if options.data is None:
        raise UsageError("--data is required: the labelled examples to fine-tune on")
    kind = "tokens" if src.kind in ("tokens", "lm") else src.kind
    if kind != "tokens" and options.max_length is not None:
        raise UsageError("--max-length applies to BERT/GPT text models only")
    settings = dict(src.config.get("data") or {}) if src.origin != "huggingface" else {}
    settings.update(src.text)
    reader = Reader.resolve(kind, options.data, options.target, options.text_column, settings)
    return _finetune(options, src, kind, reader, echo, out)


def _finetune(opts: FinetuneOptions, src: Source, kind: str, reader: Reader,
              echo: Echo, out: RunDir | None) -> FinetuneResult:
    from scratchnn.recipes.classify_inputs import fit_labels

    rngs = _rngs(opts.seed)
    notes: list[str] = []
    inputs, labels, load_notes = reader.load()
    notes += load_notes
    target = reader.target
    test_fraction = 0.0 if opts.test_data else opts.test_fraction
    splits, n_dropped = split_rows(labels, target, "classification", opts.val_fraction,
                                   test_fraction, rngs["split"], notes=notes)
    if n_dropped:
        notes.append(f"dropped {n_dropped} row(s) with a missing target {target!r}")
    has_head = src.prep is not None and kind != "lm"
    new_head = opts.new_head or not has_head
    if new_head:
        label_prep = fit_labels(labels.take(splits.train), target)
    else:
        _check_known_labels(src, labels.take(np.concatenate([splits.train, splits.val])),
                            target)
        label_prep = src.prep
    features = src.prep if kind in ("tabular", "sequence") else None
    reader.prep = with_labels(features, label_prep)
    reader.prep.target = target
    reader.inputs = src.inputs
    max_length = None
    if kind == "tokens":
        max_length = min(_pick(opts.max_length, src.text.get("max_length", 128)),
                         _context(src.model))
        reader.tokens = TokenEncoder(src.tokenizer, max_length)
    prep = reader.prep
    x_all = reader.encode(inputs)
    if reader.tokens is not None and reader.tokens.dropped:
        notes.append(f"dropped {reader.tokens.dropped} character(s) outside the tokenizer's "
                     f"vocabulary")

    def part(rows: np.ndarray) -> tuple[Any, np.ndarray]:
        return x_all.take(rows), prep.transform_target(labels.take(rows))

    train = part(splits.train)
    val = part(splits.val) if splits.val.size else None
    test, test_name = None, None
    if opts.test_data:
        t_inputs, t_labels, _ = reader.load(opts.test_data)
        keep = np.flatnonzero([v is not None and v == v for v in t_labels[target].tolist()])
        test = (reader.encode(reader.take(t_inputs, keep)),
                prep.transform_target(t_labels.take(keep)))
        test_name = str(Path(opts.test_data).resolve())
    elif splits.test.size:
        test = part(splits.test)

    n_classes = prep.n_classes
    model = build_classifier(src.model, n_classes, new_head, opts.head_init, opts.pooling,
                             opts.dropout, rngs["model"])
    if opts.from_scratch:
        model = fresh_copy(model, rngs["model"])
        notes.append("--from-scratch: FROM's architecture, inputs and tokenizer with newly "
                     "initialised weights (a baseline without the pretraining)")
    spec = spec_of(model)
    lora_modules, unfreezer = setup_training(model, opts, rngs["model"], echo)
    lr = _pick(opts.lr, _DEFAULT_LR["tokens" if kind == "tokens" else "other"]
               [opts.lora_rank is not None])
    optimizer = make_optimizer(model, opts.optimizer, lr, opts.weight_decay, opts.head_lr,
                               opts.layer_decay, include_frozen=unfreezer is not None)
    audit = TrainabilityAudit(model, optimizer)
    report = audit.report()
    echo(f"{src.describe}: {report}")
    epochs = _pick(opts.epochs, _DEFAULT_EPOCHS["tokens" if kind == "tokens" else "other"])
    loop = LoopConfig(epochs=epochs, batch_size=opts.batch_size, patience=opts.patience,
                      monitor=opts.monitor, grad_clip=opts.grad_clip,
                      warmup_steps=opts.warmup_steps, schedule=opts.scheduler,
                      log_every=opts.log_every, progress=opts.progress)
    data = reader.to_dict()
    if test_name:
        from scratchnn.recipes.finetune_models import file_digest

        data["test_data"] = {"source": test_name, "sha256": file_digest([Path(test_name)])
                             if Path(test_name).is_file() else None}
    lora = None
    if lora_modules:
        rec = model.lora_config[-1]
        lora = {k: rec[k] for k in ("targets", "rank", "alpha", "dropout", "modules")}
    config = {
        "format": "scratchnn.run", "version": 1, "recipe": RECIPE,
        "source": {"path": str(src.path), "origin": src.origin, "sha256": src.digest,
                   "from_scratch": opts.from_scratch},
        "inputs": {"kind": kind, "text_column": reader.spec.settings.get("text_column")
                   if kind == "tokens" else None, "max_length": max_length},
        "data": data, "split": {"val_fraction": opts.val_fraction,
                                "test_fraction": test_fraction, "stratified": True},
        "model": spec, "lora": lora,
        "finetune": {k: getattr(opts, k) for k in (
            "freeze", "freeze_first", "unfreeze_schedule", "freeze_bn_stats", "new_head",
            "head_init", "head_lr", "layer_decay", "pooling", "dropout")},
        "optimizer": {"name": opts.optimizer, "lr": lr, "weight_decay": opts.weight_decay},
        "training": asdict(loop), "seed": opts.seed,
        "parameters": {"trainable": report.trainable, "total": report.total},
        "versions": ckpt.versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    run = out if out is not None else RunDir(
        default_run_dir(f"finetune-{Path(opts.data).stem}"), opts.overwrite)
    try:
        path = run.create()
        save_json(path / ckpt.CONFIG_FILE, config)
        save_json(path / ckpt.PREPROCESSING_FILE, prep.to_dict())
        save_json(path / ckpt.SPLIT_FILE, splits.to_dict())
        if reader.inputs is not None:
            from scratchnn.recipes.classify_inputs import INPUTS_FILE

            save_json(path / INPUTS_FILE, reader.inputs)
        if kind == "tokens":
            src.tokenizer.save(path / TOKENIZER_FILE)
        log = MetricsLog(path / ckpt.METRICS_FILE)
        summary, best = fit(model, optimizer, loop, train, val, n_classes, rngs["shuffle"],
                            log, audit, unfreezer, echo)
        if best is not None:
            model.load_state_dict(best)
        if log.records:
            plot_history(log.records, path / ckpt.CURVES_FILE)
        metrics = evaluate(model, *test, n_classes) if test is not None else {}
        if test is None:
            notes.append("no test rows (--test-fraction 0 and no --test-data): no held-out "
                         "metrics")
        save_finetuned_weights(path, model, spec, bool(lora_modules), summary.best_epoch)
        result = FinetuneResult(
            run_dir=path, source=str(src.path), data=reader.spec.source, target=target,
            test_metrics=metrics, n_rows={"train": int(splits.train.size),
                                          "val": int(splits.val.size),
                                          "test": 0 if test is None else len(test[1])},
            trainable=report.trainable, total=report.total, epochs_run=summary.epochs_run,
            steps=summary.steps, s_per_step=summary.s_per_step,
            train_seconds=summary.train_seconds, best_epoch=summary.best_epoch,
            stop_reason=summary.stop_reason, classes=prep.classes, lora_modules=lora_modules,
            notes=notes + summary.notes)
        save_json(path / _RESULTS_FILE, {k: v for k, v in result.to_dict().items()
                                         if k != "run_dir"})
        result.run_dir = run.commit()
    except BaseException:
        run.discard(resumable=_RESULTS_FILE)
        raise
    return result
