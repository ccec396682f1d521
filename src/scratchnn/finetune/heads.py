"""New output heads for fine-tuning: ``replace_head`` per model family and ``GPTClassifier``."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from scratchnn import nn
from scratchnn.autograd.tensor import Tensor
from scratchnn.nn import init
from scratchnn.nn.lora import LoRALinear
from scratchnn.ops._operands import ensure_tensor
from scratchnn.random import resolve

__all__ = ["HEAD_INITS", "TASKS", "GPTClassifier", "replace_head"]

#: Initialisation schemes of a new head's weight (biases start at zero except for 'default').
HEAD_INITS: tuple[str, ...] = (
    "default", "zeros", "normal", "xavier_uniform", "xavier_normal", "kaiming_uniform",
    "kaiming_normal",
)
TASKS: tuple[str, ...] = ("classification", "regression")
#: Standard deviation of the 'normal' head init (GPT-2 / BERT's initializer_range).
NORMAL_STD = 0.02


class GPTClassifier(nn.Module):
    """A GPT trunk with a linear head on a pooled hidden state: ``score(dropout(pool(h)))``.

    The trunk is ``gpt`` without its LM head (``lm_head`` is unused; its weight is tied to
    ``wte`` so it costs no parameters). Sequences are right-padded: with an attention mask,
    'last' takes each row's last real token (causal attention never sees the padding after
    it) and 'mean' averages the real tokens only.

    Args:
        gpt: a (pretrained) :class:`scratchnn.models.GPT`, kept as the child ``gpt``.
        num_labels: number of outputs (classes, or targets for regression).
        pooling: 'last' (last real token) or 'mean' (mean over real tokens).
        dropout: dropout probability before the head.
        rng: generator for the head's weights and the dropout masks.

    Shape: idx (B, T) int, attention_mask (B, T) of 1/0 → logits (B, num_labels).
    """

    def __init__(self, gpt: nn.Module, num_labels: int = 2, pooling: str = "last",
                 dropout: float = 0.0, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        from scratchnn.models import GPT

        if not isinstance(gpt, GPT):
            raise TypeError(f"GPTClassifier wraps a GPT, got {type(gpt).__name__}")
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"num_labels must be a positive int, got {num_labels!r}")
        self.gpt = gpt
        self.pooling = pooling
        self.num_labels = num_labels
        self.dropout = nn.Dropout(dropout, rng=rng)
        d = gpt.config.n_embd
        self.score = nn.Linear(d, num_labels, rng=rng, dtype=gpt.wte.weight.dtype)
        init.normal_(self.score.weight, 0.0, NORMAL_STD, rng=rng)
        init.zeros_(self.score.bias)

    def hidden_states(self, idx) -> Tensor:
        """The trunk's final (LayerNorm-ed) hidden states (B, T, n_embd)."""
        g = self.gpt
        idx = ensure_tensor(idx)
        if idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise ValueError(f"GPTClassifier expects integer token ids of shape (B, T), got "
                             f"shape {tuple(idx.shape)} and dtype {idx.dtype}")
        T = idx.shape[1]
        if T > g.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {g.config.block_size}")
        return g.hidden_states(idx)  # (B, T, C)

    def forward(self, idx, attention_mask=None) -> Tensor:
        from scratchnn.models.bert import mean_pool

        h = self.hidden_states(idx)  # (B, T, C)
        B, T = h.shape[0], h.shape[1]
        if self.pooling == "mean":
            pooled = mean_pool(h, attention_mask)  # (B, C)
        else:
            if attention_mask is None:
                last = np.full(B, T - 1)
            else:
                mask = np.asarray(getattr(attention_mask, "data", attention_mask))
                if mask.shape != (B, T):
                    raise ValueError(f"attention_mask must have shape {(B, T)}, got "
                                     f"{mask.shape}")
                last = np.maximum((mask != 0).sum(axis=1) - 1, 0)
            pooled = h[np.arange(B), last]  # (B, C)
        return self.score(self.dropout(pooled))  # (B, num_labels)

    def extra_repr(self) -> str:
        return f"num_labels={self.num_labels}, pooling={self.pooling!r}"


def _init_head(layer: nn.Linear, scheme: str, rng: np.random.Generator) -> None:
    w = layer.weight
    if scheme == "default":
        return  # Linear's own: kaiming-uniform(a=√5) weight, uniform bias
    if scheme == "zeros":
        init.zeros_(w)
    elif scheme == "normal":
        init.normal_(w, 0.0, NORMAL_STD, rng=rng)
    elif scheme == "xavier_uniform":
        init.xavier_uniform_(w, rng=rng)
    elif scheme == "xavier_normal":
        init.xavier_normal_(w, rng=rng)
    elif scheme == "kaiming_uniform":
        init.kaiming_uniform_(w, a=math.sqrt(5), rng=rng)
    else:
        init.kaiming_normal_(w, nonlinearity="linear", rng=rng)
    if layer.bias is not None:
        init.zeros_(layer.bias)


def _head_location(model: nn.Module) -> tuple[str, str | None, str | None]:
    """(head module name, config field or attribute holding the output count, its kind)."""
    from scratchnn.models import CNN, GPT, MLP, BertClassifier, BertModel, RNNModel

    if isinstance(model, GPT):
        raise TypeError("a GPT's head is its tied language-model head; for classification or "
                        "regression wrap it: GPTClassifier(gpt, num_labels, pooling='last')")
    if isinstance(model, BertModel):
        raise TypeError("a BertModel has no head; wrap it: BertClassifier(encoder=bert, "
                        "num_labels=...)")
    if isinstance(model, GPTClassifier):
        return "score", "num_labels", "attr"
    if isinstance(model, BertClassifier):
        return "classifier", "num_labels", "attr"
    if isinstance(model, RNNModel):
        return "head", "num_outputs", "config"
    from scratchnn.finetune.layout import _linear_names

    if isinstance(model, MLP):
        return _linear_names(model, "net")[-1], "out_features", "config"
    if isinstance(model, CNN):
        return _linear_names(model, "head")[-1], "num_classes", "config"
    names = _linear_names(model, "")
    if not names:
        raise ValueError(f"{type(model).__name__} has no Linear layer to replace")
    return names[-1], None, None


def replace_head(model: nn.Module, num_outputs: int, task: str = "classification",
                 init: str = "default", rng: np.random.Generator | None = None) -> list[str]:
    """Swap the model's output layer for a fresh trainable ``Linear`` with ``num_outputs``.

    The head is, per family: MLP — the last Linear; CNN — the last Linear of ``head``;
    RNNModel — ``head``; BertClassifier — ``classifier``; GPTClassifier — ``score``; any other
    model — its last Linear in module order. A bare GPT or BertModel raises TypeError naming
    the wrapper to use. The new layer keeps the old one's input width, bias and dtype; the
    model's config (or ``num_labels``) is updated so it rebuilds with the new width, and
    ``model.head_task`` records ``task`` for the training recipe (loss choice).

    Args:
        model: the model, changed in place.
        num_outputs: classes (or 1 logit for binary) / regression targets.
        task: 'classification' or 'regression'.
        init: one of :data:`HEAD_INITS`; 'zeros' makes the first predictions uniform/zero.
        rng: generator for the new weights.

    Returns:
        The new head's parameter names (e.g. ``["classifier.weight", "classifier.bias"]``).
    """
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, (int, np.integer)) \
            or num_outputs < 1:
        raise ValueError(f"num_outputs must be a positive int, got {num_outputs!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if init not in HEAD_INITS:
        raise ValueError(f"unknown head init {init!r}; valid schemes are: "
                         f"{', '.join(HEAD_INITS)}")
    name, field, kind = _head_location(model)
    old = model.get_submodule(name)
    if isinstance(old, LoRALinear):
        old = old.base
    rng = resolve(rng)
    head = nn.Linear(old.in_features, int(num_outputs), bias=old.bias is not None, rng=rng,
                     dtype=old.weight.dtype)
    _init_head(head, init, rng)
    parent, _, child = name.rpartition(".")
    model.get_submodule(parent).add_module(child, head)
    if kind == "attr":
        setattr(model, field, int(num_outputs))
    elif kind == "config":
        model.config = dataclasses.replace(model.config, **{field: int(num_outputs)})
    model.head_task = task
    return [f"{name}.{p}" for p, _ in head.named_parameters()]
