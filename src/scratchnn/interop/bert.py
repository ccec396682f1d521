"""Hugging Face BERT checkpoints (``model_type: bert``) → :class:`~scratchnn.models.bert.BertModel`.

Handles ``BertModel`` files (no prefix, as in sentence-transformers' MiniLM), task models
(``bert.`` prefix; their heads are reported, not loaded), checkpoints without a pooler, and old
ones that name LayerNorm parameters ``gamma``/``beta``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnn.interop.common import UnsupportedModelError, check_flags, check_value
from scratchnn.models.bert import BERT_ACTIVATIONS, BertConfig, BertModel

__all__ = ["bert_config_from_hf", "bert_state_from_hf", "build_bert"]

#: Checkpoint names of task heads that BertModel does not have; skipped and reported.
HEAD_PREFIXES = ("cls.", "classifier.", "qa_outputs.")
#: Buffers that HF saves but that BertModel derives itself.
BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def bert_config_from_hf(hf: dict[str, Any]) -> BertConfig:
    """A :class:`BertConfig` from a Hugging Face ``config.json`` dict; refuses what BertModel
    cannot reproduce (relative positions, decoders, cross-attention, unknown activations)."""
    check_value(hf, "position_embedding_type", ("absolute",), default="absolute")
    check_flags(hf, ("is_decoder", "add_cross_attention"))
    check_value(hf, "hidden_act", tuple(BERT_ACTIVATIONS), default="gelu")
    defaults = BertConfig()
    fields = {name: hf.get(name, getattr(defaults, name)) for name in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "intermediate_size", "hidden_act", "hidden_dropout_prob",
        "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
        "layer_norm_eps", "pad_token_id", "initializer_range")}
    try:
        return BertConfig(**fields)
    except ValueError as e:
        raise UnsupportedModelError(f"BERT config.json: {e}") from None


def _rename(key: str) -> str:
    # TF-era checkpoints: LayerNorm.gamma / LayerNorm.beta.
    if key.endswith(".gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith(".beta"):
        return key[: -len("beta")] + "bias"
    return key


def bert_state_from_hf(tensors: dict[str, np.ndarray]) -> tuple[dict, list[str]]:
    """Checkpoint arrays → (BertModel state dict, checkpoint names skipped: heads, buffers)."""
    prefixed = any(k.startswith("bert.") for k in tensors)
    state, skipped = {}, []
    for key, array in tensors.items():
        name = key
        if prefixed:
            if not key.startswith("bert."):
                if key.startswith(HEAD_PREFIXES):
                    skipped.append(key)
                    continue
                state[key] = array  # reported as unexpected by the caller
                continue
            name = key[len("bert."):]
        elif key.startswith(HEAD_PREFIXES):
            skipped.append(key)
            continue
        if name in BUFFERS:
            skipped.append(key)
            continue
        state[_rename(name)] = array
    return state, skipped


def build_bert(config: BertConfig, tensors: dict[str, np.ndarray]):
    """(BertModel, the checkpoint's state dict for it, skipped checkpoint names)."""
    state, skipped = bert_state_from_hf(tensors)
    has_pooler = any(k.startswith("pooler.") for k in state)
    model = BertModel(config, rng=np.random.default_rng(0), add_pooling_layer=has_pooler)
    return model, state, skipped
