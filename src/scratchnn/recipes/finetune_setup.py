"""Set up a model for fine-tuning: the classifier on top of FROM, LoRA, what is frozen, the
unfreezing schedule and the optimizer's param groups."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scratchnn import finetune as ft
from scratchnn.errors import UsageError
from scratchnn.finetune.heads import GPTClassifier
from scratchnn.models import GPT, BertClassifier, BertModel
from scratchnn.recipes.finetune_models import build_architecture, drop_unused_pooler, spec_of

__all__ = ["DEFAULT_LORA_TARGETS", "LORA_TRAINABLE", "build_classifier", "default_lora_targets",
           "make_optimizer", "parse_unfreeze_schedule", "setup_training"]

#: LoRA's targets when --lora-targets is not given, per architecture.
DEFAULT_LORA_TARGETS: dict[str, list[str]] = {
    "bert_classifier": ["*.attention.self.query", "*.attention.self.key",
                        "*.attention.self.value"],
    "gpt_classifier": ["*.attn.c_attn"],
    "gpt": ["*.attn.c_attn"],
}
#: Parameter patterns that stay trainable in a LoRA run (with the head).
LORA_TRAINABLE = ["*.lora_A", "*.lora_B"]

Echo = Callable[[str], None]


def build_classifier(model: Any, num_labels: int, new_head: bool, head_init: str | None,
                     pooling: str | None, dropout: float | None,
                     rng: np.random.Generator) -> Any:
    """FROM's model as a classifier with ``num_labels`` outputs.

    A BERT encoder gets a :class:`BertClassifier` (pooling 'mean' by default), a GPT a
    :class:`GPTClassifier` (pooling 'last'); other models keep their head unless
    ``new_head`` (a fresh one, ``head_init`` scheme). Raises UsageError on options that do
    not apply.
    """
    if isinstance(model, BertModel):
        model = BertClassifier(num_labels=num_labels, pooling=pooling or "mean",
                               dropout=dropout, rng=rng, encoder=model)
    elif isinstance(model, GPT):
        model = GPTClassifier(model, num_labels, pooling or "last", dropout or 0.0, rng=rng)
    else:
        if pooling is not None:
            valid = {BertClassifier: ("cls", "mean", "pooler"), GPTClassifier: ("last", "mean")}
            choices = valid.get(type(model))
            if choices is None or pooling not in choices:
                raise UsageError(f"--pooling {pooling} does not apply to "
                                 f"{type(model).__name__}" + (f" (choose {', '.join(choices)})"
                                                              if choices else ""))
            if pooling == "pooler" and model.bert.pooler is None:
                raise UsageError("--pooling pooler needs BERT's pooler, which this model "
                                 "does not have")
            model.pooling = pooling
        if dropout is not None:
            if not hasattr(model, "num_labels"):
                raise UsageError(f"--dropout applies to BERT and GPT classifiers, not to "
                                 f"{type(model).__name__}")
            model.dropout.p = float(dropout)
        if new_head:
            ft.replace_head(model, num_labels, init=head_init or "default", rng=rng)
            head_init = None
    if head_init is not None:
        ft.replace_head(model, num_labels, init=head_init, rng=rng)
    drop_unused_pooler(model)
    return model


def default_lora_targets(model: Any) -> list[str]:
    """LoRA targets for the architecture, or UsageError asking for --lora-targets."""
    name = spec_of(model)["name"]
    if name in DEFAULT_LORA_TARGETS:
        return DEFAULT_LORA_TARGETS[name]
    layout = ft.model_layout(model)
    candidates = [n for n in ft.linear_module_names(model) if n != layout.head_module]
    if name == "mlp" and candidates:
        return candidates
    raise UsageError(f"no default LoRA targets for a {name} model; pass --lora-targets "
                     f"PATTERN (Linear modules: {', '.join(ft.linear_module_names(model))})")


def parse_unfreeze_schedule(text: str) -> list[tuple[int, list[str]]]:
    """'1:classifier,2:bert.encoder.layer.5+bert.encoder.layer.4' → [(epoch, patterns)]."""
    stages: dict[int, list[str]] = {}
    for item in text.split(","):
        epoch, sep, patterns = item.strip().partition(":")
        try:
            number = int(epoch)
        except ValueError:
            number = 0
        names = [p for p in patterns.split("+") if p]
        if not sep or number < 1 or not names:
            raise UsageError(f"--unfreeze-schedule entries are EPOCH:PATTERN[+PATTERN...] with "
                             f"EPOCH >= 1, comma-separated; got {item.strip()!r}")
        stages.setdefault(number, []).extend(names)
    return sorted(stages.items())


def _check_patterns(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a freezing helper; its 'matches nothing' ValueError becomes a UsageError."""
    try:
        return fn(*args)
    except ValueError as e:
        raise UsageError(str(e)) from None


def setup_training(model: Any, opts: Any, rng: np.random.Generator, echo: Echo
                   ) -> tuple[list[str], ft.GradualUnfreezer | None]:
    """Apply LoRA and freezing as ``opts`` says; return (LoRA modules, unfreezer or None)."""
    modules: list[str] = []
    if opts.lora_rank is not None:
        targets = list(opts.lora_targets) or default_lora_targets(model)
        alpha = opts.lora_alpha if opts.lora_alpha is not None else 2.0 * opts.lora_rank
        modules = _check_patterns(ft.apply_lora, model, targets, opts.lora_rank, alpha,
                                  opts.lora_dropout, rng)
        echo(f"LoRA (rank {opts.lora_rank}, alpha {alpha:g}) on {len(modules)} modules: "
             f"{', '.join(modules)}")
        head = ft.model_layout(model).head
        ft.freeze_all_but(model, LORA_TRAINABLE + head)
    if opts.freeze:
        _check_patterns(ft.freeze, model, list(opts.freeze))
    if opts.freeze_first is not None:
        _check_patterns(ft.freeze_first_blocks, model, opts.freeze_first)
    if opts.freeze_bn_stats:
        names = ft.freeze_batchnorm_stats(model)
        if not names:
            raise UsageError("--freeze-bn-stats: the model has no BatchNorm layer")
    unfreezer = None
    if opts.unfreeze_schedule:
        stages = parse_unfreeze_schedule(opts.unfreeze_schedule)
        unfreezer = _check_patterns(
            lambda: ft.GradualUnfreezer(model, [p for _, p in stages],
                                        schedule={i: e - 1 for i, (e, _) in enumerate(stages)},
                                        freeze_bn_stats=opts.freeze_bn_stats))
    return modules, unfreezer


def make_optimizer(model: Any, name: str, lr: float, weight_decay: float,
                   head_lr: float | None, layer_decay: float | None,
                   include_frozen: bool) -> Any:
    """An optimizer over ``param_groups`` (head lr, layer-wise decay, no decay on 1-D)."""
    from scratchnn import optim

    if not include_frozen and not any(p.requires_grad for p in model.parameters()):
        raise UsageError("every parameter is frozen, so nothing would train; check --freeze, "
                         "--freeze-first and --unfreeze-schedule")
    try:
        groups = ft.param_groups(model, lr, head_lr=head_lr, layer_decay=layer_decay,
                                 weight_decay=weight_decay, include_frozen=include_frozen)
    except ValueError as e:
        raise UsageError(str(e)) from None
    classes = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD,
               "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}
    kwargs: dict[str, Any] = {"lr": lr}
    if name == "sgd":
        kwargs["momentum"] = 0.9
    return classes[name](groups, **kwargs)


def fresh_copy(model: Any, rng: np.random.Generator) -> Any:
    """The same architecture with newly initialised weights (the from-scratch baseline)."""
    return build_architecture(spec_of(model), rng)


def head_names(model: Any) -> Sequence[str]:
    """The output head's parameter names."""
    return ft.model_layout(model).head
