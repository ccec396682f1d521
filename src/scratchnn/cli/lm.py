"""``scratchnn lm``: pretrain a GPT language model on text, generate from it, evaluate it."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from scratchnn.errors import UsageError
from scratchnn.recipes.options import flag

_PRETRAIN = """\
Pretrain a GPT language model on a text file, or on every .txt file of a folder.

The text is tokenized (characters by default), the first 90% of the tokens train and the last
10% validate. Each step draws --batch-size random windows of --block-size tokens (targets
shifted by one) and takes an AdamW step (weight decay on matrices only) with a linear warm-up
then cosine decay of the learning rate and gradient-norm clipping. Every --eval-interval steps
the validation loss is measured on the same seeded set of --eval-batches batches of windows
and a checkpoint is saved; every --sample-interval steps a 200-token text is sampled. The run
directory gets config.json, tokenizer.json, model.safetensors, last.safetensors,
optimizer.safetensors and trainer_state.json (to --resume exactly), metrics.jsonl (losses,
perplexity, learning rate, samples) and curves.png.
"""

_PRETRAIN_EPILOG = """\
defaults: character tokenizer; GPT with context 128, 4 layers, 4 heads, width 256, no
dropout; batch 16, 1000 steps, AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1), warm-up
min(100, steps/10) steps then cosine to 1e-4, clipping at 1.0; evaluation every 100 steps on
20 batches; a sample every 500 steps; 10% validation; seed 0; run directory
./runs/<text>-<timestamp>.

examples:
  scratchnn lm pretrain --text input.txt --out runs/shakespeare
  scratchnn lm pretrain --text corpus/ --tokenizer bpe --vocab-size 2000 --steps 5000
  scratchnn lm pretrain --resume runs/shakespeare
"""

#: Options --resume may be combined with (the rest come from the saved run).
_RESUME_OK = {"resume", "no_progress", "json", "debug", "command", "lm_command", "run"}


def _number(kind: str, low: float, strict: bool, high: float = math.inf) -> Any:
    """argparse type: a finite float > low (strict) or >= low, and <= high."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and (value > low if strict else value >= low)
                and value <= high):
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
        return value
    return parse


def _fraction(text: str) -> float:
    value = _number("a number in [0, 1)", 0.0, False)(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def add_parser(commands: Any) -> None:
    """Register ``lm`` and its sub-commands on the sub-command action ``commands``."""
    from scratchnn.cli.main import add_common

    p = commands.add_parser("lm", help="pretrain, sample from and evaluate a GPT language "
                                       "model",
                            description="Language models: pretrain a GPT on text, generate "
                                        "text from it, evaluate its loss on a text.")
    sub = p.add_subparsers(dest="lm_command", metavar="SUBCOMMAND",
                           parser_class=type(p))
    p.set_defaults(run=lambda args: _missing_subcommand(p))
    _add_pretrain(sub, add_common)
    _add_generate(sub, add_common)
    _add_evaluate(sub, add_common)


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _add_pretrain(sub: Any, add_common: Any) -> None:
    from scratchnn.cli.main import non_negative_int, positive_int

    p = sub.add_parser("pretrain", help="pretrain a GPT on a text file or folder",
                       description=_PRETRAIN, epilog=_PRETRAIN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--text", metavar="FILE|FOLDER",
                      help="a UTF-8 text file, or a folder of .txt files (required)")
    data.add_argument("--tokenizer", metavar="char|bpe|PATH",
                      help="characters (default), byte-level BPE trained on the training "
                           "text, or a tokenizer.json file")
    data.add_argument("--vocab-size", type=positive_int, metavar="N",
                      help="BPE vocabulary size (default 1000)")
    data.add_argument("--val-fraction", type=_fraction, metavar="F",
                      help="the last F of the tokens validate (default 0.1)")
    model = p.add_argument_group("model")
    model.add_argument("--n-layer", type=positive_int, metavar="N", help="default 4")
    model.add_argument("--n-head", type=positive_int, metavar="N", help="default 4")
    model.add_argument("--n-embd", type=positive_int, metavar="D", help="width (default 256)")
    model.add_argument("--block-size", type=positive_int, metavar="T",
                       help="context length in tokens (default 128)")
    model.add_argument("--dropout", type=_fraction, metavar="P", help="default 0")
    opt = p.add_argument_group("training")
    opt.add_argument("--batch-size", type=positive_int, help="windows per step (default 16)")
    opt.add_argument("--steps", type=positive_int, help="optimizer steps (default 1000)")
    opt.add_argument("--lr", type=_number("a positive number", 0.0, True),
                     help="peak learning rate (default 1e-3)")
    opt.add_argument("--min-lr", type=_number("a number >= 0", 0.0, False),
                     help="final learning rate of the cosine (default 1e-4)")
    opt.add_argument("--warmup-steps", type=non_negative_int,
                     help="linear warm-up steps (default min(100, steps/10))")
    opt.add_argument("--weight-decay", type=_number("a number >= 0", 0.0, False),
                     metavar="WD", help="AdamW decay of the matrices (default 0.1)")
    opt.add_argument("--grad-clip", type=_number("a number >= 0", 0.0, False), metavar="NORM",
                     help="clip the gradient norm (default 1.0; 0: no clipping)")
    opt.add_argument("--eval-interval", type=positive_int, metavar="STEPS",
                     help="evaluate and checkpoint every STEPS steps (default 100)")
    opt.add_argument("--eval-batches", type=positive_int, metavar="N",
                     help="validation batches per evaluation (default 20)")
    opt.add_argument("--sample-interval", type=non_negative_int, metavar="STEPS",
                     help="sample a text every STEPS steps (default 500; 0: never)")
    opt.add_argument("--seed", type=non_negative_int, help="random seed (default 0)")
    run = p.add_argument_group("run directory")
    run.add_argument("--out", metavar="DIR", help="run directory (default "
                                                  "./runs/<text>-<timestamp>)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing run in --out (only once training succeeded)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue a saved run exactly from its last checkpoint (a note "
                          "says when it already finished and there is nothing to do)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_common(p)
    p.set_defaults(run=run_pretrain)


def _add_generate(sub: Any, add_common: Any) -> None:
    from scratchnn.cli.main import non_negative_int, positive_int

    p = sub.add_parser("generate", help="generate text from a run or a GPT-2 folder",
                       description="Continue a prompt with text sampled from a language "
                                   "model: an 'lm pretrain' run directory or a Hugging Face "
                                   "GPT-2 folder (config.json, model.safetensors, "
                                   "tokenizer.json). Prints the prompt and its continuation.")
    p.add_argument("model", metavar="RUN_DIR_OR_HF_FOLDER")
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-new-tokens", type=non_negative_int, default=200,
                   help="tokens to generate (default 200)")
    p.add_argument("--temperature", type=_number("a finite number >= 0", 0.0, False),
                   default=1.0,
                   help="divides the logits; 0 is greedy (default 1)")
    p.add_argument("--top-k", type=positive_int, help="sample among the K most likely tokens")
    p.add_argument("--top-p", type=_number("a number in (0, 1]", 0.0, True, high=1.0),
                   help="sample among the most likely tokens whose probability reaches P")
    p.add_argument("--seed", type=non_negative_int, default=0, help="default 0")
    p.add_argument("--no-cache", action="store_true",
                   help="recompute the whole prefix at every step (no key/value cache)")
    add_common(p)
    p.set_defaults(run=run_generate)


def _add_evaluate(sub: Any, add_common: Any) -> None:
    from scratchnn.cli.main import positive_int

    p = sub.add_parser("evaluate", help="loss and perplexity of a model on a text",
                       description="Score every token of a text with a language model, in "
                                   "non-overlapping windows: prints the mean loss (nats per "
                                   "token) and the perplexity.")
    p.add_argument("model", metavar="RUN_DIR")
    p.add_argument("--text", required=True, metavar="FILE|FOLDER", help="the text to score")
    p.add_argument("--batch-size", type=positive_int, default=16, help="default 16")
    p.add_argument("--block-size", type=positive_int, metavar="T",
                   help="window length (default and maximum: the model's context)")
    add_common(p)
    p.set_defaults(run=run_evaluate)


def _options(args: argparse.Namespace) -> Any:
    from scratchnn.recipes.lm import LMOptions

    if args.text is None:
        raise UsageError("--text FILE|FOLDER is required (or --resume RUN_DIR)")
    names = ("text", "tokenizer", "vocab_size", "val_fraction", "n_layer", "n_head", "n_embd",
             "block_size", "dropout", "batch_size", "steps", "lr", "min_lr", "warmup_steps",
             "weight_decay", "grad_clip", "eval_interval", "eval_batches", "sample_interval",
             "seed", "out")
    kwargs = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    return LMOptions(**kwargs, overwrite=args.overwrite, progress=not args.no_progress)


def _echo(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def run_pretrain(args: argparse.Namespace) -> int:
    """Pretrain (or resume), then print the final losses and the run directory."""
    from scratchnn.cli.main import emit_json, note
    from scratchnn.recipes.lm import pretrain, resume_pretrain

    if args.resume is not None:
        given = sorted(k for k, v in vars(args).items()
                       if k not in _RESUME_OK and v is not None and v is not False)
        if given:
            flags = ", ".join(flag(k) for k in given)
            raise UsageError(f"--resume continues the saved run with its own settings; it "
                             f"cannot be combined with {flags}")
        result = resume_pretrain(args.resume, progress=not args.no_progress, echo=_echo)
    else:
        result = pretrain(_options(args), echo=_echo)
    for message in result.notes:
        note(message)
    if args.json:
        emit_json(result.to_dict())
        return 0
    n = result.n_tokens
    print(f"data: {result.data} ({n['train']:,} train / {n['val']:,} validation tokens, "
          f"{result.tokenizer} tokenizer, vocab {result.vocab_size})")
    speed = f", {result.tokens_per_sec:,.0f} tokens/s" if result.tokens_per_sec else ""
    print(f"model: GPT, {result.n_params:,} parameters; {result.steps} steps "
          f"({result.stop_reason}) in {result.seconds:.1f} s{speed}")
    if result.val_loss is not None:
        print(f"validation loss: {result.val_loss:.4f} nats/token  perplexity: "
              f"{result.val_perplexity:.3f}")
    if result.train_loss is not None:
        print(f"training loss (mean of the last interval): {result.train_loss:.4f}")
    print(f"run directory: {result.run_dir}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    """Print the prompt and its sampled continuation (timing on stderr)."""
    from scratchnn.cli.main import emit_json, note
    from scratchnn.recipes.lm_predict import generate_text, load_lm

    lm = load_lm(args.model)
    result = generate_text(lm, args.prompt, args.max_new_tokens, args.temperature, args.top_k,
                           args.top_p, args.seed, use_cache=not args.no_cache)
    if args.json:
        emit_json(result.to_dict())
        return 0
    print(result.text)
    rate = result.new_tokens / result.seconds if result.seconds else float("inf")
    note(f"generated {result.new_tokens} tokens in {result.seconds:.2f} s ({rate:.1f} "
         f"tokens/s, key/value cache {'off' if args.no_cache else 'on'})")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Print the mean loss (nats/token) and perplexity of a run on a text."""
    from scratchnn.cli.main import emit_json
    from scratchnn.recipes.lm_predict import evaluate_text, load_lm

    lm = load_lm(args.model)
    result = evaluate_text(lm, args.text, args.batch_size, args.block_size)
    if args.json:
        emit_json(result.to_dict())
        return 0
    print(f"text: {result.text} ({result.n_tokens:,} tokens scored in {result.n_windows} "
          f"windows of up to {result.block_size})")
    print(f"loss: {result.loss:.4f} nats/token  perplexity: {result.perplexity:.3f}")
    return 0
