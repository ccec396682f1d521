"""BERT (Devlin et al. 2019): a post-LayerNorm Transformer encoder, and a classifier on top.

Module names mirror Hugging Face's ``BertModel`` (``embeddings.word_embeddings``,
``encoder.layer.{i}.attention.self.query``, ...), so its weights load by name.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from scratchnn import nn
from scratchnn.autograd.tensor import Tensor
from scratchnn.nn import functional as F
from scratchnn.nn import init
from scratchnn.ops import reshape, tanh, transpose
from scratchnn.ops.attention import scaled_dot_product_attention

__all__ = [
    "BERT_ACTIVATIONS", "BertClassifier", "BertConfig", "BertModel", "BertOutput", "mean_pool",
]

#: Hugging Face ``hidden_act`` names → the activation applied in the feed-forward block.
BERT_ACTIVATIONS: dict[str, Any] = {
    "gelu": lambda x: F.gelu(x, "none"),
    "gelu_new": lambda x: F.gelu(x, "tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, "tanh"),
    "relu": F.relu,
}


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


@dataclass(frozen=True)
class BertConfig:
    """Shape of a :class:`BertModel`, with Hugging Face's field names and BERT-base defaults."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            _check_int(name, getattr(self, name), 1)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_attention_heads ({self.num_attention_heads})")
        if self.hidden_act not in BERT_ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {sorted(BERT_ACTIVATIONS)}, "
                             f"got {self.hidden_act!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
                raise ValueError(f"{name} must be in [0, 1), got {p!r}")
        for name in ("layer_norm_eps", "initializer_range"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v > 0:
                raise ValueError(f"{name} must be a number > 0, got {v!r}")
        if self.pad_token_id is not None:
            _check_int("pad_token_id", self.pad_token_id, 0)
            if self.pad_token_id >= self.vocab_size:
                raise ValueError(f"pad_token_id must be < vocab_size ({self.vocab_size}), "
                                 f"got {self.pad_token_id}")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return dataclasses.asdict(self)

    asdict = to_dict  # the name the other model configs use

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BertConfig:
        """A config from a dict; unknown keys raise a ValueError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown BertConfig fields {unknown}; known: {sorted(names)}")
        return cls(**data)


class BertOutput(NamedTuple):
    """``last_hidden_state`` (B, T, D) and ``pooler_output`` (B, D) or None without a pooler."""

    last_hidden_state: Tensor
    pooler_output: Tensor | None


class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        d = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, d, config.pad_token_id, rng=rng)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, d, rng=rng)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, d, rng=rng)
        self.LayerNorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob, rng=rng)
        self.max_positions = config.max_position_embeddings

    def forward(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> Tensor:
        T = input_ids.shape[1]
        if T > self.max_positions:
            raise ValueError(f"sequence length {T} is longer than max_position_embeddings="
                             f"{self.max_positions}; truncate the input")
        x = self.word_embeddings(input_ids)  # (B, T, D)
        x = x + self.position_embeddings(np.arange(T))  # (T, D) broadcast over B
        x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention with separate query/key/value projections."""

    def __init__(self, config: BertConfig, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        d = config.hidden_size
        self.n_head = config.num_attention_heads
        self.query = nn.Linear(d, d, rng=rng)
        self.key = nn.Linear(d, d, rng=rng)
        self.value = nn.Linear(d, d, rng=rng)
        self.dropout_p = config.attention_probs_dropout_prob
        self.rng = rng

    def _heads(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        x = reshape(x, B, T, self.n_head, D // self.n_head)  # (B, T, H, hs)
        return transpose(x, 0, 2, 1, 3)  # (B, H, T, hs)

    def forward(self, x: Tensor, mask: np.ndarray | None) -> Tensor:
        B, T, D = x.shape
        q, k, v = (self._heads(proj(x)) for proj in (self.query, self.key, self.value))
        y = scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout_p if self.training else 0.0,
            rng=self.rng)  # (B, H, T, hs)
        return reshape(transpose(y, 0, 2, 1, 3), B, T, D)  # (B, T, D)


class BertResidual(nn.Module):
    """``LayerNorm(x + dropout(dense(h)))``: the projection closing each sub-block."""

    def __init__(self, in_features: int, config: BertConfig,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size, rng=rng)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob, rng=rng)

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        return self.LayerNorm(x + self.dropout(self.dense(h)))


class BertAttention(nn.Module):
    """Self-attention followed by its residual projection (``self`` and ``output``)."""

    def __init__(self, config: BertConfig, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.self = BertSelfAttention(config, rng)
        self.output = BertResidual(config.hidden_size, config, rng)

    def forward(self, x: Tensor, mask: np.ndarray | None) -> Tensor:
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    """The feed-forward block's expansion: ``act(dense(x))``."""

    def __init__(self, config: BertConfig, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size, rng=rng)
        self.act = BERT_ACTIVATIONS[config.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.dense(x))  # (B, T, intermediate_size)


class BertLayer(nn.Module):
    """One encoder layer: attention, then the feed-forward block, each post-LayerNorm."""

    def __init__(self, config: BertConfig, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.attention = BertAttention(config, rng)
        self.intermediate = BertIntermediate(config, rng)
        self.output = BertResidual(config.intermediate_size, config, rng)

    def forward(self, x: Tensor, mask: np.ndarray | None) -> Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    """A stack of :class:`BertLayer` (``layer.{i}``)."""

    def __init__(self, config: BertConfig, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config, rng) for _ in range(config.num_hidden_layers))

    def forward(self, x: Tensor, mask: np.ndarray | None) -> Tensor:
        for layer in self.layer:
            x = layer(x, mask)
        return x


class BertPooler(nn.Module):
    """``tanh(dense(h[:, 0]))``: the [CLS] position's summary of the sequence."""

    def __init__(self, config: BertConfig, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, rng=rng)

    def forward(self, hidden: Tensor) -> Tensor:
        return tanh(self.dense(hidden[:, 0]))  # (B, D)


def _as_ids(name: str, value, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.asarray(value.data if isinstance(value, Tensor) else value)
    if array.dtype.kind not in "iub" or array.ndim != 2:
        raise ValueError(f"{name} must be a (B, T) array of integers, got shape {array.shape} "
                         f"and dtype {array.dtype}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} must have the shape of input_ids {shape}, got {array.shape}")
    return array.astype(np.int64, copy=False)


class BertModel(nn.Module):
    """The BERT encoder: embeddings, ``num_hidden_layers`` layers and (optionally) the pooler.

    Args:
        config: the model's shape.
        rng: generator for the initial weights and dropout masks.
        add_pooling_layer: build the pooler (dense + tanh on [CLS]).

    Shape: input_ids (B, T) → last_hidden_state (B, T, D), pooler_output (B, D).
    """

    def __init__(self, config: BertConfig, rng: np.random.Generator | None = None,
                 add_pooling_layer: bool = True) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config, rng)
        self.encoder = BertEncoder(config, rng)
        self.pooler = BertPooler(config, rng) if add_pooling_layer else None
        self.reset_parameters(rng)

    def reset_parameters(self, rng: np.random.Generator | None = None) -> None:
        """BERT's initialisation: N(0, initializer_range) weights, zero biases, pad row zero."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                init.normal_(module.weight, 0.0, std, rng=rng)
            if isinstance(module, nn.Linear) and module.bias is not None:
                init.zeros_(module.bias)
            if isinstance(module, nn.Embedding):
                module._zero_padding_row()
            if isinstance(module, nn.LayerNorm):
                module.reset_parameters()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> BertOutput:
        """Encode ``input_ids``; ``attention_mask`` (B, T) marks real tokens 1, padding 0."""
        ids = _as_ids("input_ids", input_ids)
        types = (np.zeros_like(ids) if token_type_ids is None
                 else _as_ids("token_type_ids", token_type_ids, ids.shape))
        mask = None
        if attention_mask is not None:
            keep = _as_ids("attention_mask", attention_mask, ids.shape) != 0  # (B, T)
            mask = keep[:, None, None, :]  # (B, 1, 1, T): every query sees the real keys
        hidden = self.encoder(self.embeddings(ids, types), mask)  # (B, T, D)
        pooled = self.pooler(hidden) if self.pooler is not None else None
        return BertOutput(hidden, pooled)


def mean_pool(hidden: Tensor, attention_mask=None) -> Tensor:
    """The mean of the real tokens' vectors (sentence-transformers' mean pooling).

    Shape: hidden (B, T, D), attention_mask (B, T) of 1/0 → (B, D).
    """
    if attention_mask is None:
        return hidden.mean(axis=1)
    mask = _as_ids("attention_mask", attention_mask, tuple(hidden.shape[:2]))
    weights = mask.astype(hidden.dtype)[:, :, None]  # (B, T, 1)
    total = (hidden * weights).sum(axis=1)  # (B, D)
    count = np.maximum(weights.sum(axis=1), hidden.dtype.type(1e-9))  # (B, 1)
    return total / count


class BertClassifier(nn.Module):
    """A BERT encoder with a new linear head: ``classifier(dropout(pool(hidden)))``.

    Args:
        config: the encoder's shape (ignored when ``encoder`` is given).
        num_labels: the number of classes.
        pooling: ``"cls"`` (the [CLS] vector), ``"mean"`` (:func:`mean_pool`) or
            ``"pooler"`` (BERT's dense + tanh on [CLS]; the encoder needs its pooler).
        dropout: dropout before the head (None: the config's ``hidden_dropout_prob``).
        rng: generator for the new weights and the dropout masks.
        encoder: a (pretrained) :class:`BertModel` to use instead of a fresh one.

    Shape: input_ids (B, T) → logits (B, num_labels).
    """

    def __init__(self, config: BertConfig | None = None, num_labels: int = 2,
                 pooling: str = "cls", dropout: float | None = None,
                 rng: np.random.Generator | None = None,
                 encoder: BertModel | None = None) -> None:
        super().__init__()
        if pooling not in ("cls", "mean", "pooler"):
            raise ValueError(f"pooling must be 'cls', 'mean' or 'pooler', got {pooling!r}")
        _check_int("num_labels", num_labels, 1)
        if encoder is None:
            if config is None:
                raise ValueError("BertClassifier needs a config or an encoder")
            encoder = BertModel(config, rng, add_pooling_layer=pooling == "pooler")
        if pooling == "pooler" and encoder.pooler is None:
            raise ValueError("pooling='pooler' needs an encoder with a pooler; this one has "
                             "none (use 'cls' or 'mean')")
        self.config = encoder.config
        self.pooling = pooling
        self.num_labels = int(num_labels)
        self.bert = encoder
        p = self.config.hidden_dropout_prob if dropout is None else dropout
        self.dropout = nn.Dropout(p, rng=rng)
        self.classifier = nn.Linear(self.config.hidden_size, self.num_labels, rng=rng)
        init.normal_(self.classifier.weight, 0.0, self.config.initializer_range, rng=rng)
        init.zeros_(self.classifier.bias)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> Tensor:
        out = self.bert(input_ids, attention_mask, token_type_ids)
        if self.pooling == "pooler":
            features = out.pooler_output
        elif self.pooling == "mean":
            features = mean_pool(out.last_hidden_state, attention_mask)
        else:
            features = out.last_hidden_state[:, 0]  # (B, D)
        return self.classifier(self.dropout(features))  # (B, num_labels)

    def extra_repr(self) -> str:
        return f"num_labels={self.num_labels}, pooling={self.pooling!r}"
