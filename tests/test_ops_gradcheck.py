"""Float64 central-difference gradient check of every op case (see op_cases.py)."""

from __future__ import annotations

import pytest

from gradcheck import gradcheck
from op_cases import CASES

GRADCHECK_CASES = [c for c in CASES if c.gradcheck]


def test_case_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda c: c.name)
def test_gradcheck(case):
    rng = case.rng()
    inputs = case.make_inputs(rng)
    flags = case.differentiable_flags(inputs)
    if not any(flags):
        pytest.skip("no differentiable input")
    gradcheck(case.fn, inputs, flags, rng)
