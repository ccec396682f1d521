"""Pretrain a GPT language model on a text file or folder, and resume such a run exactly.

``pretrain`` reads the text, builds the tokenizer (characters of the whole text, byte-level
BPE trained on the training part, or a given tokenizer file), encodes and splits the tokens
(first 90% train, last 10% validation), and trains a GPT on random context windows with
AdamW (weight decay on tensors of two or more dimensions only), a linear warm-up then cosine
decay, and gradient-norm clipping. Every ``eval_interval`` steps (and at the end) it measures
the validation loss on a fixed, seeded set of windows (the same windows at every evaluation
and in every run with the same seed, so numbers are comparable), logs it to ``metrics.jsonl``
and saves a checkpoint; every ``sample_interval`` steps it samples a text.

The run directory holds ``config.json``, ``tokenizer.json``, ``model.safetensors`` (the latest
weights), ``last.safetensors`` + ``optimizer.safetensors`` + ``trainer_state.json`` (optimizer,
schedule, step and RNG states: ``resume_pretrain`` continues bit for bit), ``metrics.jsonl``
(evaluations and samples) and ``curves.png``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from scratchnn.autograd.grad_mode import no_grad
from scratchnn.data.lm import (
    TextSource,
    encode_ids,
    encode_text,
    eval_starts,
    read_text,
    sample_batch,
    split_ids,
    windows_at,
)
from scratchnn.data.tokenizers import BPETokenizer, CharTokenizer, Tokenizer, load_tokenizer
from scratchnn.errors import CheckpointError, NonFiniteLossError, ScratchnnError, UsageError
from scratchnn.models.generation import generate
from scratchnn.models.gpt import GPT, GPTConfig
from scratchnn.nn.utils import clip_grad_norm_
from scratchnn.optim import AdamW, param_groups_for_weight_decay
from scratchnn.optim.lr_scheduler import LinearWarmupCosine
from scratchnn.recipes.options import check_ints, flag
from scratchnn.serialization import save_json
from scratchnn.training import checkpoint as ckpt
from scratchnn.training.plots import plot_history
from scratchnn.training.rundir import MetricsLog, RunDir, default_run_dir, read_metrics

__all__ = ["BETAS", "LMOptions", "LMResult", "RECIPE", "TOKENIZER_FILE", "evaluate_loss",
           "lm_rngs", "perplexity", "pretrain", "resume_pretrain"]

RECIPE = "lm"
TOKENIZER_FILE = "tokenizer.json"
#: AdamW's moment decay rates (nanoGPT's for small character models: beta2 0.99, since each
#: step sees few tokens).
BETAS = (0.9, 0.99)
#: Tokens generated for each periodic sample.
SAMPLE_TOKENS = 200
_POSITIVE = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "steps",
             "eval_interval", "eval_batches")

Echo = Callable[[str], None]


@dataclass
class LMOptions:
    """What ``scratchnn lm pretrain`` can set (defaults: the ``gpt`` benchmark workload)."""

    text: str
    tokenizer: str = "char"
    vocab_size: int | None = None
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    block_size: int = 128
    dropout: float = 0.0
    batch_size: int = 16
    steps: int = 1000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int | None = None  # None: min(100, steps // 10)
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # 0: no clipping
    eval_interval: int = 100
    eval_batches: int = 20
    sample_interval: int = 500  # 0: no samples
    val_fraction: float = 0.1
    seed: int = 0
    out: str | None = None
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_ints(self, _POSITIVE, optional=False)
        check_ints(self, ("sample_interval", "seed"), minimum=0, optional=False)
        if self.vocab_size is not None and self.tokenizer != "bpe":
            raise UsageError("--vocab-size applies to --tokenizer bpe only")
        if self.n_embd % self.n_head:
            raise UsageError(f"--n-embd ({self.n_embd}) must be divisible by --n-head "
                             f"({self.n_head})")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"--dropout must be in [0, 1), got {self.dropout!r}")
        if not 0 <= self.val_fraction < 1:
            raise UsageError(f"--val-fraction must be in [0, 1), got {self.val_fraction!r}")
        if not self.lr > 0:
            raise UsageError(f"--lr must be > 0, got {self.lr!r}")
        if not 0 <= self.min_lr <= self.lr:
            raise UsageError(f"--min-lr must be in [0, --lr={self.lr}], got {self.min_lr!r}")
        for name in ("weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise UsageError(f"{flag(name)} must be >= 0, got {getattr(self, name)!r}")
        if self.warmup_steps is None:
            self.warmup_steps = min(100, self.steps // 10)
        elif not 0 <= self.warmup_steps < self.steps:
            raise UsageError(f"--warmup-steps must be in [0, --steps={self.steps}), got "
                             f"{self.warmup_steps!r}")


@dataclass
class LMResult:
    """What a pretraining run reports (``to_dict`` for ``--json``)."""

    run_dir: Path
    data: str
    tokenizer: str
    vocab_size: int
    n_tokens: dict[str, int]
    n_params: int
    steps: int
    train_loss: float | None
    val_loss: float | None
    val_perplexity: float | None
    seconds: float
    tokens_per_sec: float | None
    stop_reason: str
    sample: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "run_dir": str(self.run_dir)}


def lm_rngs(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators: model (init and dropout), training batches, the fixed
    evaluation windows, and samples."""
    model, batches, evals, sample = np.random.SeedSequence(seed).spawn(4)
    return {"model": np.random.default_rng(model), "batches": np.random.default_rng(batches),
            "eval": np.random.default_rng(evals), "sample": np.random.default_rng(sample)}


def perplexity(loss: float | None) -> float | None:
    """``exp(loss)`` (None for None; capped where exp would overflow)."""
    return None if loss is None else math.exp(min(loss, 700.0))


def evaluate_loss(model: GPT, batches: Iterable[tuple[np.ndarray, np.ndarray]]
                  ) -> tuple[float, int]:
    """Mean next-token cross-entropy (nats/token) over every target of ``batches``, and the
    number of targets; the model is run in eval mode and put back in train mode."""
    total, count = 0.0, 0
    model.eval()
    try:
        with no_grad():
            for x, y in batches:
                _, loss = model(x, y)
                total += float(loss.item()) * y.size
                count += y.size
    finally:
        model.train()
    return total / count, count


def _make_tokenizer(spec: str, vocab_size: int | None, text: str, val_fraction: float
                    ) -> tuple[Tokenizer, str]:
    """(the tokenizer, its kind: 'char', 'bpe' or 'file')."""
    if spec == "char":
        return CharTokenizer.from_text(text), "char"
    if spec == "bpe":
        train_part = text[:len(text) - int(round(len(text) * val_fraction))]
        return BPETokenizer.train([train_part], vocab_size=vocab_size or 1000), "bpe"
    return load_tokenizer(spec), "file"


def _config(opts: LMOptions, source: TextSource, tokenizer: Tokenizer, kind: str
            ) -> dict[str, Any]:
    model = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=opts.block_size,
                      n_layer=opts.n_layer, n_head=opts.n_head, n_embd=opts.n_embd,
                      dropout=opts.dropout)
    return {
        "format": "scratchnn.run", "version": 1, "recipe": RECIPE,
        "data": {"path": str(source.path.resolve()), "files": len(source.files),
                 "n_chars": len(source.text), "sha256": source.fingerprint(),
                 "val_fraction": opts.val_fraction},
        "tokenizer": {"kind": kind, "source": opts.tokenizer,
                      "vocab_size": tokenizer.vocab_size},
        "model": {"name": "gpt", "config": model.to_dict()},
        "optimizer": {"name": "adamw", "lr": opts.lr, "betas": list(BETAS), "eps": 1e-8,
                      "weight_decay": opts.weight_decay},
        "schedule": {"name": "linear_warmup_cosine", "warmup_steps": opts.warmup_steps,
                     "min_lr": opts.min_lr},
        "training": {k: getattr(opts, k) for k in (
            "batch_size", "steps", "grad_clip", "eval_interval", "eval_batches",
            "sample_interval")},
        "seed": opts.seed,
        "versions": ckpt.versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def pretrain(options: LMOptions, *, echo: Echo | None = None,
             stop_after: int | None = None) -> LMResult:
    """Pretrain a GPT as ``options`` say and save the run (see the module docstring).

    Args:
        options: the run's settings.
        echo: called with each evaluation line and sample (e.g. print to stderr).
        stop_after: stop (resumably, with a checkpoint) after this step.

    Raises:
        UsageError, ValueError, FileNotFoundError: bad options or text (named in the message).
        RunDirExistsError: the run directory is not empty and ``overwrite`` is not set.
        NonFiniteLossError: the loss became NaN or infinite (the message names the step).
    """
    source = read_text(options.text)
    tokenizer, kind = _make_tokenizer(options.tokenizer, options.vocab_size, source.text,
                                      options.val_fraction)
    config = _config(options, source, tokenizer, kind)
    splits = _prepare(config, tokenizer, source)  # bad data fails before any folder is made
    run = RunDir(options.out or default_run_dir(source.name), options.overwrite)
    try:
        run.create()
        tokenizer.save(run.path / TOKENIZER_FILE)
        result = _run(run.path, config, tokenizer, splits, False, options.progress, echo,
                      stop_after)
        result.run_dir = run.commit()
    except BaseException:
        run.discard()
        raise
    return result


def resume_pretrain(run_dir: str | Path, progress: bool = True, *, echo: Echo | None = None,
                    stop_after: int | None = None) -> LMResult:
    """Continue a saved ``lm`` run exactly from its last checkpoint, on the same text."""
    run_dir = Path(run_dir)
    config = ckpt.read_run_config(run_dir)
    if config.get("recipe") != RECIPE:
        raise ScratchnnError(f"{run_dir / ckpt.CONFIG_FILE} is not a language-model run "
                             f"config ('scratchnn lm pretrain' writes those)")
    source = read_text(config["data"]["path"])
    if source.fingerprint() != config["data"]["sha256"]:
        raise ScratchnnError(f"the text {source.path} changed since the run started (sha256 "
                             f"differs); resuming on other text would not be exact")
    try:
        tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot load the run's tokenizer: {e}") from None
    splits = _prepare(config, tokenizer, source)
    return _run(run_dir, config, tokenizer, splits, True, progress, echo, stop_after)


def _prepare(config: dict[str, Any], tokenizer: Tokenizer, source: TextSource
             ) -> tuple[np.ndarray, np.ndarray]:
    """The encoded training and validation tokens, checked against the block size."""
    ids = encode_ids(encode_text(tokenizer, source.text, f"the text {source.path}"),
                     tokenizer.vocab_size)
    train_ids, val_ids = split_ids(ids, config["data"]["val_fraction"])
    block = config["model"]["config"]["block_size"]
    for name, part in (("training", train_ids), ("validation", val_ids)):
        if (name == "training" or config["data"]["val_fraction"] > 0) \
                and len(part) < block + 1:
            raise ValueError(f"the {name} split of {source.path} has {len(part)} tokens; "
                             f"windows of --block-size {block} need at least {block + 1} "
                             f"(a longer text or a smaller block size)")
    config["data"].update(n_tokens=len(ids), n_train=len(train_ids), n_val=len(val_ids))
    return train_ids, val_ids


def _run(run_dir: Path, config: dict[str, Any], tokenizer: Tokenizer,
         splits: tuple[np.ndarray, np.ndarray], resume: bool, progress: bool,
         echo: Echo | None, stop_after: int | None) -> LMResult:
    """Build everything from ``config``, train in ``run_dir`` (new or resumed), report."""
    train_ids, val_ids = splits
    if not resume:
        save_json(run_dir / ckpt.CONFIG_FILE, config)
    tr, echo = config["training"], echo or (lambda message: None)
    B, T, steps = tr["batch_size"], config["model"]["config"]["block_size"], tr["steps"]
    rngs = lm_rngs(config["seed"])
    model = GPT(GPTConfig.from_dict(config["model"]["config"]), rng=rngs["model"])
    opt = config["optimizer"]
    optimizer = AdamW(param_groups_for_weight_decay(model, opt["weight_decay"]), lr=opt["lr"],
                      betas=tuple(opt["betas"]), eps=opt["eps"])
    sched = config["schedule"]
    scheduler = LinearWarmupCosine(optimizer, sched["warmup_steps"], steps, sched["min_lr"])
    scheduler.step()  # step t (1-based) uses lr(t): lr(1) > 0, lr(warmup) = lr, lr(N) = min_lr
    starts = (eval_starts(len(val_ids), tr["eval_batches"], B, T, rngs["eval"])
              if len(val_ids) else None)  # (eval_batches, B), the same at every evaluation
    saved_rngs = {k: rngs[k] for k in ("model", "batches", "sample")}
    log = MetricsLog(run_dir / ckpt.METRICS_FILE)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "loss_sum": 0.0, "loss_count": 0,
                             "elapsed": 0.0}
    if resume:
        loaded = ckpt.load_training_state(run_dir, model=model, optimizer=optimizer,
                                          scheduler=scheduler, rngs=saved_rngs)
        state.update({k: loaded[k] for k in state})
        path = run_dir / ckpt.METRICS_FILE
        records = read_metrics(path) if path.exists() else []
        log.records = [r for r in records if r.get("step", 0) <= state["step"]]

    def save() -> None:
        log.flush()
        meta = {"model": config["model"], "step": str(state["step"])}
        ckpt.save_model(run_dir / ckpt.MODEL_FILE, model, meta)
        ckpt.save_training_state(run_dir, model=model, optimizer=optimizer,
                                 scheduler=scheduler, rngs=saved_rngs, state=state)
        if any("train_loss" in r for r in log.records):
            plot_history(log.records, run_dir / ckpt.CURVES_FILE)

    def evaluate() -> float:
        batches = (windows_at(val_ids, row, T) for row in starts)
        return evaluate_loss(model, batches)[0]

    session_start, session_steps, step_time = time.perf_counter(), 0, 0.0
    stop_reason = "completed"
    finished = state["step"] >= steps  # a resumed run with nothing left to train
    bar = tqdm(total=steps, initial=state["step"], desc="pretrain", unit="step",
               file=sys.stderr, disable=not progress or finished, leave=False,
               dynamic_ncols=True)
    model.train()
    try:
        while state["step"] < steps:
            t0 = time.perf_counter()
            x, y = sample_batch(train_ids, B, T, rngs["batches"])  # (B, T), (B, T)
            lr = optimizer.param_groups[0]["lr"]
            _, loss = model(x, y)
            value = float(loss.item())
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"the training loss became {value} at step {state['step'] + 1}; try a "
                    f"lower --lr or --grad-clip (the run resumes from its last checkpoint)")
            optimizer.zero_grad()
            loss.backward()
            if tr["grad_clip"]:
                clip_grad_norm_(model.parameters(), tr["grad_clip"])
            optimizer.step()
            scheduler.step()
            step = state["step"] = state["step"] + 1
            state["loss_sum"] += value
            state["loss_count"] += 1
            dt = time.perf_counter() - t0
            state["elapsed"] += dt
            step_time += dt
            session_steps += 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}")
            last = step == steps
            record: dict[str, Any] = {"step": step}
            if step % tr["eval_interval"] == 0 or last:
                record.update(tokens=step * B * T,
                              train_loss=state["loss_sum"] / state["loss_count"], lr=lr,
                              time=state["elapsed"])
                state["loss_sum"], state["loss_count"] = 0.0, 0
                line = f"step {step}: train loss {record['train_loss']:.4f}"
                if starts is not None:
                    record["val_loss"] = evaluate()
                    record["val_perplexity"] = perplexity(record["val_loss"])
                    line += (f", val loss {record['val_loss']:.4f} (perplexity "
                             f"{record['val_perplexity']:.2f})")
                echo(f"{line}, lr {lr:.3g}")
            interval = tr["sample_interval"]
            if interval and (step % interval == 0 or last):
                prompt = train_ids[:1].astype(np.int64)  # the corpus's first token
                out = generate(model, prompt, SAMPLE_TOKENS, rng=rngs["sample"])
                record["sample"] = tokenizer.decode(out.numpy())
                echo(f"sample at step {step}:\n{record['sample']}")
            if len(record) > 1:
                log.append(record)
            if len(record) > 1 or step == stop_after:
                save()
            if step == stop_after and not last:
                stop_reason = f"stopped after step {step} (resumable)"
                break
    finally:
        bar.close()
    result = _result(run_dir, config, model, log.records, state["step"], stop_reason,
                     time.perf_counter() - session_start,
                     session_steps * B * T / step_time if step_time else None)
    if finished:
        result.notes.append(f"nothing to do: {run_dir} already trained all its {steps} steps "
                            f"(--resume continues an interrupted run); to train longer, start "
                            f"a new run with a larger --steps, or fine-tune this one with "
                            f"'scratchnn finetune'")
    return result


def _result(run_dir: Path, config: dict[str, Any], model: GPT, records: list[dict[str, Any]],
            step: int, stop_reason: str, seconds: float, tokens_per_sec: float | None
            ) -> LMResult:
    evals = [r for r in records if "train_loss" in r]
    last = evals[-1] if evals else {}
    samples = [r["sample"] for r in records if "sample" in r]
    data = config["data"]
    return LMResult(
        run_dir=run_dir, data=data["path"], tokenizer=config["tokenizer"]["kind"],
        vocab_size=config["tokenizer"]["vocab_size"],
        n_tokens={"train": data["n_train"], "val": data["n_val"]},
        n_params=sum(p.data.size for p in model.parameters()), steps=step,
        train_loss=last.get("train_loss"), val_loss=last.get("val_loss"),
        val_perplexity=last.get("val_perplexity"), seconds=seconds,
        tokens_per_sec=tokens_per_sec, stop_reason=stop_reason,
        sample=samples[-1] if samples else None)
