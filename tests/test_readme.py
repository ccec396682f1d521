"""The README's Python examples run as written (each in a fresh namespace and folder)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, tmp_path, monkeypatch, capsys):
    for module in re.findall(r"^import (\w+)$", code, re.MULTILINE):
        if module not in ("numpy", "scratchnn"):
            pytest.importorskip(module)  # e.g. the MiniLM package, installed by make test
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(os.environ, "HF_HUB_OFFLINE", "1")
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    if "training accuracy" in code:  # the iris example learns
        accuracy = float(re.search(r"training accuracy ([0-9.]+)", printed).group(1))
        assert accuracy >= 0.9, printed
    if "save_lora" in code:  # the LoRA example fits its two sentences and saves the adapters
        assert float(re.search(r"loss ([0-9.]+)", printed).group(1)) < 0.3, printed
        assert sorted(p.name for p in (tmp_path / "my-adapter").iterdir()) == [
            "adapter.safetensors", "adapter_config.json"]
