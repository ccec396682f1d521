"""Acceptance test 5b: pretrain a CNN on digits 0-4, fine-tune it on digits 5-9 with 10% of
their training labels, and compare with the same model trained from scratch.

Digits 5-9 are split (stratified, seeded) into a training pool (80%) and held-out test images
(20%); 10% of the pool (stratified) are the labelled images both contenders get. Everything
goes through the CLI, on 8×8 grey PNG folders written from scikit-learn's digits:

1. ``scratchnn train --data digits04/ --model cnn`` (defaults: early stopping on validation);
2. ``scratchnn finetune RUN --data train10/ --test-data test/ --new-head`` (all weights);
3. the same command with ``--from-scratch`` (same architecture, inputs and budget, newly
   initialised weights);
4. ``scratchnn train --data train10/ --model cnn`` for the same epochs, scored with
   ``scratchnn evaluate RUN --data test/`` (the plain from-scratch recipe, own statistics).

Run: ``python benchmarks/finetune_digits_transfer.py [--seeds 0 1 2] [--epochs 30]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRATCHNN = str(Path(sys.executable).parent / "scratchnn")


def write_folders(work: Path, seed: int) -> dict[str, Path]:
    """digits04/ (all images of 0-4), train10/ and test/ (digits 5-9) as PNG folders."""
    from PIL import Image

    from scratchnn.data import load_builtin

    table = load_builtin("digits")
    pixels = np.stack([table[c] for c in table.columns if c != "target"], axis=1)
    labels = table["target"].astype(int)
    images = np.rint(pixels.reshape(-1, 8, 8) * 255 / 16).astype(np.uint8)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"digits04": [], "train10": [], "test": []}
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        if digit < 5:
            parts["digits04"] += rows.tolist()
            continue
        n_test = round(0.2 * len(rows))
        pool = rows[n_test:]
        parts["test"] += rows[:n_test].tolist()
        parts["train10"] += pool[:round(0.1 * len(pool))].tolist()
    folders = {}
    for name, rows in parts.items():
        folder = work / f"seed{seed}" / "data" / name
        for i in rows:
            sub = folder / str(labels[i])
            sub.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], "L").save(sub / f"{i}.png")
        folders[name] = folder
    return folders


def run(*args: object) -> dict:
    """Run ``scratchnn ARGS --json``; return its JSON output."""
    command = [SCRATCHNN, *map(str, args), "--json"]
    print("$ scratchnn " + " ".join(map(str, args)), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=30, help="fine-tuning/baseline epochs")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("extra", nargs="*", help="more options of the fine-tuning run only (after "
                                            "--), e.g. -- --head-lr 3e-3 --lr 1e-3")
    args = p.parse_args()
    work = ROOT / "runs" / "digits-transfer"
    table = []
    for seed in args.seeds:
        start = time.perf_counter()
        f = write_folders(work, seed)
        n_train = sum(1 for _ in f["train10"].rglob("*.png"))
        n_test = sum(1 for _ in f["test"].rglob("*.png"))
        common = ["--epochs", args.epochs, "--lr", args.lr, "--batch-size", 32, "--seed", seed,
                  "--no-progress", "--overwrite"]
        out = work / f"seed{seed}"
        pre = run("train", "--data", f["digits04"], "--model", "cnn", "--image-size", 8,
                  "--seed", seed, "--out", out / "pretrain", "--no-progress", "--overwrite")
        ft = run("finetune", out / "pretrain", "--data", f["train10"], "--test-data", f["test"],
                 "--new-head", "--val-fraction", 0, "--out", out / "finetune", *common,
                 *args.extra)
        fs = run("finetune", out / "pretrain", "--data", f["train10"], "--test-data",
                 f["test"], "--new-head", "--from-scratch", "--val-fraction", 0, "--out",
                 out / "from-scratch", *common)
        run("train", "--data", f["train10"], "--model", "cnn", "--image-size", 8,
            "--val-fraction", 0, "--test-fraction", 0, "--patience", 0, "--out",
            out / "train10", *common)
        ev = run("evaluate", out / "train10", "--data", f["test"])
        row = (seed, pre["metrics"]["accuracy"], n_train, n_test, ft["metrics"]["accuracy"],
               fs["metrics"]["accuracy"], ev["metrics"]["accuracy"],
               time.perf_counter() - start)
        table.append(row)
        print(f"seed {seed}: digits 0-4 test accuracy {row[1]:.4f}; digits 5-9 with {n_train} "
              f"labelled images, {n_test} test images: fine-tuned {row[4]:.4f}, from scratch "
              f"(--from-scratch) {row[5]:.4f}, from scratch (train) {row[6]:.4f}; "
              f"{row[7]:.0f} s", flush=True)
    acc = np.array([r[4:7] for r in table])
    print(f"mean over seeds {args.seeds}: fine-tuned {acc[:, 0].mean():.4f}, from scratch "
          f"(--from-scratch) {acc[:, 1].mean():.4f}, from scratch (train) "
          f"{acc[:, 2].mean():.4f}")


if __name__ == "__main__":
    main()
