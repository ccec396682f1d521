"""``scratchnn train``: train an MLP on a built-in data set or a CSV file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scratchnn.errors import UsageError

_DESCRIPTION = """\
Train a multilayer perceptron on a table and evaluate it on held-out test rows.

With no arguments it trains on the built-in iris data set. The data is split (stratified for
classification, seeded) into train/validation/test rows; preprocessing (impute, standardise,
one-hot, label-encode) is fitted on the training rows only; training stops early when the
validation loss stops improving and keeps the best epoch's weights. Everything is saved in
the run directory: config.json, model.safetensors (best weights), last.safetensors,
optimizer.safetensors and trainer_state.json (to --resume exactly), preprocessing.json,
split.json, metrics.jsonl, curves.png and results.json.
"""

_EPILOG = """\
defaults: hidden 64, tanh, xavier_uniform, adamw (lr 0.01, weight decay 0.3), batch size 16,
up to 300 epochs, patience 40, 15%% validation and 20%% test rows, seed 0. Default lr per
optimizer: adamw/adam 0.01, sgd 0.05 (momentum 0.9), rmsprop 0.003, adagrad 0.1.

The run directory defaults to ./runs/<data>-<timestamp> (relative to the current directory).

examples:
  scratchnn train
  scratchnn train --data wine --hidden 64,64 --epochs 100
  scratchnn train --data houses.csv --target price --task regression --out runs/houses
  scratchnn train --resume runs/houses --epochs 500
"""

#: Options --resume may be combined with (the rest come from the saved run).
_RESUME_OK = {"epochs", "resume", "no_progress", "json", "debug"}


def _hidden(text: str) -> tuple[int, ...]:
    """argparse type: '64,64' -> (64, 64); '' or 'none' -> () (a linear model)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes like 64,64, got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def add_parser(commands: Any) -> None:
    """Register ``train`` on the sub-command action ``commands``."""
    from scratchnn.cli.main import add_common, non_negative_int, positive_int
    from scratchnn.models import ACTIVATIONS, INIT_SCHEMES
    from scratchnn.recipes.tabular import OPTIMIZERS, SCHEDULERS

    p = commands.add_parser("train", help="train an MLP on a table (default: iris)",
                            description=_DESCRIPTION, epilog=_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--data", metavar="NAME|CSV",
                      help="a built-in data set (iris, wine, breast_cancer, digits, diabetes) "
                           "or a CSV file with a header row (default: iris)")
    data.add_argument("--target", metavar="COLUMN",
                      help="the column to predict (default 'target' for built-in data; "
                           "required for a CSV file)")
    data.add_argument("--task", choices=("classification", "regression"),
                      help="default: the built-in's task; for a CSV, classification when the "
                           "target is non-numeric or has few distinct integer values")
    data.add_argument("--val-fraction", type=_fraction, metavar="F",
                      help="share of rows for validation/early stopping (default 0.15)")
    data.add_argument("--test-fraction", type=_fraction, metavar="F",
                      help="share of rows held out for the test metrics (default 0.2)")
    model = p.add_argument_group("model")
    model.add_argument("--hidden", type=_hidden, metavar="SIZES",
                       help="hidden layer sizes, comma-separated (default 64; 'none' for a "
                            "linear model)")
    model.add_argument("--activation", choices=ACTIVATIONS, help="default: tanh")
    model.add_argument("--init", choices=INIT_SCHEMES, help="weight init (default: "
                                                            "xavier_uniform)")
    model.add_argument("--dropout", type=_fraction, metavar="P",
                       help="dropout after each hidden layer (default 0)")
    opt = p.add_argument_group("training")
    opt.add_argument("--loss", choices=("ce", "mse"),
                     help="ce (cross-entropy) or mse (one-hot targets for classification); "
                          "default ce for classification, mse for regression")
    opt.add_argument("--optimizer", choices=tuple(OPTIMIZERS), help="default: adamw")
    opt.add_argument("--lr", type=_positive_float, help="learning rate (default per optimizer)")
    opt.add_argument("--weight-decay", type=_non_negative_float, metavar="WD",
                     help="weight decay (default 0.3 for adamw, else 0)")
    opt.add_argument("--scheduler", choices=SCHEDULERS, help="lr schedule (default: none)")
    opt.add_argument("--epochs", type=positive_int, help="maximum epochs (default 300)")
    opt.add_argument("--batch-size", type=positive_int, help="default 16")
    opt.add_argument("--patience", type=non_negative_int,
                     help="stop after this many epochs without a better validation loss "
                          "(default 40; 0 disables early stopping)")
    opt.add_argument("--grad-clip", type=_positive_float, metavar="NORM",
                     help="clip the gradient norm (default: no clipping)")
    opt.add_argument("--on-nonfinite", choices=("raise", "warn"),
                     help="a NaN/inf loss stops training with an error (raise, default) or "
                          "with a warning, keeping the best model so far (warn)")
    opt.add_argument("--seed", type=non_negative_int, help="random seed (default 0)")
    run = p.add_argument_group("run directory")
    run.add_argument("--out", metavar="DIR",
                     help="run directory (default ./runs/<data>-<timestamp>); an existing "
                          "non-empty directory is refused unless --overwrite")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing run in --out (only once training succeeded)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue a saved run exactly from its last checkpoint (only "
                          "--epochs may be changed)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_common(p)
    p.set_defaults(run=run_train)


def _options(args: argparse.Namespace) -> Any:
    from scratchnn.recipes import TabularOptions

    names = ("data", "target", "task", "hidden", "activation", "init", "dropout", "loss",
             "optimizer", "lr", "weight_decay", "scheduler", "epochs", "batch_size", "seed",
             "out", "val_fraction", "test_fraction", "on_nonfinite", "grad_clip")
    kwargs = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.patience is not None:
        kwargs["patience"] = args.patience or None  # 0 disables early stopping
    return TabularOptions(**kwargs, overwrite=args.overwrite, progress=not args.no_progress)


def run_train(args: argparse.Namespace) -> int:
    """Train (or resume), then print the test metrics and the run directory."""
    from scratchnn.cli.main import emit_json, format_metrics, note
    from scratchnn.recipes import resume_tabular, train_tabular

    if args.resume is not None:
        ignore = _RESUME_OK | {"command", "run"}
        given = sorted(k for k, v in vars(args).items()
                       if k not in ignore and v is not None and v is not False)
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise UsageError(f"--resume continues the saved run with its own settings; it "
                             f"cannot be combined with {flags}")
        result = resume_tabular(args.resume, epochs=args.epochs, progress=not args.no_progress)
    else:
        result = train_tabular(_options(args))
    for message in result.notes:
        note(message)
    if args.json:
        emit_json(result.to_dict())
        return 0
    n = result.n_rows
    print(f"data: {result.data} ({n['train']} train, {n['val']} validation, {n['test']} test "
          f"rows), target {result.target!r}, task {result.task}")
    best = "" if result.best_epoch is None else f", best epoch {result.best_epoch}"
    print(f"trained {result.epochs_run} epochs ({result.stop_reason}{best})")
    if result.test_metrics:
        print(format_metrics(result.task, result.test_metrics, "test", result.classes))
    print(f"run directory: {result.run_dir}")
    sys.stdout.flush()
    return 0
