"""``scratchnn finetune``: fine-tune a trained run or a Hugging Face model on new data."""

from __future__ import annotations

import argparse
import sys
from typing import Any

_DESCRIPTION = """\
Fine-tune FROM on new data. FROM is a scratchnn run directory (an MLP, CNN or RNN made by
'train', a GPT made by 'lm pretrain', or an earlier 'finetune' run) whose preprocessing,
image statistics, vocabulary or tokenizer is reused, or a Hugging Face model folder
(config.json, model.safetensors, tokenizer.json): a BERT-family encoder gets a linear head
on the mean (or [CLS]) of its hidden states, GPT-2 a head on its last token. A GPT without
--target is fine-tuned as a language model on the text of --data.

The new data is split into train/validation/test rows (stratified, seeded), or tested on
--test-data. The trainable and total parameter counts are printed at the start, and after
the first optimizer step a trainability audit checks that every frozen tensor stayed
bit-identical and every trainable one received a gradient (a violation stops the run with
an error). LoRA runs list the adapted modules and save only the adapters and trained
tensors (adapter.safetensors, adapter_config.json), naming FROM and the SHA-256 of its
weights; 'scratchnn lora merge RUN_DIR' writes a standalone merged run. 'scratchnn
evaluate' and 'predict' work on every fine-tuned classifier; a language model fine-tuned
without --target is a language-model run ('scratchnn lm evaluate', 'lm generate').
"""

_EPILOG = """\
defaults: adamw, weight decay 0.01, batch 32, constant lr (--scheduler, --warmup-steps);
lr 3e-5 for transformers (1e-3 with LoRA), 1e-3 otherwise; 3 epochs for transformers, 20
otherwise; BERT: mean pooling, --max-length 128, dropout 0.1 before the head; LoRA: alpha 2R,
targets query/key/value (BERT) or attn.c_attn (GPT); language models: 500 steps, lr 3e-4
(1e-3 with LoRA), warm-up then cosine to lr/10, clipping at 1.0, --block-size the model's.
Patterns are globs over parameter (or, for LoRA, module) names; 'bert.encoder.layer.0'
covers everything under it.

examples:
  scratchnn finetune runs/iris --data flowers.csv --target species --new-head
  scratchnn finetune runs/digits04 --data digits59/ --new-head --freeze-first 1
  scratchnn finetune path/to/all-MiniLM-L6-v2 --data train.csv --text-column text \\
      --target label --test-data test.csv --epochs 1 --max-length 64
  scratchnn finetune path/to/all-MiniLM-L6-v2 --data train.csv --text-column text \\
      --target label --lora-rank 8 --lr 5e-4 --epochs 3
  scratchnn finetune runs/shakespeare --data sentences.txt --steps 300
  scratchnn lora merge runs/finetune-train-20260101-120000
"""

#: Options whose value is a list of patterns (given once per pattern or comma-separated).
_LISTS = ("freeze", "lora_targets")


def _patterns(text: str) -> list[str]:
    return [p for p in text.split(",") if p]


def add_parser(commands: Any) -> None:
    """Register ``finetune`` on the sub-command action ``commands``."""
    from scratchnn.cli.main import add_common, non_negative_int, positive_int
    from scratchnn.cli.train import _fraction, _non_negative_float, _positive_float
    from scratchnn.finetune.heads import HEAD_INITS
    from scratchnn.recipes.finetune_train import SCHEDULES
    from scratchnn.recipes.tabular import OPTIMIZERS

    p = commands.add_parser("finetune", help="fine-tune a run or a Hugging Face model on new "
                                             "data (full, frozen layers, or LoRA)",
                            description=_DESCRIPTION, epilog=_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="FROM", help="a scratchnn run directory or a Hugging Face "
                                                  "model folder")
    data = p.add_argument_group("data")
    data.add_argument("--data", metavar="CSV|FOLDER|TEXT", help="the new examples (required)")
    data.add_argument("--target", metavar="COLUMN", help="the label column")
    data.add_argument("--text-column", metavar="COLUMN", help="the column with the texts")
    data.add_argument("--test-data", metavar="CSV|FOLDER",
                      help="held-out examples to test on (then no test rows are split off)")
    data.add_argument("--val-fraction", type=_fraction, metavar="F", help="default 0.15")
    data.add_argument("--test-fraction", type=_fraction, metavar="F", help="default 0.2")
    data.add_argument("--max-length", type=positive_int, metavar="TOKENS",
                      help="cut texts to this many tokens (BERT/GPT; default 128)")
    what = p.add_argument_group("what trains")
    what.add_argument("--freeze", action="append", type=_patterns, metavar="PATTERN",
                      help="freeze the parameters matching PATTERN (repeatable)")
    what.add_argument("--freeze-first", type=non_negative_int, metavar="N",
                      help="freeze the embeddings and the first N blocks")
    what.add_argument("--unfreeze-schedule", metavar="EPOCH:PATTERN,...",
                      help="gradual unfreezing: the parameters of each PATTERN (join several "
                           "with '+') are frozen until epoch EPOCH (1-based), e.g. "
                           "'1:classifier,2:bert.encoder.layer.5,3:bert.encoder.layer.4'")
    what.add_argument("--freeze-bn-stats", action="store_true",
                      help="keep BatchNorm running statistics fixed")
    what.add_argument("--lora-rank", type=positive_int, metavar="R",
                      help="train rank-R LoRA adapters (and the head) instead of the weights")
    what.add_argument("--lora-alpha", type=_positive_float, metavar="A",
                      help="LoRA scale alpha/R (default alpha 2R)")
    what.add_argument("--lora-dropout", type=_fraction, metavar="P", help="default 0")
    what.add_argument("--lora-targets", action="append", type=_patterns, metavar="PATTERN",
                      help="module-name globs to adapt (repeatable)")
    what.add_argument("--new-head", action="store_true",
                      help="a new output layer for the data's label set")
    what.add_argument("--head-init", choices=HEAD_INITS, help="initialisation of a new head")
    what.add_argument("--head-lr", type=_positive_float, help="the head's lr (default --lr)")
    what.add_argument("--layer-decay", type=_positive_float, metavar="D",
                      help="layer-wise lr decay in (0, 1]: block i trains at lr*D^(n-i)")
    what.add_argument("--from-scratch", action="store_true",
                      help="re-initialise every weight: the same model trained without its "
                           "pretraining (a baseline)")
    model = p.add_argument_group("head")
    model.add_argument("--pooling", choices=("cls", "mean", "pooler", "last"),
                       help="BERT: cls, mean (default) or pooler; GPT: last (default) or mean")
    model.add_argument("--dropout", type=_fraction, metavar="P", help="dropout before the head")
    opt = p.add_argument_group("training")
    opt.add_argument("--optimizer", choices=tuple(OPTIMIZERS), help="default adamw")
    opt.add_argument("--lr", type=_positive_float)
    opt.add_argument("--weight-decay", type=_non_negative_float, metavar="WD")
    opt.add_argument("--epochs", type=positive_int)
    opt.add_argument("--batch-size", type=positive_int)
    opt.add_argument("--warmup-steps", type=non_negative_int, metavar="N")
    opt.add_argument("--scheduler", choices=SCHEDULES,
                     help="lr decay after warm-up, per step (default none)")
    opt.add_argument("--grad-clip", type=_positive_float, metavar="NORM")
    opt.add_argument("--patience", type=positive_int, help="early stopping (default off)")
    opt.add_argument("--monitor", choices=("val_loss", "val_accuracy"),
                     help="picks the best epoch (default val_loss)")
    opt.add_argument("--seed", type=non_negative_int)
    opt.add_argument("--log-every", type=positive_int, metavar="STEPS",
                     help="print the loss and s/step every STEPS steps")
    lm = p.add_argument_group("language models (a GPT without --target)")
    lm.add_argument("--steps", type=positive_int)
    lm.add_argument("--block-size", type=positive_int, metavar="T")
    lm.add_argument("--eval-interval", type=positive_int, metavar="STEPS")
    lm.add_argument("--eval-batches", type=positive_int, metavar="N")
    lm.add_argument("--min-lr", type=_non_negative_float)
    run = p.add_argument_group("run directory")
    run.add_argument("--out", metavar="DIR", help="default ./runs/finetune-<data>-<timestamp>")
    run.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_common(p)
    p.set_defaults(run=run_finetune)


def _options(args: argparse.Namespace) -> Any:
    from scratchnn.recipes.finetune import FinetuneOptions

    kwargs = {k: v for k, v in vars(args).items()
              if k not in ("command", "run", "json", "debug", "no_progress")
              and v is not None and v is not False}
    for name in _LISTS:
        if name in kwargs:
            kwargs[name] = tuple(p for group in kwargs[name] for p in group)
    return FinetuneOptions(**kwargs, progress=not args.no_progress)


def _echo(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def run_finetune(args: argparse.Namespace) -> int:
    """Fine-tune, then print the held-out metrics (or LM losses) and the run directory."""
    from scratchnn.cli.main import emit_json, format_metrics, note
    from scratchnn.recipes.finetune import finetune

    result = finetune(_options(args), echo=lambda m: None if args.json else _echo(m))
    for message in result.notes:
        note(message)
    if args.json:
        emit_json(result.to_dict())
        return 0
    share = 100 * result.trainable / result.total if result.total else 0.0
    speed = f", {result.s_per_step:.3g} s/step" if result.s_per_step else ""
    print(f"trained {result.trainable:,} of {result.total:,} parameters ({share:.2f}%); "
          f"{result.steps} steps{speed}")
    if result.task == "language_model":
        if result.val_loss is not None:
            print(f"validation loss: {result.initial_val_loss:.4f} -> {result.val_loss:.4f} "
                  f"nats/token (perplexity {result.val_perplexity:.3f})")
    else:
        n = result.n_rows
        print(f"data: {result.data} ({n['train']} train, {n['val']} validation, {n['test']} "
              f"test rows), target {result.target!r}")
        best = "" if result.best_epoch is None else f", best epoch {result.best_epoch}"
        print(f"trained {result.epochs_run} epochs ({result.stop_reason}{best})")
        if result.test_metrics:
            print(format_metrics("classification", result.test_metrics, "test",
                                 result.classes))
    print(f"run directory: {result.run_dir}")
    sys.stdout.flush()
    return 0
