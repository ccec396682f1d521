"""Plot a training history (rows of ``metrics.jsonl``) to a PNG file.

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly rather than ``pyplot``: no GUI
backend is selected, no global figure registry is touched, and nothing leaks between calls.
"""

from __future__ import annotations

import io
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scratchnn.serialization import atomic_write_bytes

__all__ = ["plot_history"]

_PREFIXES = ("train_", "val_")


def _number(value: Any) -> float | None:
    # bool is an Integral but a flag, not a metric; NaN/inf would wreck the axis limits.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _split_series(
    records: Sequence[Mapping[str, Any]],
) -> tuple[str, dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
    """Group ``train_*``/``val_*`` values into (x_key, loss series, other metric series).

    The x axis is ``epoch``; if no record has one, ``step``. Records without a usable x value,
    and keys whose value is missing, None, non-numeric or non-finite, are skipped.
    """
    x_key = "epoch" if any(_number(r.get("epoch")) is not None for r in records) else "step"
    losses: dict[str, list[tuple[float, float]]] = {}
    others: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        x = _number(record.get(x_key))
        if x is None:
            continue
        for key, raw in record.items():
            if not key.startswith(_PREFIXES):
                continue
            y = _number(raw)
            if y is None:
                continue
            group = losses if key.endswith("loss") else others
            group.setdefault(key, []).append((x, y))
    return x_key, losses, others


def plot_history(records: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> None:
    """Draw losses and the other ``train_*``/``val_*`` metrics against epoch into a PNG.

    One subplot holds the losses (``train_loss``, ``val_loss``, ...), another the remaining
    numeric ``train_*``/``val_*`` metrics; a group with no values gets no subplot. The file is
    written atomically.

    Raises:
        ValueError: ``records`` is empty or holds no numeric ``train_*``/``val_*`` values.
    """
    if len(records) == 0:
        raise ValueError("cannot plot history: records is empty (no metrics were logged)")
    x_key, losses, others = _split_series(records)
    panels = [(title, s) for title, s in (("loss", losses), ("metrics", others)) if s]
    if not panels:
        keys = sorted({k for r in records for k in r})
        raise ValueError("cannot plot history: no numeric train_*/val_* values with an "
                         f"'epoch' or 'step' in {len(records)} records (keys: {keys})")

    fig = Figure(figsize=(5.0 * len(panels), 4.0), dpi=100)
    FigureCanvasAgg(fig)  # attaches itself to fig; keeps rendering off pyplot's global state
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, series) in zip(axes, panels, strict=True):
        for key, points in series.items():
            # Sort by x so rows logged out of order (e.g. after a resume) draw a clean line.
            points = sorted(points)
            ax.plot([x for x, _ in points], [y for _, y in points], marker="o",
                    markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel(x_key)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
