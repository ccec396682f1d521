"""Train a CNN on images, or an RNN/LSTM/GRU on texts or numeric sequences, end to end.

``train_classifier`` resolves the data (``classify_data``), makes a seeded stratified
train/validation/test split, fits the input encoder and the label encoding on the training
examples only (``classify_inputs``), trains with early stopping on the validation examples,
evaluates on the held-out test examples and saves everything in a run directory, like the
tabular recipe, plus ``inputs.json`` (image statistics, vocabulary or sequence layout).
``resume_classifier`` continues such a run exactly.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scratchnn.data.images import COLOR_MODES
from scratchnn.data.text import LEVELS
from scratchnn.errors import ScratchnnError, UsageError
from scratchnn.models import CNNConfig, RNNConfig, build_model
from scratchnn.models.cnn import POOLS
from scratchnn.models.rnn import POOLINGS
from scratchnn.recipes.classify_data import (
    DataSpec,
    check_class_labels,
    load_samples,
    resolve_data,
)
from scratchnn.recipes.classify_inputs import INPUTS_FILE, fit_inputs, inputs_from_dict
from scratchnn.recipes.options import check_ints, flag
from scratchnn.recipes.tabular import (
    OPTIMIZERS,
    SCHEDULERS,
    TabularResult,
    _make_optimizer,
    _make_scheduler,
    _resume_epochs,
    _rngs,
)
from scratchnn.recipes.tabular_data import Splits, split_rows
from scratchnn.serialization import save_json
from scratchnn.training import checkpoint as ckpt
from scratchnn.training.rundir import RunDir, default_run_dir
from scratchnn.training.trainer import Trainer, TrainerConfig

__all__ = ["FAMILIES", "MODEL_CHOICES", "ClassifyOptions", "default_model",
           "resume_classifier", "train_classifier"]

#: ``--model`` choice -> (saved model name, recurrent cell).
FAMILIES: dict[str, tuple[str, str | None]] = {
    "cnn": ("cnn", None), "rnn": ("rnn", "rnn"), "lstm": ("rnn", "lstm"), "gru": ("rnn", "gru")}
MODEL_CHOICES: tuple[str, ...] = ("mlp", *FAMILIES)
RECIPE = "classify"
_RESULTS_FILE = "results.json"

#: Defaults per kind of input (measured to reach the README's figures on the built-in digits
#: and the sentiment sentences). Text monitors validation accuracy: on a few thousand
#: sentences the validation loss turns up (over-confidence) while accuracy still improves.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "images": {"lr": 3e-3, "weight_decay": 1e-2, "epochs": 30, "batch_size": 32,
               "patience": 10, "dropout": 0.1, "monitor": "val_loss", "eval_batch_size": 64},
    "text": {"lr": 3e-3, "weight_decay": 1e-2, "epochs": 30, "batch_size": 32, "patience": 8,
             "dropout": 0.5, "monitor": "val_accuracy", "eval_batch_size": 1024,
             "embedding_dim": 64, "pooling": "mean", "tokenizer": "word", "min_freq": 2,
             "max_vocab": 20000},
    "sequence": {"lr": 3e-3, "weight_decay": 1e-2, "epochs": 40, "batch_size": 32,
                 "patience": 10, "dropout": 0.0, "monitor": "val_loss",
                 "eval_batch_size": 1024, "embedding_dim": None, "pooling": "last"},
}
#: Default --max-length per tokenizer level, and --image-size of an image folder.
_MAX_LENGTH = {"word": 64, "char": 256}
_IMAGE_SIZE = 32
#: Default --seq-len of built-in tables read as sequences (digits: 8 rows of 8 pixels).
_SEQ_LEN = {"digits": 8}

_CNN_ONLY = ("channels", "kernel_size", "pool", "batch_norm", "hidden", "activation",
             "image_size", "color_mode", "augment")
_RNN_ONLY = ("text_column", "tokenizer", "max_length", "min_freq", "max_vocab", "seq_len",
             "embedding_dim", "hidden_size", "num_layers", "bidirectional", "pooling")
_TEXT_ONLY = ("tokenizer", "max_length", "min_freq", "max_vocab")
_POSITIVE = ("kernel_size", "image_size", "max_length", "min_freq", "max_vocab", "seq_len",
             "embedding_dim", "hidden_size", "num_layers", "epochs", "batch_size", "patience")


def _does(flags: list[str]) -> str:
    return "does" if len(flags) == 1 else "do"


def default_model(data: str, text_column: str | None = None) -> str:
    """'lstm' for a text column, 'cnn' for an image folder, else 'mlp'."""
    if text_column is not None:
        return "lstm"
    return "cnn" if Path(data).is_dir() else "mlp"


@dataclass
class ClassifyOptions:
    """What ``scratchnn train --model cnn|rnn|lstm|gru`` can set; None: the default for the
    model and data (see ``_DEFAULTS``)."""

    model: str = "cnn"
    data: str = "digits"
    target: str | None = None
    # CNN and images
    channels: tuple[int, ...] | None = None
    kernel_size: int | None = None
    pool: str | None = None
    batch_norm: bool | None = None
    hidden: tuple[int, ...] | None = None
    activation: str | None = None
    image_size: int | None = None
    color_mode: str | None = None
    augment: bool | None = None
    # recurrent models, texts and sequences
    text_column: str | None = None
    tokenizer: str | None = None
    max_length: int | None = None
    min_freq: int | None = None
    max_vocab: int | None = None
    seq_len: int | None = None
    embedding_dim: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    bidirectional: bool | None = None
    pooling: str | None = None
    # training
    dropout: float | None = None
    loss: str = "ce"
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    scheduler: str = "none"
    epochs: int | None = None
    batch_size: int | None = None
    patience: int | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    seed: int = 0
    out: str | None = None
    overwrite: bool = False
    progress: bool = True
    on_nonfinite: str = "raise"
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.model not in FAMILIES:
            raise UsageError(f"unknown model {self.model!r} for this recipe; valid models "
                             f"are: {', '.join(FAMILIES)}")
        wrong = _RNN_ONLY if self.model == "cnn" else _CNN_ONLY
        given = [flag(n) for n in wrong if getattr(self, n) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} {_does(given)} not apply to --model "
                             f"{self.model}")
        if self.text_column is None:
            given = [flag(n) for n in _TEXT_ONLY if getattr(self, n) is not None]
            if given:
                raise UsageError(f"options for --text-column only: {', '.join(given)}")
        elif self.seq_len is not None:
            raise UsageError("--seq-len applies to numeric sequences, not to --text-column")
        check_ints(self, _POSITIVE)
        choices = {"tokenizer": LEVELS, "color_mode": COLOR_MODES, "pool": POOLS,
                   "pooling": POOLINGS, "optimizer": tuple(OPTIMIZERS),
                   "scheduler": SCHEDULERS, "loss": ("ce", "mse")}
        for name, valid in choices.items():
            value = getattr(self, name)
            if value is not None and value not in valid:
                raise UsageError(f"{flag(name)} must be one of {', '.join(valid)}, "
                                 f"got {value!r}")
        for name in ("lr", "grad_clip"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(f"{flag(name)} must be > 0, got {value!r}")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise UsageError(f"--weight-decay must be >= 0, got {self.weight_decay!r}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise UsageError(f"{flag(name)} must be in [0, 1), got {getattr(self, name)!r}")
        if self.val_fraction + self.test_fraction >= 1:
            raise UsageError(f"--val-fraction + --test-fraction must be < 1, got "
                             f"{self.val_fraction} + {self.test_fraction}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UsageError(f"--seed must be a non-negative integer, got {self.seed!r}")

    @property
    def kind(self) -> str:
        """The kind of input: 'images', 'text' or 'sequence'."""
        if self.model == "cnn":
            return "images"
        return "text" if self.text_column is not None else "sequence"


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _data_settings(opts: ClassifyOptions) -> dict[str, Any]:
    """The kind-specific reading options of ``config.json``'s "data"."""
    if opts.kind == "images":
        size = _pick(opts.image_size, _IMAGE_SIZE)
        return {"color_mode": _pick(opts.color_mode, "auto"), "image_size": [size, size]}
    if opts.kind == "text":
        d = _DEFAULTS["text"]
        level = _pick(opts.tokenizer, d["tokenizer"])
        return {"text_column": opts.text_column, "tokenizer": level,
                "max_length": _pick(opts.max_length, _MAX_LENGTH[level]),
                "min_freq": _pick(opts.min_freq, d["min_freq"]),
                "max_vocab": _pick(opts.max_vocab, d["max_vocab"])}
    return {"seq_len": _pick(opts.seq_len, _SEQ_LEN.get(opts.data))}


def _model_section(opts: ClassifyOptions, spec: DataSpec) -> dict[str, Any]:
    """The model config chosen by the options (input sizes are filled in after fitting)."""
    name, cell = FAMILIES[opts.model]
    d = _DEFAULTS[spec.kind]
    dropout = _pick(opts.dropout, d["dropout"])
    if name == "cnn":
        size = spec.settings["image_size"]
        augment = _pick(opts.augment, spec.origin == "folder")
        cfg = {"channels": list(_pick(opts.channels, (32, 64))),
               "kernel_size": _pick(opts.kernel_size, 3), "pool": _pick(opts.pool, "max"),
               "batch_norm": _pick(opts.batch_norm, True), "dropout": dropout,
               "hidden": list(_pick(opts.hidden, ())), "activation": _pick(opts.activation,
                                                                            "relu"),
               "augment_padding": max(1, round(min(size) / 8)) if augment else 0,
               "augment_flip": bool(augment)}
        CNNConfig.from_dict({"in_channels": 1, "image_size": size, "num_classes": 2, **cfg})
    else:
        cfg = {"cell": cell, "embedding_dim": _pick(opts.embedding_dim, d["embedding_dim"]),
               "hidden_size": _pick(opts.hidden_size, 64),
               "num_layers": _pick(opts.num_layers, 1),
               "bidirectional": _pick(opts.bidirectional, False), "dropout": dropout,
               "pooling": _pick(opts.pooling, d["pooling"])}
        size = {"vocab_size": 2} if spec.kind == "text" else {"input_size": 1}
        RNNConfig.from_dict({"num_outputs": 2, **size, **cfg})
    return {"name": name, "config": cfg}


def _resolve(opts: ClassifyOptions) -> tuple[dict[str, Any], DataSpec]:
    """Check the options against the data; return (the run's config, the data spec)."""
    spec = resolve_data(opts.data, opts.kind, opts.target, _data_settings(opts))
    if spec.origin == "builtin":
        given = [flag(n) for n in ("image_size", "color_mode") if getattr(opts, n) is not None]
        if given:
            raise UsageError(f"options for image folders only ({spec.source} images are "
                             f"fixed): {', '.join(given)}")
    d = _DEFAULTS[spec.kind]
    try:
        model = _model_section(opts, spec)
        trainer_cfg = TrainerConfig(
            task="classification", loss=opts.loss, epochs=_pick(opts.epochs, d["epochs"]),
            batch_size=_pick(opts.batch_size, d["batch_size"]),
            patience=_pick(opts.patience, d["patience"]), monitor=d["monitor"],
            on_nonfinite=opts.on_nonfinite, grad_clip=opts.grad_clip, progress=opts.progress,
            eval_batch_size=d["eval_batch_size"])
    except ValueError as e:
        raise UsageError(str(e)) from None
    default_lr, default_wd = OPTIMIZERS[opts.optimizer]
    if opts.optimizer in ("adam", "adamw"):
        default_lr = d["lr"]
    if opts.optimizer == "adamw":
        default_wd = d["weight_decay"]
    config = {
        "format": "scratchnn.run", "version": 1, "recipe": RECIPE,
        "data": spec.to_dict(),
        "split": {"val_fraction": opts.val_fraction, "test_fraction": opts.test_fraction,
                  "stratified": True},
        "model": model,
        "optimizer": {"name": opts.optimizer, "lr": float(_pick(opts.lr, default_lr)),
                      "weight_decay": float(_pick(opts.weight_decay, default_wd))},
        "scheduler": opts.scheduler,
        "training": asdict(trainer_cfg),
        "seed": opts.seed,
        "versions": ckpt.versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return config, spec


def train_classifier(options: ClassifyOptions) -> TabularResult:
    """Train a CNN or recurrent classifier and save the run; see the module docstring.

    Raises:
        UsageError: options that do not fit together or do not suit the data.
        RunDirExistsError: the run directory is not empty and ``overwrite`` is not set.
        ScratchnnError, ValueError: bad data (the message names the file, column or value).
    """
    config, spec = _resolve(options)
    run = RunDir(options.out or default_run_dir(spec.name), options.overwrite)
    try:
        run.create()
        result = _run(run.path, config, resume=False)
        result.run_dir = run.commit()
    except BaseException:
        run.discard()
        raise
    return result


def resume_classifier(run_dir: str | Path, epochs: int | None = None,
                      progress: bool = True) -> TabularResult:
    """Continue a saved CNN/RNN run exactly where its last checkpoint left off."""
    run_dir = Path(run_dir)
    config = ckpt.read_run_config(run_dir)
    if config.get("recipe") != RECIPE:
        raise ScratchnnError(f"{run_dir / ckpt.CONFIG_FILE} is not a {RECIPE} run config")
    note = _resume_epochs(run_dir, config, epochs)
    config["training"]["progress"] = progress
    result = _run(run_dir, config, resume=True)
    if note:
        result.notes.insert(0, note)
    return result


def _run(run_dir: Path, config: dict[str, Any], resume: bool) -> TabularResult:
    """Load and encode the data, build model and optimizer from ``config``, train in
    ``run_dir`` (a new run, or resume the saved one), evaluate on the test split."""
    from scratchnn.data import Preprocessor

    spec = DataSpec.from_dict(config["data"])
    rngs = _rngs(config["seed"])
    if resume:
        spec.check_unchanged()
    else:
        spec.sha256 = config["data"]["sha256"] = spec.fingerprint()
    samples = load_samples(spec)
    notes = list(samples.notes)
    if resume:
        prep = Preprocessor.from_dict(ckpt.read_json(run_dir / ckpt.PREPROCESSING_FILE))
        encoder = inputs_from_dict(ckpt.read_json(run_dir / INPUTS_FILE), prep)
        split_path = run_dir / ckpt.SPLIT_FILE
        splits = Splits.from_dict(ckpt.read_json(split_path), len(samples), split_path)
    else:
        check_class_labels(spec, samples.labels)
        split = config["split"]
        splits, n_dropped = split_rows(samples.labels, spec.target, "classification",
                                       split["val_fraction"], split["test_fraction"],
                                       rngs["split"], notes=notes,
                                       regression_hint="use --model mlp --task regression")
        if n_dropped:
            notes.append(f"dropped {n_dropped} example(s) with a missing target "
                         f"{spec.target!r}")
        config["data"].update(n_rows=len(samples), n_dropped=n_dropped)
        encoder, prep = fit_inputs(spec, samples.take(splits.train))
        dims = {"num_classes" if config["model"]["name"] == "cnn" else "num_outputs":
                prep.n_classes, **encoder.model_fields()}
        config["model"]["config"] = {**dims, **config["model"]["config"]}
        save_json(run_dir / ckpt.PREPROCESSING_FILE, prep.to_dict())
        save_json(run_dir / INPUTS_FILE, encoder.to_dict())
        save_json(run_dir / ckpt.SPLIT_FILE, splits.to_dict())
    save_json(run_dir / ckpt.CONFIG_FILE, config)

    model = build_model(config["model"]["name"], config["model"]["config"], rng=rngs["model"])
    optimizer = _make_optimizer(config["optimizer"], model)
    train_cfg = TrainerConfig(**config["training"])
    scheduler = _make_scheduler(config.get("scheduler", "none"), optimizer, train_cfg.epochs)
    metadata = {"model": config["model"], "inputs": encoder.to_dict(), "classes": prep.classes}
    trainer = Trainer(model, optimizer, train_cfg, scheduler=scheduler,
                      num_classes=prep.n_classes, run_dir=run_dir, rng=rngs["shuffle"],
                      rngs={"model": rngs["model"]}, model_metadata=metadata)

    def encode(rows: Any) -> tuple[Any, Any]:
        part = samples.take(rows)
        return encoder.encode(part), prep.transform_target(part.labels)

    val = encode(splits.val) if splits.val.size else None
    fit = trainer.fit(encode(splits.train), val, resume=resume)
    notes.extend(fit.messages)
    if splits.test.size:
        test = trainer.evaluate(*encode(splits.test))
    else:
        test = {}
        notes.append("no test examples (test_fraction is 0): no held-out metrics")
    n_rows = {"train": int(splits.train.size), "val": int(splits.val.size),
              "test": int(splits.test.size)}
    result = TabularResult(
        run_dir=run_dir, data=spec.source, target=spec.target, task="classification",
        test_metrics=test, n_rows=n_rows, epochs_run=trainer.epoch, best_epoch=fit.best_epoch,
        stop_reason=fit.stop_reason, classes=prep.classes, notes=notes)
    save_json(run_dir / _RESULTS_FILE, {k: v for k, v in result.to_dict().items()
                                        if k != "run_dir"})
    return result
