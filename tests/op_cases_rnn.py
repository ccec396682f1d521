"""Op cases for the rnn family; part of the one case table (``op_cases.CASES``)."""

from __future__ import annotations

from op_cases import OpCase


def cases() -> list[OpCase]:
    return []
