"""Train an MLP on a table (built-in data set or CSV) end to end, and reuse the saved run.

``train_tabular`` loads the data, drops rows without a target, makes a seeded (stratified)
train/validation/test split, fits the preprocessing on the training rows only, trains an MLP
with early stopping on the validation rows, evaluates it on the held-out test rows and saves
everything in a run directory. ``resume_tabular`` continues such a run exactly;
``evaluate_run`` and ``predict_run`` (in ``tabular_predict``) reuse it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scratchnn.data import Preprocessor, Table
from scratchnn.errors import ScratchnnError, UsageError
from scratchnn.models import MLP, MLPConfig
from scratchnn.recipes.tabular_data import (
    DataSource,
    Splits,
    check_regression_target,
    default_target,
    encode,
    infer_task,
    resolve_source,
    split_rows,
)
from scratchnn.serialization import save_json
from scratchnn.training import checkpoint as ckpt
from scratchnn.training.rundir import RunDir, default_run_dir
from scratchnn.training.trainer import Trainer, TrainerConfig

__all__ = ["OPTIMIZERS", "SCHEDULERS", "TabularOptions", "TabularResult", "resume_tabular",
           "train_tabular"]

#: Optimizer name -> (default learning rate, default weight decay), used when not given.
OPTIMIZERS: dict[str, tuple[float, float]] = {
    "adamw": (1e-2, 0.3), "adam": (1e-2, 0.0), "sgd": (5e-2, 0.0), "rmsprop": (3e-3, 0.0),
    "adagrad": (1e-1, 0.0),
}
SCHEDULERS = ("none", "cosine", "plateau")
_RUN_FORMAT = "scratchnn.run"
_RESULTS_FILE = "results.json"


@dataclass
class TabularOptions:
    """Everything ``scratchnn train`` can set; None means "the default for this data"."""

    data: str = "iris"
    target: str | None = None
    task: str | None = None
    hidden: tuple[int, ...] = (64,)
    activation: str = "tanh"
    init: str = "xavier_uniform"
    dropout: float = 0.0
    loss: str | None = None
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    scheduler: str = "none"
    epochs: int = 300
    batch_size: int = 16
    patience: int | None = 40
    monitor: str = "val_loss"
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    seed: int = 0
    out: str | None = None
    overwrite: bool = False
    progress: bool = True
    on_nonfinite: str = "raise"
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.task not in (None, "classification", "regression"):
            raise UsageError(f"task must be 'classification' or 'regression', got {self.task!r}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}; valid optimizers are: "
                             f"{', '.join(OPTIMIZERS)}")
        if self.scheduler not in SCHEDULERS:
            raise UsageError(f"unknown scheduler {self.scheduler!r}; valid schedulers are: "
                             f"{', '.join(SCHEDULERS)}")
        if self.lr is not None and not self.lr > 0:
            raise UsageError(f"lr must be > 0, got {self.lr!r}")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise UsageError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise UsageError(f"{name} must be in [0, 1), got {value!r}")
        if self.val_fraction + self.test_fraction >= 1:
            raise UsageError(f"val_fraction + test_fraction must be < 1, got "
                             f"{self.val_fraction} + {self.test_fraction}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {self.seed!r}")


@dataclass
class TabularResult:
    """What a training run produced: where it is, the held-out test metrics, and notes."""

    run_dir: Path
    data: str
    target: str
    task: str
    test_metrics: dict[str, Any]
    n_rows: dict[str, int]
    epochs_run: int
    best_epoch: int | None
    stop_reason: str
    classes: list[Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what ``--json`` prints); the test metrics are under "metrics"."""
        d = asdict(self)
        d["run_dir"] = str(self.run_dir)
        d["split"] = "test"
        d["metrics"] = d.pop("test_metrics")
        return d


def _rngs(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for the split, the model (init and dropout) and the shuffle."""
    split, model, shuffle = np.random.SeedSequence(seed).spawn(3)
    return {"split": np.random.default_rng(split), "model": np.random.default_rng(model),
            "shuffle": np.random.default_rng(shuffle)}


def _make_optimizer(spec: dict[str, Any], model: MLP) -> Any:
    from scratchnn import optim

    classes = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD,
               "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}
    kwargs = {"lr": spec["lr"], "weight_decay": spec["weight_decay"]}
    if spec["name"] == "sgd":
        kwargs["momentum"] = spec.get("momentum", 0.9)
    return classes[spec["name"]](model.parameters(), **kwargs)


def _make_scheduler(name: str, optimizer: Any, epochs: int) -> Any:
    from scratchnn.optim import lr_scheduler

    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=10)
    return None


def _resolve(opts: TabularOptions, source: DataSource,
             notes: list[str]) -> tuple[dict[str, Any], Table]:
    """Check the data against the options; return (the run's config, the table)."""
    table = source.load()
    target = default_target(source, opts.target, table)
    table[target]  # raises ColumnNotFoundError listing the columns that exist
    task = opts.task
    if task is None:
        task, note = infer_task(table, target, source)
        if note:
            notes.append(note)
    check_regression_target(table, target, task, source)
    loss = opts.loss or ("ce" if task == "classification" else "mse")
    try:  # option errors surface now, before the run directory is touched
        MLPConfig(1, 1, hidden_sizes=tuple(opts.hidden), activation=opts.activation,
                  dropout=opts.dropout, init=opts.init)
        trainer_cfg = TrainerConfig(
            task=task, loss=loss, epochs=opts.epochs, batch_size=opts.batch_size,
            patience=opts.patience, monitor=opts.monitor, on_nonfinite=opts.on_nonfinite,
            grad_clip=opts.grad_clip, progress=opts.progress)
    except ValueError as e:
        raise UsageError(str(e)) from None
    lr, weight_decay = OPTIMIZERS[opts.optimizer]
    lr = lr if opts.lr is None else float(opts.lr)
    weight_decay = weight_decay if opts.weight_decay is None else float(opts.weight_decay)
    config = {
        "format": _RUN_FORMAT, "version": 1, "recipe": "tabular",
        "data": {**source.to_dict(), "target": target, "task": task},
        "split": {"val_fraction": opts.val_fraction, "test_fraction": opts.test_fraction,
                  "stratified": task == "classification"},
        "model": {"name": "mlp", "config": {"hidden_sizes": list(opts.hidden),
                                            "activation": opts.activation,
                                            "dropout": opts.dropout, "init": opts.init}},
        "optimizer": {"name": opts.optimizer, "lr": lr, "weight_decay": weight_decay},
        "scheduler": opts.scheduler,
        "training": asdict(trainer_cfg),
        "seed": opts.seed,
        "versions": ckpt.versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return config, table


def train_tabular(options: TabularOptions) -> TabularResult:
    """Train an MLP on a table and save the run; see the module docstring for the steps.

    Raises:
        UsageError: inconsistent options (e.g. no target for a CSV file).
        RunDirExistsError: the run directory is not empty and ``overwrite`` is not set.
        ScratchnnError, ValueError: bad data (the message names the column, row or file).
    """
    notes: list[str] = []
    source = resolve_source(options.data)
    config, table = _resolve(options, source, notes)
    run = RunDir(options.out or default_run_dir(source.name), options.overwrite)
    try:
        run.create()
        result = _run(run.path, config, notes, table=table)
        result.run_dir = run.commit()
    except BaseException:
        run.discard()
        raise
    return result


def resume_tabular(run_dir: str | Path, epochs: int | None = None,
                   progress: bool = True) -> TabularResult:
    """Continue a saved run exactly where its last checkpoint left off.

    Args:
        run_dir: the run directory.
        epochs: a new total number of epochs (to train longer); None keeps the saved one.
        progress: show the progress bar.
    """
    run_dir = Path(run_dir)
    config = ckpt.read_run_config(run_dir)
    if config.get("recipe") != "tabular":
        raise ScratchnnError(f"{run_dir / ckpt.CONFIG_FILE} is not a tabular run config")
    note = _resume_epochs(run_dir, config, epochs)
    config["training"]["progress"] = progress
    result = _run(run_dir, config, [], table=None)
    if note:
        result.notes.insert(0, note)
    return result


def _resume_epochs(run_dir: Path, config: dict[str, Any], epochs: int | None) -> str | None:
    """Set the resumed run's total ``epochs`` in ``config``, unless it has nothing left to
    train: then keep the saved total and return a note that says why.

    A run that stopped early is finished: more epochs would not be what an uninterrupted run
    with the same settings does (it stops at the same epoch), so it is not continued.
    """
    state = ckpt.read_json(run_dir / ckpt.STATE_FILE)
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
        config["training"]["epochs"] = epochs or config["training"]["epochs"]
        return None  # the resume itself reports what is wrong with the state file
    done = state["epoch"]
    if state.get("stop_reason") == "early stopping":
        stopper = state.get("early_stopping") or {}
        return (f"nothing to do: {run_dir} stopped early at epoch {done} (best epoch "
                f"{stopper.get('best_epoch')}, patience {stopper.get('patience')}) and a run "
                "that stopped early is finished; to train longer, start a new run with a larger "
                "--patience (0 disables early stopping)")
    total = config["training"]["epochs"] if epochs is None else epochs
    if total <= done:
        return (f"nothing to do: {run_dir} already trained {done} epochs; pass --epochs > "
                f"{done} to continue")
    config["training"]["epochs"] = total
    return None


def _run(run_dir: Path, config: dict[str, Any], notes: list[str],
         table: Table | None) -> TabularResult:
    """Prepare data, model and optimizer from ``config`` and train in ``run_dir``: a new run
    when given the loaded ``table``, else resume the saved one."""
    resume = table is None
    source = DataSource.from_dict(config["data"])
    target, task = config["data"]["target"], config["data"]["task"]
    rngs = _rngs(config["seed"])
    if resume:
        source.check_unchanged()
        prep = Preprocessor.from_dict(ckpt.read_json(run_dir / ckpt.PREPROCESSING_FILE))
        table = source.load(prep.column_types)
        split_path = run_dir / ckpt.SPLIT_FILE
        splits = Splits.from_dict(ckpt.read_json(split_path), len(table), split_path)
    else:
        splits, n_dropped = split_rows(table, target, task, config["split"]["val_fraction"],
                                       config["split"]["test_fraction"], rngs["split"],
                                       notes=notes)
        config["data"].update(n_rows=len(table), n_dropped=n_dropped)
        if n_dropped:
            notes.append(f"dropped {n_dropped} row(s) with a missing target {target!r}")
        prep = Preprocessor().fit(table.take(splits.train), target, task,
                                  standardize_target=task == "regression")
        config["model"]["config"] = {"in_features": prep.n_features,
                                     "out_features": prep.n_classes or 1,
                                     **config["model"]["config"]}
        save_json(run_dir / ckpt.PREPROCESSING_FILE, prep.to_dict())
        save_json(run_dir / ckpt.SPLIT_FILE, splits.to_dict())
    save_json(run_dir / ckpt.CONFIG_FILE, config)

    model_cfg = MLPConfig.from_dict(config["model"]["config"])
    model = MLP(model_cfg, rng=rngs["model"])
    optimizer = _make_optimizer(config["optimizer"], model)
    train_cfg = TrainerConfig(**config["training"])
    scheduler = _make_scheduler(config.get("scheduler", "none"), optimizer, train_cfg.epochs)
    trainer = Trainer(model, optimizer, train_cfg, scheduler=scheduler,
                      num_classes=prep.n_classes, run_dir=run_dir, rng=rngs["shuffle"],
                      rngs={"model": rngs["model"]}, target_inverse=prep.inverse_target,
                      model_metadata={"model": config["model"]})
    val = encode(prep, table, splits.val) if splits.val.size else None
    fit = trainer.fit(encode(prep, table, splits.train), val, resume=resume)
    notes.extend(fit.messages)
    n_rows = {"train": int(splits.train.size), "val": int(splits.val.size),
              "test": int(splits.test.size)}
    if splits.test.size:
        test = trainer.evaluate(*encode(prep, table, splits.test))
    else:
        test = {}
        notes.append("no test rows (test_fraction is 0): no held-out metrics")
    result = TabularResult(
        run_dir=run_dir, data=source.source, target=target, task=task, test_metrics=test,
        n_rows=n_rows, epochs_run=trainer.epoch, best_epoch=fit.best_epoch,
        stop_reason=fit.stop_reason, classes=prep.classes, notes=notes)
    save_json(run_dir / _RESULTS_FILE, {k: v for k, v in result.to_dict().items()
                                        if k != "run_dir"})
    return result
