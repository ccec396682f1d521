"""Every op case against PyTorch, forward and backward, in float64 and float32.

The upstream gradient of each output is the same random projection ``r`` the gradient check
uses (drawn from the case's generator right after the inputs).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradcheck import flatten_outputs, is_float, make_tensors, projections
from op_cases import CASES

# (rtol, atol) by the precision of the arrays compared.
TOLERANCES = {np.dtype(np.float64): (1e-9, 1e-12), np.dtype(np.float32): (1e-5, 1e-6)}


def _assert_close(actual, expected, what: str) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if actual.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    # The looser tolerance when one side is float32 (a cast case compares across dtypes).
    low = min(actual.dtype, expected.dtype, key=lambda d: d.itemsize)
    rtol, atol = TOLERANCES[np.dtype(low)]
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def _params():
    for c in CASES:
        for dtype in c.dtypes:
            yield pytest.param(c, dtype, id=f"{c.name}-{np.dtype(dtype).name}")


@pytest.mark.parametrize("case, dtype", list(_params()))
def test_torch_parity(case, dtype):
    rng = case.rng()
    inputs = case.make_inputs(rng, dtype)
    flags = case.differentiable_flags(inputs)

    ours = make_tensors(inputs, flags)
    theirs = [torch.tensor(x, requires_grad=bool(d)) for x, d in zip(inputs, flags)]
    outs = flatten_outputs(case.fn(*ours))
    touts = flatten_outputs(case.torch_fn(*theirs))
    assert len(outs) == len(touts), f"{len(outs)} outputs, torch gives {len(touts)}"

    for k, (o, t) in enumerate(zip(outs, touts)):
        expected = t.detach().numpy()
        # Same dtype as torch, and no silent upcast: float32 in, float32 out.
        assert o.dtype == expected.dtype, f"output {k}: dtype {o.dtype}, torch {expected.dtype}"
        if case.keeps_dtype and is_float(expected):
            assert o.dtype == np.dtype(dtype), f"output {k}: {dtype.__name__} became {o.dtype}"
        assert o.requires_grad == t.requires_grad, f"output {k}: requires_grad differs"
        _assert_close(o.data, expected, f"output {k}")

    if not any(flags):
        return
    rs = projections(outs, rng)
    backward = [(o, t, r) for o, t, r in zip(outs, touts, rs) if t.requires_grad]
    for o, _, r in backward:
        o.backward(r, retain_graph=True)
    torch.autograd.backward([t for _, t, _ in backward],
                            [torch.from_numpy(r) for _, _, r in backward])

    for k, (x, t, d) in enumerate(zip(ours, theirs, flags)):
        if not d:
            assert x.grad is None, f"input {k} does not require grad but got one"
            continue
        if t.grad is None:
            assert x.grad is None or not np.any(x.grad.data), f"input {k}: torch has no grad"
            continue
        assert x.grad is not None, f"input {k}: no gradient, torch has one"
        assert x.grad.dtype == x.dtype, f"input {k}: grad dtype {x.grad.dtype} != {x.dtype}"
        _assert_close(x.grad.data, t.grad.numpy(), f"gradient of input {k}")
