"""Interop: load Hugging Face GPT-2 and BERT checkpoints (safetensors) into scratchnn models."""

from scratchnn.interop.common import UnsupportedModelError
from scratchnn.interop.huggingface import SUPPORTED_MODEL_TYPES, Pretrained, from_pretrained

__all__ = ["SUPPORTED_MODEL_TYPES", "Pretrained", "UnsupportedModelError", "from_pretrained"]
