"""``scratchnn predict``: apply a trained run to the rows of a CSV file or to image files."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    """Register ``predict`` on the sub-command action ``commands``."""
    from scratchnn.cli.main import add_common

    p = commands.add_parser(
        "predict", help="predict the rows of a CSV file (or image files) with a trained run",
        description="Apply a run's saved preprocessing and best model to every row of a CSV "
                    "file. The output has one row per input row: 'prediction' (in the "
                    "original label values or target units) and, for classification, a "
                    "'prob_<class>' column per class. A target column in the input is ignored. "
                    "An image-folder run takes a folder (every file under it) or a CSV with a "
                    "'path' column, and adds each file's 'path'; a text run takes a CSV with "
                    "its text column.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by 'train'")
    p.add_argument("--input", required=True, metavar="CSV|FOLDER",
                   help="the rows (or image files) to predict")
    p.add_argument("--output", required=True, metavar="CSV", help="where to write predictions")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    add_common(p)
    p.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    """Predict and say where the predictions went."""
    from scratchnn.cli.main import classifier_run_recipe, emit_json
    from scratchnn.recipes import predict_classifier, predict_run

    recipe = classifier_run_recipe(args.run_dir, "predict")
    predict = predict_classifier if recipe == "classify" else predict_run
    if recipe == "finetune":
        from scratchnn.recipes.finetune_runs import predict_finetuned as predict
    result = predict(args.run_dir, args.input, args.output, overwrite=args.overwrite)
    if args.json:
        emit_json(result)
        return 0
    n = result["n_rows"]
    print(f"wrote {n} prediction{'' if n == 1 else 's'} to {result['output']} "
          f"(columns: {', '.join(result['columns'])})")
    return 0
