"""``scratchnn evaluate``: re-compute a run's test metrics, or score it on other data."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    """Register ``evaluate`` on the sub-command action ``commands``."""
    from scratchnn.cli.main import add_common

    p = commands.add_parser(
        "evaluate", help="metrics of a trained run on its test rows or on other data",
        description="Load a run's best model and preprocessing and compute its metrics: on "
                    "the run's own held-out test rows (the same numbers training printed), "
                    "or on every row of --data (an image folder with one subfolder per class "
                    "for an image-folder run).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by 'train'")
    p.add_argument("--data", metavar="CSV|FOLDER",
                   help="evaluate on all rows of this CSV file (it needs the target column), "
                        "or on all images of this class-per-subfolder folder")
    add_common(p)
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate and print the metrics."""
    from scratchnn.cli.main import classifier_run_recipe, emit_json, format_metrics, note
    from scratchnn.recipes import evaluate_classifier, evaluate_run

    recipe = classifier_run_recipe(args.run_dir, "evaluate")
    evaluate = evaluate_classifier if recipe == "classify" else evaluate_run
    if recipe == "finetune":
        from scratchnn.recipes.finetune_runs import evaluate_finetuned as evaluate
    result = evaluate(args.run_dir, data=args.data)
    if result["n_dropped"]:
        note(f"dropped {result['n_dropped']} row(s) with a missing target")
    if args.json:
        emit_json(result)
        return 0
    label = "test" if result["split"] == "test" else "data"
    print(f"data: {result['data']} ({result['split']} rows: {result['n_rows']})")
    print(format_metrics(result["task"], result["metrics"], label, result["classes"]))
    return 0
