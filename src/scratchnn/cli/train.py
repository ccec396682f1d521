"""``scratchnn train``: train an MLP, a CNN or a recurrent model on a data set."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scratchnn.errors import UsageError
from scratchnn.recipes.options import flag

_DESCRIPTION = """\
Train a model and evaluate it on held-out test rows: a multilayer perceptron on a table
(--model mlp, the default), a CNN on images (--model cnn: the built-in digits as 8x8 images,
or a folder with one subfolder of images per class), or a recurrent network (--model
rnn|lstm|gru) on a text column of a CSV file (--text-column) or on numeric sequences (digits
as 8 rows of 8 pixels, or the feature columns of a CSV in --seq-len steps).

With no arguments it trains on the built-in iris data set. The data is split (stratified for
classification, seeded) into train/validation/test rows; preprocessing (impute, standardise,
one-hot, label-encode) is fitted on the training rows only; training stops early when the
validation loss stops improving and keeps the best epoch's weights. Everything is saved in
the run directory: config.json, model.safetensors (best weights), last.safetensors,
optimizer.safetensors and trainer_state.json (to --resume exactly), preprocessing.json,
split.json, metrics.jsonl, curves.png and results.json (CNN/RNN runs add inputs.json: the
image statistics, the vocabulary or the sequence layout, fitted on the training rows only).
"""

_EPILOG = """\
defaults: hidden 64, tanh, xavier_uniform, adamw (lr 0.01, weight decay 0.3), batch size 16,
up to 300 epochs, patience 40, 15% validation and 20% test rows, seed 0. Default lr per
optimizer: adamw/adam 0.01, sgd 0.05 (momentum 0.9), rmsprop 0.003, adagrad 0.1.

CNN (images): channels 32,64, kernel 3, batch norm, max pool, relu, dropout 0.1, adamw
(lr 0.003, weight decay 0.01), batch size 32, up to 30 epochs, patience 10; image folders:
--image-size 32, --color-mode auto (L when every image is grey, else RGB), --augment (random
crops with padding and horizontal flips while training).
RNN/LSTM/GRU: hidden size 64, 1 layer, adamw (lr 0.003, weight decay 0.01), batch size 32.
Text: word tokens (lowercased runs of letters or digits), vocabulary of the training rows
only (--min-freq 2, --max-vocab 20000, <pad>=0, <unk>=1), --max-length 64 words (256 chars),
embedding 64, mean pooling over the real steps, dropout 0.5, up to 30 epochs, patience 8 on
validation accuracy; other columns of the CSV are ignored. Sequences: last-state pooling, no
dropout, up to 40 epochs, patience 10.

The run directory defaults to ./runs/<data>-<timestamp> (relative to the current directory).

examples:
  scratchnn train
  scratchnn train --data wine --hidden 64,64 --epochs 100
  scratchnn train --data houses.csv --target price --task regression --out runs/houses
  scratchnn train --resume runs/houses --epochs 500
  scratchnn train --data digits --model cnn
  scratchnn train --data digits --model lstm
  scratchnn train --data photos/ --image-size 64 --out runs/photos
  scratchnn train --data reviews.csv --text-column text --target label --model gru
"""

#: Options of the CNN and recurrent models (None when not given).
_FAMILY_ONLY = ("channels", "kernel_size", "pool", "batch_norm", "image_size", "color_mode",
                "augment", "text_column", "tokenizer", "max_length", "min_freq", "max_vocab",
                "seq_len", "embedding_dim", "hidden_size", "num_layers", "bidirectional",
                "pooling")
#: Options of the MLP only.
_MLP_ONLY = ("init", "task")

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


def _channels(text: str) -> tuple[int, ...]:
    """argparse type: '32,64' -> (32, 64), at least one block."""
    sizes = _hidden(text)
    if not sizes:
        raise argparse.ArgumentTypeError(f"expected comma-separated channel counts like "
                                         f"32,64, got {text!r}")
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
    from scratchnn.data.images import COLOR_MODES
    from scratchnn.data.text import LEVELS
    from scratchnn.models import ACTIVATIONS, INIT_SCHEMES
    from scratchnn.models.cnn import POOLS
    from scratchnn.models.rnn import POOLINGS
    from scratchnn.recipes.classify import MODEL_CHOICES
    from scratchnn.recipes.tabular import OPTIMIZERS, SCHEDULERS

    p = commands.add_parser("train", help="train an MLP, CNN or RNN/LSTM/GRU (default: MLP "
                                          "on iris)",
                            description=_DESCRIPTION, epilog=_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--data", metavar="NAME|CSV|FOLDER",
                      help="a built-in data set (iris, wine, breast_cancer, digits, diabetes), "
                           "a CSV file with a header row, or (--model cnn) a folder with one "
                           "subfolder of images per class (default: iris)")
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
    model.add_argument("--model", choices=MODEL_CHOICES,
                       help="default: lstm with --text-column, cnn for an image folder, "
                            "else mlp")
    model.add_argument("--hidden", type=_hidden, metavar="SIZES",
                       help="hidden layer sizes, comma-separated (default 64; 'none' for a "
                            "linear model)")
    model.add_argument("--activation", choices=ACTIVATIONS, help="default: tanh")
    model.add_argument("--init", choices=INIT_SCHEMES, help="weight init (default: "
                                                            "xavier_uniform)")
    model.add_argument("--dropout", type=_fraction, metavar="P",
                       help="dropout after each hidden layer (default 0)")
    cnn = p.add_argument_group("CNN and images (--model cnn)")
    cnn.add_argument("--channels", type=_channels, metavar="SIZES",
                     help="output channels of the conv blocks (default 32,64); --hidden sets "
                          "the head's hidden layers (default none)")
    cnn.add_argument("--kernel-size", type=positive_int, metavar="K", help="default 3")
    cnn.add_argument("--pool", choices=POOLS, help="2x2 pooling after each block (default max)")
    cnn.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                     help="batch norm after each conv (default on)")
    cnn.add_argument("--image-size", type=positive_int, metavar="PIXELS",
                     help="resize folder images to PIXELS x PIXELS (default 32)")
    cnn.add_argument("--color-mode", choices=COLOR_MODES,
                     help="convert folder images to L (grey) or RGB (default auto)")
    cnn.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                     help="random crops with padding and horizontal flips while training "
                          "(default: on for image folders, off for digits)")
    rnn = p.add_argument_group("recurrent models (--model rnn|lstm|gru)")
    rnn.add_argument("--text-column", metavar="COLUMN",
                     help="classify the texts of this CSV column (other columns except the "
                          "target are ignored)")
    rnn.add_argument("--tokenizer", choices=LEVELS, help="token level (default word)")
    rnn.add_argument("--max-length", type=positive_int, metavar="TOKENS",
                     help="cut texts to this many tokens (default 64 words, 256 chars)")
    rnn.add_argument("--min-freq", type=positive_int, metavar="N",
                     help="keep tokens seen at least N times in the training texts (default 2)")
    rnn.add_argument("--max-vocab", type=positive_int, metavar="N",
                     help="keep at most the N most frequent tokens (default 20000)")
    rnn.add_argument("--seq-len", type=positive_int, metavar="STEPS",
                     help="read the feature columns as STEPS steps of equal width (default: "
                          "8 for digits, else one column per step)")
    rnn.add_argument("--embedding-dim", type=positive_int, metavar="D",
                     help="token embedding size (default 64)")
    rnn.add_argument("--hidden-size", type=positive_int, metavar="H",
                     help="recurrent state size (default 64)")
    rnn.add_argument("--num-layers", type=positive_int, metavar="N", help="default 1")
    rnn.add_argument("--bidirectional", action="store_true", default=None,
                     help="also read each sequence backwards")
    rnn.add_argument("--pooling", choices=POOLINGS,
                     help="last state or mean over the real steps (default: mean for text, "
                          "last for sequences)")
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
                     help="continue a saved run exactly from its last checkpoint; only "
                          "--epochs may be given (a new total, more than the epochs already "
                          "trained). A run that stopped early is finished and is not "
                          "continued (train a new one with a larger --patience); a note says "
                          "when there is nothing to do")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_common(p)
    p.set_defaults(run=run_train)


def _family_options(args: argparse.Namespace, model: str) -> Any:
    from scratchnn.recipes import ClassifyOptions

    given = [flag(n) for n in _MLP_ONLY if getattr(args, n) is not None]
    if given:
        raise UsageError(f"options for --model mlp only: {', '.join(given)}")
    names = ("data", "target", "hidden", "activation", "dropout", "loss", "optimizer", "lr",
             "weight_decay", "scheduler", "epochs", "batch_size", "seed", "out",
             "val_fraction", "test_fraction", "on_nonfinite", "grad_clip", *_FAMILY_ONLY)
    kwargs = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.patience is not None:
        kwargs["patience"] = args.patience or None  # 0 disables early stopping
    return ClassifyOptions(model=model, **kwargs, overwrite=args.overwrite,
                           progress=not args.no_progress)


def _options(args: argparse.Namespace) -> Any:
    from scratchnn.recipes import TabularOptions

    given = [flag(n) for n in _FAMILY_ONLY if getattr(args, n) is not None]
    if given:
        verb = "does" if len(given) == 1 else "do"
        raise UsageError(f"{', '.join(given)} {verb} not apply to --model mlp; choose "
                         "--model cnn, rnn, lstm or gru")
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
    from scratchnn.recipes import (
        default_model,
        resume_classifier,
        resume_tabular,
        run_recipe,
        train_classifier,
        train_tabular,
    )

    if args.resume is not None:
        ignore = _RESUME_OK | {"command", "run"}
        given = sorted(k for k, v in vars(args).items()
                       if k not in ignore and v is not None and v is not False)
        if given:
            flags = ", ".join(flag(k) for k in given)
            raise UsageError(f"--resume continues the saved run with its own settings; it "
                             f"cannot be combined with {flags}")
        resume = resume_classifier if run_recipe(args.resume) == "classify" else resume_tabular
        result = resume(args.resume, epochs=args.epochs, progress=not args.no_progress)
    else:
        model = args.model or default_model(args.data or "iris", args.text_column)
        if model == "mlp":
            result = train_tabular(_options(args))
        else:
            result = train_classifier(_family_options(args, model))
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
