"""Fine-tune a GPT language model on new text (``scratchnn finetune FROM --data TEXT``).

FROM is an ``lm pretrain`` run (or an earlier LM fine-tuning run) or a Hugging Face GPT-2
folder; the text is a file or folder of ``.txt`` files, or a CSV column (``--text-column``,
rows joined by newlines). It is encoded with FROM's tokenizer (a character tokenizer drops
characters it does not know, counted in a note), the last ``val_fraction`` of the tokens
validate, and the model trains on random windows with AdamW, a linear warm-up then cosine
decay and gradient clipping. The validation loss is measured before the first step and
every ``eval_interval`` steps on the same seeded windows. The run is an ``lm`` run
(``scratchnn lm generate`` / ``lm evaluate`` use it); a LoRA run stores the merged weights in
``model.safetensors`` and the adapters alone in ``adapter.safetensors``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from scratchnn.data import read_csv
from scratchnn.data.lm import (
    encode_ids,
    encode_text,
    eval_starts,
    read_text,
    sample_batch,
    split_ids,
    windows_at,
)
from scratchnn.errors import NonFiniteLossError, UsageError
from scratchnn.finetune import TrainabilityAudit, merge_lora, save_lora
from scratchnn.models.gpt import GPT
from scratchnn.nn.utils import clip_grad_norm_
from scratchnn.optim.lr_scheduler import LinearWarmupCosine
from scratchnn.recipes.finetune_data import TokenEncoder
from scratchnn.recipes.finetune_models import Source, spec_of
from scratchnn.recipes.finetune_setup import fresh_copy, make_optimizer, setup_training
from scratchnn.recipes.finetune_train import audit_step
from scratchnn.recipes.lm import TOKENIZER_FILE, evaluate_loss, lm_rngs, perplexity
from scratchnn.recipes.options import flag
from scratchnn.serialization import save_json
from scratchnn.training import checkpoint as ckpt
from scratchnn.training.plots import plot_history
from scratchnn.training.rundir import MetricsLog, RunDir, default_run_dir

__all__ = ["LMFinetuneResult", "finetune_lm", "read_lm_text"]

Echo = Callable[[str], None]
_CLASSIFY_ONLY = ("test_data", "new_head", "head_init", "head_lr", "pooling", "max_length",
                  "dropout", "epochs", "patience", "unfreeze_schedule")


@dataclass
class LMFinetuneResult:
    """What an LM fine-tuning run reports (``to_dict`` for ``--json``)."""

    run_dir: Path
    source: str
    data: str
    n_tokens: dict[str, int]
    trainable: int
    total: int
    steps: int
    initial_val_loss: float | None
    val_loss: float | None
    val_perplexity: float | None
    train_loss: float | None
    s_per_step: float | None
    train_seconds: float
    lora_modules: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    task: str = "language_model"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "run_dir": str(self.run_dir)}


def read_lm_text(data: str, text_column: str | None) -> tuple[str, str]:
    """(the text, its absolute path): a text file/folder, or a CSV column joined by lines."""
    path = Path(data)
    if text_column is None and path.suffix.lower() == ".csv":
        raise UsageError(f"{data} is a CSV file: pass --text-column COLUMN to fine-tune the "
                         f"language model on that column (or --target for a classifier)")
    if text_column is None:
        source = read_text(path)
        return source.text, str(source.path.resolve())
    table = read_csv(path, column_types={text_column: "categorical"})
    texts = [t for t in table[text_column].tolist() if t]
    if not texts:
        raise UsageError(f"column {text_column!r} of {data} has no text")
    return "\n".join(texts) + "\n", str(path.resolve())


def finetune_lm(opts: Any, src: Source, echo: Echo, out: RunDir | None = None
                ) -> LMFinetuneResult:
    """Fine-tune FROM's GPT on ``opts.data`` as a language model (see the module docstring).

    ``out`` is the checked ``--out`` run directory (None: a default one is claimed).
    """
    given = [n for n in _CLASSIFY_ONLY if getattr(opts, n) not in (None, False)]
    if given:
        raise UsageError(f"{', '.join(flag(n) for n in given)} apply to "
                         f"classification; a GPT without --target is fine-tuned as a language "
                         f"model")
    if opts.data is None:
        raise UsageError("--data is required: a text file or folder, or a CSV with "
                         "--text-column")
    text, data_path = read_lm_text(opts.data, opts.text_column)
    tokenizer, notes = src.tokenizer, []
    cleaner = TokenEncoder(tokenizer, 1)
    text = cleaner._clean(text)
    if cleaner.dropped:
        notes.append(f"dropped {cleaner.dropped} character(s) outside the tokenizer's "
                     f"vocabulary")
    ids = encode_ids(encode_text(tokenizer, text, f"the text {data_path}"), tokenizer.vocab_size)
    train_ids, val_ids = split_ids(ids, opts.val_fraction)
    model: GPT = src.model
    T = opts.block_size or model.config.block_size
    if T > model.config.block_size:
        raise UsageError(f"--block-size {T} exceeds the model's context of "
                         f"{model.config.block_size} tokens")
    for name, part in (("training", train_ids), ("validation", val_ids)):
        if len(part) < T + 1 and (name == "training" or opts.val_fraction > 0):
            raise UsageError(f"the {name} part of {data_path} has {len(part)} tokens; windows "
                             f"of {T} need {T + 1} (more text, or a smaller --block-size)")
    rngs = lm_rngs(opts.seed)
    if opts.from_scratch:
        model = fresh_copy(model, rngs["model"])
        notes.append("--from-scratch: FROM's architecture and tokenizer with newly "
                     "initialised weights")
    spec = spec_of(model)
    lora_modules, _ = setup_training(model, opts, rngs["model"], echo)
    lr = opts.lr if opts.lr is not None else (1e-3 if lora_modules else 3e-4)
    steps = opts.steps or 500
    warmup = min(opts.warmup_steps, steps - 1)
    optimizer = make_optimizer(model, opts.optimizer, lr, opts.weight_decay, None,
                               opts.layer_decay, include_frozen=False)
    min_lr = opts.min_lr if opts.min_lr is not None else lr / 10
    scheduler = LinearWarmupCosine(optimizer, warmup, steps, min_lr)
    scheduler.step()  # step t (1-based) uses lr(t), as in lm pretrain
    audit = TrainabilityAudit(model, optimizer)
    report = audit.report()
    echo(f"{src.describe}: {report}")
    B, interval = opts.batch_size, opts.eval_interval or max(1, steps // 20)
    starts = eval_starts(len(val_ids), opts.eval_batches or 20, B, T, rngs["eval"]) \
        if len(val_ids) > T else None
    clip = 1.0 if opts.grad_clip is None else opts.grad_clip

    def val_loss() -> float | None:
        if starts is None:
            return None
        return evaluate_loss(model, (windows_at(val_ids, row, T) for row in starts))[0]

    config = {
        "format": "scratchnn.run", "version": 1, "recipe": "lm",
        "data": {"path": data_path, "text_column": opts.text_column,
                 "val_fraction": opts.val_fraction, "n_tokens": len(ids),
                 "n_train": len(train_ids), "n_val": len(val_ids)},
        "tokenizer": {"kind": "file", "source": str(src.path / TOKENIZER_FILE),
                      "vocab_size": tokenizer.vocab_size},
        "model": spec,
        "optimizer": {"name": opts.optimizer, "lr": lr, "weight_decay": opts.weight_decay},
        "schedule": {"name": "linear_warmup_cosine", "warmup_steps": warmup, "min_lr": min_lr},
        "training": {"batch_size": B, "block_size": T, "steps": steps, "grad_clip": clip,
                     "eval_interval": interval, "eval_batches": opts.eval_batches or 20},
        "finetune": {"source": str(src.path), "origin": src.origin, "sha256": src.digest,
                     "from_scratch": opts.from_scratch, "freeze": list(opts.freeze),
                     "freeze_first": opts.freeze_first, "layer_decay": opts.layer_decay,
                     "lora": ({k: model.lora_config[-1][k] for k in ("targets", "rank",
                                                                     "alpha", "modules")}
                              if lora_modules else None)},
        "parameters": {"trainable": report.trainable, "total": report.total},
        "seed": opts.seed, "versions": ckpt.versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    run = out if out is not None else RunDir(
        opts.out or default_run_dir(f"finetune-{Path(data_path).stem}"), opts.overwrite)
    try:
        path = run.create()
        save_json(path / ckpt.CONFIG_FILE, config)
        tokenizer.save(path / TOKENIZER_FILE)
        log = MetricsLog(path / ckpt.METRICS_FILE)
        first = val_loss()
        log.append({"step": 0, "val_loss": first, "val_perplexity": perplexity(first)})
        echo(f"step 0: val loss {first:.4f}" if first is not None else "step 0")
        seconds, loss_sum, count, last_train = 0.0, 0.0, 0, None
        audit.snapshot()
        model.train()
        bar = tqdm(total=steps, desc="finetune", unit="step", file=sys.stderr,
                   disable=not opts.progress, leave=False, dynamic_ncols=True)
        try:
            for step in range(1, steps + 1):
                t0 = time.perf_counter()
                x, y = sample_batch(train_ids, B, T, rngs["batches"])  # (B, T), (B, T)
                lr_now = optimizer.param_groups[-1]["lr"]
                _, loss = model(x, y)
                value = float(loss.item())
                if not math.isfinite(value):
                    raise NonFiniteLossError(f"the training loss became {value} at step "
                                             f"{step}; try a lower --lr")
                optimizer.zero_grad()
                loss.backward()
                if clip:
                    clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
                if step == 1:
                    audit_step(audit, "after step 1")
                scheduler.step()
                seconds += time.perf_counter() - t0
                loss_sum, count = loss_sum + value, count + 1
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}")
                if step % interval == 0 or step == steps:
                    last_train = loss_sum / count
                    v = val_loss()
                    log.append({"step": step, "train_loss": last_train, "val_loss": v,
                                "val_perplexity": perplexity(v), "lr": lr_now,
                                "time": seconds, "s_per_step": seconds / step})
                    log.flush()
                    loss_sum, count = 0.0, 0
                    shown = f", val loss {v:.4f}" if v is not None else ""
                    echo(f"step {step}/{steps}: train loss {last_train:.4f}{shown}, "
                         f"{seconds / step:.3f} s/step")
        finally:
            bar.close()
        plot_history(log.records, path / ckpt.CURVES_FILE)
        if lora_modules:
            save_lora(model, path)
            merge_lora(model, replace=True)
        ckpt.save_model(path / ckpt.MODEL_FILE, model, {"model": spec, "step": str(steps)})
        final = log.records[-1]
        result = LMFinetuneResult(
            run_dir=path, source=str(src.path), data=data_path,
            n_tokens={"train": len(train_ids), "val": len(val_ids)},
            trainable=report.trainable, total=report.total, steps=steps,
            initial_val_loss=first, val_loss=final.get("val_loss"),
            val_perplexity=final.get("val_perplexity"), train_loss=last_train,
            s_per_step=seconds / steps, train_seconds=seconds, lora_modules=lora_modules,
            notes=notes)
        save_json(path / "results.json", {k: v for k, v in result.to_dict().items()
                                          if k != "run_dir"})
        result.run_dir = run.commit()
    except BaseException:
        run.discard(resumable="results.json")
        raise
    return result
