"""``scratchnn lora merge``: merge a LoRA fine-tuning run's adapters into a standalone run."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> None:
    """Register ``lora`` and its sub-command ``merge`` on the sub-command action ``commands``."""
    from scratchnn.cli.main import add_common

    p = commands.add_parser("lora", help="work with LoRA fine-tuning runs (merge)",
                            description="Work with the runs 'scratchnn finetune --lora-rank' "
                                        "makes.")
    sub = p.add_subparsers(dest="lora_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(run=lambda args: _missing(p))
    m = sub.add_parser("merge", help="write a run with the adapters merged into the weights",
                       description="Rebuild a LoRA run from its base model (checked against "
                                   "the SHA-256 saved with the run), add each adapter's "
                                   "update B·A·alpha/r into its weight, and write a "
                                   "standalone run (model.safetensors; no base needed) that "
                                   "'evaluate' and 'predict' use like the LoRA run.")
    m.add_argument("run_dir", metavar="RUN_DIR", help="a LoRA run made by 'finetune'")
    m.add_argument("--out", metavar="DIR", help="the merged run (default RUN_DIR-merged)")
    m.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    add_common(m)
    m.set_defaults(run=run_merge)


def _missing(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_merge(args: argparse.Namespace) -> int:
    """Merge and say where the merged run went."""
    from scratchnn.cli.main import emit_json
    from scratchnn.recipes.finetune_runs import merge_lora_run

    out = merge_lora_run(args.run_dir, args.out, overwrite=args.overwrite)
    if args.json:
        emit_json({"run_dir": str(args.run_dir), "merged": str(out)})
        return 0
    print(f"merged run: {out}")
    return 0
