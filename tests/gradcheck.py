"""Central-difference gradient check, reusable by op, layer and loss tests.

The analytic gradient of every element of every differentiable input is compared with a
float64 central difference of ``L = sum_i (out_i * r_i).sum()``, where each ``r_i`` is a fixed
random array of the output's shape. A random projection (rather than a plain sum) catches
backward code that mixes up output positions or drops a factor that a sum would hide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import scratchnn as sn


def flatten_outputs(out) -> list:
    """The tensors in ``out``: one tensor, or (nested) lists and tuples of them."""
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in flatten_outputs(item)]
    return [out]


def is_float(array) -> bool:
    return np.asarray(array).dtype.kind == "f"


def projections(outputs: Sequence, rng: np.random.Generator) -> list:
    """A random array of each float output's shape and dtype (None for the others)."""
    return [
        rng.standard_normal(np.shape(o)).astype(np.asarray(o).dtype) if is_float(o) else None
        for o in outputs
    ]


def make_tensors(inputs: Sequence[np.ndarray], differentiable: Sequence[bool]) -> list:
    """Leaf tensors of the inputs' own dtypes; the differentiable ones require grad."""
    return [
        sn.tensor(x, dtype=np.asarray(x).dtype, requires_grad=bool(d))
        for x, d in zip(inputs, differentiable)
    ]


def _projected(fn, arrays, differentiable, rs) -> float:
    with sn.no_grad():
        outs = flatten_outputs(fn(*make_tensors(arrays, [False] * len(arrays))))
    return sum(float((np.asarray(o) * r).sum()) for o, r in zip(outs, rs) if r is not None)


def gradcheck(
    fn: Callable,
    inputs: Sequence[np.ndarray],
    differentiable: Sequence[bool],
    rng: np.random.Generator,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> None:
    """Assert that backward through ``fn`` matches central differences, element by element.

    Args:
        fn: takes one tensor per input, returns a tensor or a (nested) list/tuple of them.
        inputs: float64 arrays for the differentiable inputs; other inputs (masks, indices,
            float constants) may be any dtype and are passed as tensors without grad.
        differentiable: one flag per input; the inputs to check.
        rng: draws the projections ``r``, after any draws the caller made for the inputs.
    """
    inputs = [np.array(x) for x in inputs]  # copies: the check perturbs them in place
    if len(differentiable) != len(inputs):
        raise ValueError(f"{len(inputs)} inputs but {len(differentiable)} differentiable flags")
    for x, d in zip(inputs, differentiable):
        if d and x.dtype != np.float64:
            raise ValueError(f"gradcheck needs float64 differentiable inputs, got {x.dtype}")

    tensors = make_tensors(inputs, differentiable)
    outs = flatten_outputs(fn(*tensors))
    rs = projections(outs, rng)
    for o, r in zip(outs, rs):
        if r is not None and o.requires_grad:
            o.backward(r, retain_graph=True)

    for k, (x, t, d) in enumerate(zip(inputs, tensors, differentiable)):
        if not d:
            continue
        analytic = np.zeros_like(x) if t.grad is None else np.asarray(t.grad.data)
        assert analytic.shape == x.shape, (
            f"input {k}: gradient shape {analytic.shape}, input shape {x.shape}"
        )
        numeric = np.empty_like(x)
        flat = x.reshape(-1)  # a view: perturbing it perturbs x
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            plus = _projected(fn, inputs, differentiable, rs)
            flat[i] = orig - eps
            minus = _projected(fn, inputs, differentiable, rs)
            flat[i] = orig
            numeric.reshape(-1)[i] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(
            analytic, numeric, rtol=rtol, atol=atol,
            err_msg=f"input {k}: analytic gradient (actual) vs central difference (desired)",
        )
