"""``summary``: a table of a model's modules, output shapes and parameter counts."""

from __future__ import annotations

import numpy as np

from scratchnn.autograd.grad_mode import no_grad
from scratchnn.autograd.tensor import Tensor
from scratchnn.nn.module import Module


def _shape_text(out) -> str:
    if isinstance(out, (Tensor, np.ndarray)):
        return str(tuple(out.shape))
    if isinstance(out, (tuple, list)):
        return ", ".join(_shape_text(o) for o in out)
    if isinstance(out, dict):
        return ", ".join(f"{k}: {_shape_text(v)}" for k, v in out.items())
    return type(out).__name__


def _output_shapes(model: Module, input_shape: tuple[int, ...], dtype) -> dict[int, str]:
    """id(module) → its output shape text, from one forward pass on zeros in eval mode.

    The pass runs under ``no_grad`` in eval mode (so dropout draws no random numbers) and
    every module's training flag is restored afterwards.
    """
    if dtype is None:
        floats = [p.dtype for p in model.parameters() if p.dtype.kind == "f"]
        dtype = floats[0] if floats else np.float32
    x = Tensor(np.zeros(tuple(input_shape), dtype=np.dtype(dtype)))
    shapes: dict[int, str] = {}
    modes = [(m, m.training) for m in model.modules()]

    def record(module, inputs, out):
        shapes[id(module)] = _shape_text(out)

    handles = [m.register_forward_hook(record) for m, _ in modes]
    try:
        model.eval()
        with no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    return shapes


def summary(model: Module, input_shape: tuple[int, ...] | None = None, dtype=None) -> str:
    """A text table: one row per module (indented by depth), its own parameter count and,
    when ``input_shape`` is given (batch dim included), its output shape.

    ``dtype`` sets the dtype of the zero input (default: the model's float dtype; pass
    ``"int64"`` for models that take token ids). A parameter shared by several modules is
    counted once, in the first module that holds it.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary needs a Module, got {type(model).__name__}")
    shapes = _output_shapes(model, input_shape, dtype) if input_shape is not None else None
    named = list(model.named_modules())
    if len(named) > 1:
        named = named[1:]  # the children describe the model; the root is the title
    seen: set[int] = set()
    rows = []
    for name, module in named:
        count = 0
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                count += p.numel()
        depth = name.count(".") if name else 0
        label = "  " * depth + (f"{name.rsplit('.', 1)[-1]} ({type(module).__name__})"
                                if name else type(module).__name__)
        row = [label, f"{count:,}"]
        if shapes is not None:
            row.insert(1, shapes.get(id(module), "-"))
        rows.append(row)
    header = ["Layer (type)", "Params"]
    if shapes is not None:
        header.insert(1, "Output shape")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    rule = "=" * len(line(header))
    total = model.num_parameters()
    trainable = model.num_parameters(trainable_only=True)
    lines = [type(model).__name__, rule, line(header), "-" * len(rule)]
    lines += [line(r) for r in rows]
    lines += [
        rule,
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
    ]
    return "\n".join(lines)
