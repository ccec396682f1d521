"""The ``scratchnn`` command: parse arguments, call a recipe, print the result.

Errors print one line, ``error: <message>``, on stderr (the traceback too with ``--debug``)
and exit with 2 for usage errors, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from scratchnn.errors import ScratchnnError, UsageError

__all__ = ["build_parser", "emit_json", "format_metrics", "main", "note"]


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError (printed as one line by ``main``)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


#: The recipes whose runs 'evaluate' and 'predict' take (made by 'train' and 'finetune').
_CLASSIFIER_RECIPES = ("tabular", "classify", "finetune")
#: What to run instead on a language-model run, per command ({run}: the run directory).
_LM_INSTEAD = {"evaluate": "scratchnn lm evaluate {run} --text FILE",
               "predict": "scratchnn lm generate {run} --prompt TEXT"}


def classifier_run_recipe(run_dir: str, command: str) -> str:
    """The recipe that made ``run_dir``, for ``command`` ('evaluate' or 'predict'): a run it
    cannot take (a language model, an unknown recipe) is refused by name, before loading."""
    from scratchnn.recipes import run_recipe

    recipe = run_recipe(run_dir)
    if recipe == "lm":
        instead = _LM_INSTEAD[command].format(run=run_dir)
        raise ScratchnnError(f"{run_dir} is a language-model run, which 'scratchnn {command}' "
                             f"does not take; use '{instead}'")
    if recipe not in _CLASSIFIER_RECIPES:
        raise ScratchnnError(f"{run_dir} is a {recipe!r} run; 'scratchnn {command}' takes "
                             f"runs made by 'train' or 'finetune'")
    return recipe


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every command takes: --json and --debug."""
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with the results on stdout (nothing else)")
    parser.add_argument("--debug", action="store_true",
                        help="on error, print the full traceback")


def note(message: str) -> None:
    """An informational line on stderr (stdout stays clean for --json)."""
    print(f"note: {message}", file=sys.stderr)


def emit_json(obj: Any) -> None:
    """Print ``obj`` as one JSON object on stdout."""
    print(json.dumps(obj, allow_nan=False, default=str))


def format_metrics(task: str, metrics: dict[str, Any], label: str = "test",
                   classes: Sequence[Any] | None = None) -> str:
    """Human-readable metric lines, identical for ``train`` and ``evaluate``."""
    def num(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else f"{value:.4f}"

    if task == "regression":
        return f"{label} r2: {num('r2')}  mse: {num('mse')}  mae: {num('mae')}"
    lines = [f"{label} accuracy: {num('accuracy')}  precision: {num('precision')}  "
             f"recall: {num('recall')}  f1: {num('f1')}  (macro average)"]
    cm = metrics.get("confusion_matrix")
    if cm:
        names = [str(c) for c in classes] if classes else [str(i) for i in range(len(cm))]
        width = max(max(len(n) for n in names), max(len(str(v)) for row in cm for v in row))
        lines.append("confusion matrix (rows: true class, columns: predicted class):")
        lines.append(" " * (width + 2) + " ".join(n.rjust(width) for n in names))
        for name, row in zip(names, cm):
            lines.append(f"  {name.rjust(width)} " + " ".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The ``scratchnn`` parser with its sub-commands."""
    from scratchnn import __version__
    from scratchnn.cli import evaluate, finetune, lm, lora, predict, train

    parser = ArgumentParser(
        prog="scratchnn",
        description="scratchnn: a deep-learning framework written from scratch on NumPy.",
        epilog="Run 'scratchnn COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"scratchnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     parser_class=ArgumentParser)
    for module in (train, evaluate, predict, lm, finetune, lora):
        module.add_parser(commands)
    return parser


#: Errors that describe bad input; anything else is reported as an internal error.
_EXPECTED = (ScratchnnError, ValueError, OSError)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    if not isinstance(exc, _EXPECTED) or not text:
        text = (f"internal error ({type(exc).__name__}: {text}); rerun with --debug for the "
                "traceback")
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return int(args.run(args) or 0)
    except SystemExit as e:  # --help and --version exit through argparse
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except UsageError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the CLI's last line of defence: one line, exit 1
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
