"""Hugging Face GPT-2 checkpoints (``model_type: gpt2``) → :class:`~scratchnn.models.gpt.GPT`.

GPT-2 stores its projections as ``Conv1D`` weights of shape (in, out); scratchnn's ``Linear``
keeps PyTorch's (out, in), so those four matrices per layer are transposed. Names appear with
or without the ``transformer.`` prefix; ``lm_head`` is tied to ``wte``; the causal-mask
buffers ``attn.bias`` / ``attn.masked_bias`` of old checkpoints are skipped.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from scratchnn.interop.common import UnsupportedModelError, check_flags, check_value

__all__ = ["GPT2_ACTIVATIONS", "build_gpt2", "gpt2_config_from_hf", "gpt2_state_from_hf"]

#: GPT-2 ``activation_function`` values that scratchnn's GPT computes (GELU, tanh form).
GPT2_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")
_CONV1D = re.compile(r"^h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")
_BUFFER = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")
#: Checkpoint names of task heads that GPT does not have; skipped and reported.
HEAD_PREFIXES = ("score.", "qa_outputs.", "multiple_choice_head.")


def gpt2_config_from_hf(hf: dict[str, Any]):
    """A ``GPTConfig`` from a GPT-2 ``config.json`` dict; refuses what GPT cannot reproduce."""
    from scratchnn.models.gpt import GPTConfig

    check_value(hf, "activation_function", GPT2_ACTIVATIONS, default="gelu_new")
    check_flags(hf, ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn",
                     "add_cross_attention", "is_decoder"))
    check_flags(hf, ("scale_attn_weights", "tie_word_embeddings"), supported=True)
    n_embd = hf.get("n_embd", 768)
    n_inner = hf.get("n_inner")
    if n_inner is not None and n_inner != 4 * n_embd:
        raise UnsupportedModelError(f"config.json field 'n_inner' = {n_inner!r} is not "
                                    f"supported (only null or 4 * n_embd = {4 * n_embd})")
    # GPT has one dropout probability; GPT-2 has three that are equal in every released model.
    drops = {k: hf.get(k, 0.1) for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop")}
    if len(set(drops.values())) > 1:
        raise UnsupportedModelError(f"config.json dropout fields differ ({drops}); scratchnn's "
                                    f"GPT has a single dropout probability")
    try:
        return GPTConfig(
            vocab_size=hf.get("vocab_size", 50257), block_size=hf.get("n_positions", 1024),
            n_layer=hf.get("n_layer", 12), n_head=hf.get("n_head", 12), n_embd=n_embd,
            dropout=drops["resid_pdrop"], bias=True,
            layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        )
    except ValueError as e:
        raise UnsupportedModelError(f"GPT-2 config.json: {e}") from None


def gpt2_state_from_hf(tensors: dict[str, np.ndarray]) -> tuple[dict, list[str]]:
    """Checkpoint arrays → (GPT state dict without ``lm_head``, checkpoint names skipped)."""
    state, skipped = {}, []
    head = None
    for key, array in tensors.items():
        name = key[len("transformer."):] if key.startswith("transformer.") else key
        if name == "lm_head.weight":
            head = array
            continue
        if _BUFFER.match(name) or name.startswith(HEAD_PREFIXES):
            skipped.append(key)
            continue
        if _CONV1D.match(name):
            if array.ndim != 2:
                raise UnsupportedModelError(f"{key} should be a 2-D Conv1D weight, got shape "
                                            f"{array.shape}")
            array = np.ascontiguousarray(array.T)  # Conv1D (in, out) → Linear (out, in)
        state[name] = array
    if head is not None:
        wte = state.get("wte.weight")
        if wte is None or head.shape != wte.shape or not np.array_equal(head, wte):
            raise UnsupportedModelError("lm_head.weight differs from wte.weight; only GPT-2 "
                                        "models with tied input and output embeddings load")
    return state, skipped


def build_gpt2(config, tensors: dict[str, np.ndarray]):
    """(GPT, the checkpoint's state dict for it, skipped checkpoint names)."""
    from scratchnn.models.gpt import GPT

    state, skipped = gpt2_state_from_hf(tensors)
    model = GPT(config, rng=np.random.default_rng(0))
    own = model.state_dict()
    if "lm_head.weight" in own and "wte.weight" in state:
        state["lm_head.weight"] = state["wte.weight"]  # tied: the same Parameter as wte
    return model, state, skipped
