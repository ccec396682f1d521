"""``from_pretrained``: a scratchnn model (and tokenizer) from a Hugging Face model folder.

The folder holds ``config.json`` and ``model.safetensors`` (or sharded safetensors with an
index), as written by ``save_pretrained(..., safe_serialization=True)``, and optionally a
``tokenizer.json``. Weights are read with scratchnn's own safetensors reader (no PyTorch, no
pickle) and converted to float32. Supported: ``model_type`` ``gpt2`` → ``models.gpt.GPT`` and
``bert`` → ``models.bert.BertModel``. Anything the scratchnn model would not compute exactly
(another architecture, relative positions, cross-attention, ...) is refused with an
:class:`UnsupportedModelError` naming the config field and its value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from scratchnn.errors import CheckpointError
from scratchnn.interop.common import UnsupportedModelError, load_hf_tensors, load_weights
from scratchnn.serialization import load_json

__all__ = ["SUPPORTED_MODEL_TYPES", "Pretrained", "UnsupportedModelError", "from_pretrained"]


SUPPORTED_MODEL_TYPES = ("bert", "gpt2")


def _converters(model_type: str) -> tuple[Any, Any]:
    """(config from config.json, model + state dict from config and tensors)."""
    if model_type == "bert":
        from scratchnn.interop.bert import bert_config_from_hf, build_bert

        return bert_config_from_hf, build_bert
    from scratchnn.interop.gpt2 import build_gpt2, gpt2_config_from_hf

    return gpt2_config_from_hf, build_gpt2


class Pretrained(NamedTuple):
    """What :func:`from_pretrained` returns; unpacks as ``model, tokenizer, config, ...``.

    Attributes:
        model: the scratchnn model (``GPT`` or ``BertModel``), in eval mode.
        tokenizer: an ``HFTokenizer`` when the folder has ``tokenizer.json``, else None.
        config: the scratchnn config (``GPTConfig`` or ``BertConfig``).
        hf_config: the folder's ``config.json`` as a dict.
        skipped: checkpoint names not loaded: task heads and buffers the model derives.
    """

    model: Any
    tokenizer: Any
    config: Any
    hf_config: dict[str, Any]
    skipped: list[str]


def from_pretrained(path: str | os.PathLike, tokenizer: bool = True,
                    pad_token: str | None = None) -> Pretrained:
    """Load a Hugging Face GPT-2 or BERT folder into scratchnn (see the module doc).

    Args:
        path: the model folder (config.json + model.safetensors [+ tokenizer.json]).
        tokenizer: also load ``tokenizer.json`` when it exists.
        pad_token: the tokenizer's padding token (GPT-2 has none of its own).

    Raises:
        FileNotFoundError: the folder, its config.json or its safetensors file is missing.
        UnsupportedModelError: the architecture or a config field is not supported.
        CheckpointError: weight names or shapes do not match the config (all listed).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder}")
    hf = load_json(folder / "config.json")
    if not isinstance(hf, dict):
        raise UnsupportedModelError(f"{folder / 'config.json'} is not a JSON object")
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModelError(
            f"config.json field 'model_type' = {model_type!r} is not supported (supported: "
            f"{', '.join(repr(t) for t in SUPPORTED_MODEL_TYPES)})")
    config_from_hf, build = _converters(model_type)
    config = config_from_hf(hf)  # refuse unsupported configs before reading the weights
    model, state, skipped = build(config, load_hf_tensors(folder))
    load_weights(model, state, folder)
    model.eval()
    tok = None
    if tokenizer and (folder / "tokenizer.json").is_file():
        from scratchnn.data.tokenizers import HFTokenizer

        tok = HFTokenizer.from_file(folder / "tokenizer.json", pad_token=pad_token)
        if tok.vocab_size > config.vocab_size:
            raise CheckpointError(
                f"{folder / 'tokenizer.json'} has {tok.vocab_size} tokens but the model's "
                f"vocab_size is {config.vocab_size}; they do not belong together")
    return Pretrained(model, tok, config, hf, skipped)

