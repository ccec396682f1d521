"""The depth layout of a model: stem (embeddings), ordered blocks, top, and output head.

Freezing by depth, layer-wise learning-rate decay and head replacement all need to know which
parameters sit how deep. ``model_layout`` answers per model family:

========================  =================  ======================  ===========  ============
family                    stem (depth 0)     blocks (depth 1..n)     top          head
========================  =================  ======================  ===========  ============
GPT                       ``wte``, ``wpe``   ``h.{i}``               ``ln_f``     (tied: none)
GPTClassifier             ``gpt.wte/wpe``    ``gpt.h.{i}``           ``gpt.ln_f`` ``score``
BertModel                 ``embeddings``     ``encoder.layer.{i}``   ``pooler``   (none)
BertClassifier            ``bert.embed...``  ``bert.encoder...``     pooler       ``classifier``
MLP                       (none)             each hidden Linear      (none)       last Linear
CNN                       (none)             each conv block, then   (none)       last Linear
                                             each hidden head Linear
RNNModel                  ``embedding``      recurrent layer ``l``   (none)       ``head``
anything else             root's own params  top-level children      (none)       last child
========================  =================  ======================  ===========  ============

A CNN conv block is a ``Conv2d`` with the BatchNorm that follows it; an RNN layer ``l`` holds
``*_l{l}`` and ``*_l{l}_reverse``. The generic fallback takes the model's top-level children
with parameters in order: the last is the head, the others are blocks. LoRA wrappers keep
their module's place (``h.3.attn.c_attn.lora_A`` is in block ``h.3``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from scratchnn import nn
from scratchnn.nn.lora import LoRALinear

__all__ = ["ModelLayout", "model_layout"]

_LINEAR = (nn.Linear, LoRALinear)


@dataclass
class ModelLayout:
    """Parameter names (as in ``named_parameters``) grouped by depth.

    Attributes:
        family: the detected family ("gpt", "gpt_classifier", "bert", "bert_classifier",
            "mlp", "cnn", "rnn" or "generic").
        stem: depth 0 (embeddings), below every block.
        blocks: block ``i`` (1-based depth ``i``) is ``blocks[i - 1]``; ``block_names`` name them.
        block_names: module prefixes of the blocks, e.g. ``"h.0"``.
        top: after the last block, before the head (final norm, pooler).
        head: the output layer's parameters.
        head_module: dotted name of the output layer module (None when it has no own params).
    """

    family: str
    stem: list[str] = field(default_factory=list)
    blocks: list[list[str]] = field(default_factory=list)
    block_names: list[str] = field(default_factory=list)
    top: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    head_module: str | None = None

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    def depth_of(self) -> dict[str, int]:
        """Parameter name → depth: stem 0, block i → i, top n+1; the head is left out."""
        depth = {name: 0 for name in self.stem}
        for i, names in enumerate(self.blocks, start=1):
            depth.update({name: i for name in names})
        depth.update({name: self.n_blocks + 1 for name in self.top})
        return depth


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _by_prefix(names: list[str], stem: list[str], blocks: list[str], top: list[str],
               head: str | None, family: str) -> ModelLayout:
    """Assign each parameter to the first group whose module prefix holds it.

    Parameters outside every listed prefix go to the stem when they come (in registration
    order) before the first block's, else to the top, so every parameter has a depth.
    """
    layout = ModelLayout(family, blocks=[[] for _ in blocks], block_names=list(blocks),
                         head_module=head)
    seen_block = False
    for name in names:
        if head is not None and _under(name, head):
            layout.head.append(name)
        elif any(_under(name, p) for p in stem):
            layout.stem.append(name)
        elif (i := next((i for i, p in enumerate(blocks) if _under(name, p)), None)) is not None:
            layout.blocks[i].append(name)
            seen_block = True
        elif any(_under(name, p) for p in top) or seen_block:
            layout.top.append(name)
        else:
            layout.stem.append(name)
    return layout


def _linear_names(model: nn.Module, prefix: str) -> list[str]:
    """Names of the Linear (or LoRA-wrapped) modules under ``prefix``, in order."""
    root = model.get_submodule(prefix)
    dot = f"{prefix}." if prefix else ""
    return [dot + n for n, m in root.named_modules()
            if isinstance(m, _LINEAR) and not n.endswith(".base")]


def _cnn_blocks(model: nn.Module) -> list[list[str]]:
    """Per conv block, its module names: each Conv2d with what follows until the next one."""
    blocks: list[list[str]] = []
    for key, m in model.features.named_children():
        if isinstance(m, nn.Conv2d) or not blocks:
            blocks.append([])
        blocks[-1].append(f"features.{key}")
    return blocks


def _rnn_layout(model: nn.Module, names: list[str]) -> ModelLayout:
    layers = model.config.num_layers
    layout = ModelLayout("rnn", blocks=[[] for _ in range(layers)],
                         block_names=[f"rnn.l{i}" for i in range(layers)], head_module="head")
    for name in names:
        match = re.fullmatch(r"rnn\.\w+_l(\d+)(_reverse)?", name)
        if _under(name, "head"):
            layout.head.append(name)
        elif match:
            layout.blocks[int(match.group(1))].append(name)
        else:
            layout.stem.append(name)
    return layout


def model_layout(model: nn.Module) -> ModelLayout:
    """The depth layout of ``model`` (see the module docstring for each family)."""
    from scratchnn.finetune.heads import GPTClassifier
    from scratchnn.models import CNN, GPT, MLP, BertClassifier, BertModel, RNNModel

    names = [n for n, _ in model.named_parameters()]
    if isinstance(model, GPT):
        blocks = [f"h.{i}" for i in range(len(model.h))]
        return _by_prefix(names, ["wte", "wpe"], blocks, ["ln_f"], None, "gpt")
    if isinstance(model, GPTClassifier):
        blocks = [f"gpt.h.{i}" for i in range(len(model.gpt.h))]
        return _by_prefix(names, ["gpt.wte", "gpt.wpe"], blocks, ["gpt.ln_f"], "score",
                          "gpt_classifier")
    if isinstance(model, (BertModel, BertClassifier)):
        cls = isinstance(model, BertClassifier)
        p = "bert." if cls else ""
        encoder = model.bert if cls else model
        blocks = [f"{p}encoder.layer.{i}" for i in range(len(encoder.encoder.layer))]
        return _by_prefix(names, [f"{p}embeddings"], blocks, [f"{p}pooler"],
                          "classifier" if cls else None,
                          "bert_classifier" if cls else "bert")
    if isinstance(model, MLP):
        linears = _linear_names(model, "net")
        return _by_prefix(names, [], linears[:-1], [], linears[-1], "mlp")
    if isinstance(model, CNN):
        linears = _linear_names(model, "head")
        layout = _by_prefix(names, [], [], [], linears[-1], "cnn")
        groups = _cnn_blocks(model) + [[n] for n in linears[:-1]]
        layout.block_names = [g[0] for g in groups]
        layout.blocks = [[n for n in names if any(_under(n, m) for m in g)] for g in groups]
        layout.stem = [n for n in layout.stem if not any(n in b for b in layout.blocks)]
        return layout
    if isinstance(model, RNNModel):
        return _rnn_layout(model, names)
    children = [n for n, m in model.named_children() if any(True for _ in m.parameters())]
    if not children:
        return _by_prefix(names, [], [], [], None, "generic")
    return _by_prefix(names, [], children[:-1], [], children[-1], "generic")
