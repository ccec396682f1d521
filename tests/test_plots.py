"""Tests for scratchnn.training.plots."""

import os
import struct
import sys

import pytest

from scratchnn.training.plots import _split_series, plot_history

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

RECORDS = [
    {"epoch": 1, "step": 10, "train_loss": 0.9, "val_loss": 1.0, "val_accuracy": 0.6, "lr": 0.1},
    {"epoch": 2, "step": 20, "train_loss": 0.5, "val_loss": None, "val_accuracy": 0.7},
    {"epoch": 3, "step": 30, "train_loss": 0.3, "val_loss": 0.4, "train_accuracy": 0.9,
     "val_f1": float("nan"), "note": "text", "val_flag": True},
]


def _png_size(raw):
    # IHDR is the first chunk: 8-byte signature, 4-byte length, b"IHDR", width, height.
    assert raw[12:16] == b"IHDR"
    return struct.unpack(">II", raw[16:24])


def test_plot_history_writes_png_with_two_panels(tmp_path):
    path = tmp_path / "history.png"
    plot_history(RECORDS, path)
    raw = path.read_bytes()
    assert raw.startswith(PNG_SIGNATURE)
    assert _png_size(raw) == (1000, 400)  # two 5x4-inch panels at 100 dpi
    assert os.listdir(tmp_path) == ["history.png"]  # no temp file left behind


def test_plot_history_only_losses_gives_one_panel(tmp_path):
    path = tmp_path / "loss.png"
    plot_history([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}], path)
    assert _png_size(path.read_bytes()) == (500, 400)


def test_split_series_groups_keys_and_skips_missing_values():
    x_key, losses, others = _split_series(RECORDS)
    assert x_key == "epoch"
    assert losses == {
        "train_loss": [(1.0, 0.9), (2.0, 0.5), (3.0, 0.3)],
        "val_loss": [(1.0, 1.0), (3.0, 0.4)],  # None at epoch 2 skipped
    }
    # lr/note are not train_*/val_*; NaN and bools are not plottable metrics.
    assert others == {"val_accuracy": [(1.0, 0.6), (2.0, 0.7)], "train_accuracy": [(3.0, 0.9)]}


def test_split_series_falls_back_to_step_without_epoch():
    x_key, losses, _ = _split_series([{"step": 5, "train_loss": 2.0}])
    assert x_key == "step"
    assert losses == {"train_loss": [(5.0, 2.0)]}


def test_plot_history_empty_records_raises(tmp_path):
    with pytest.raises(ValueError, match="records is empty"):
        plot_history([], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"no numeric train_\*/val_\* values.*'lr'"):
        plot_history([{"epoch": 1, "lr": 0.1}], tmp_path / "x.png")
    assert os.listdir(tmp_path) == []


def test_plot_history_does_not_import_pyplot(tmp_path):
    # Smoke test of the design choice: rendering must not select a GUI backend via pyplot.
    if "matplotlib.pyplot" in sys.modules:
        pytest.skip("pyplot already imported by another test")
    plot_history(RECORDS, tmp_path / "h.png")
    assert "matplotlib.pyplot" not in sys.modules
