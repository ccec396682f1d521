"""Acceptance test 5c: a character GPT pretrained on Shakespeare, fine-tuned on review
sentences, against the same model trained from scratch for the same number of steps.

1. ``scratchnn lm pretrain --text tinyshakespeare.txt`` (a small, short run);
2. ``scratchnn finetune PRETRAIN --data sentiment_sentences.csv --text-column text --steps N``
   (the sentences joined by newlines; characters the Shakespeare vocabulary lacks are
   dropped, the last 10% of the characters validate);
3. the same command with ``--from-scratch`` (same architecture, tokenizer, data, windows and
   budget, newly initialised weights).

Both validation-loss curves go into one plot, ``compare.png``, in the fine-tuning run
directory; the final losses are printed.

Run: ``python benchmarks/finetune_char_gpt.py [--pretrain-steps 600] [--steps 300]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
SCRATCHNN = str(Path(sys.executable).parent / "scratchnn")


def run(*args: object) -> dict:
    """Run ``scratchnn ARGS --json`` (progress lines on stderr); return its JSON output."""
    print("$ scratchnn " + " ".join(map(str, args)), flush=True)
    done = subprocess.run([SCRATCHNN, *map(str, args), "--json"], check=True,
                          stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout)


def curve(run_dir: Path) -> tuple[list[int], list[float]]:
    """(steps, validation losses) of a run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("val_loss") is not None]
    return [r["step"] for r in rows], [r["val_loss"] for r in rows]


def plot(runs: dict[str, Path], path: Path, title: str) -> None:
    """Both validation-loss curves in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for label, run_dir in runs.items():
        steps, losses = curve(run_dir)
        ax.plot(steps, losses, marker="o", markersize=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrain-steps", type=int, default=600)
    p.add_argument("--steps", type=int, default=300, help="fine-tuning steps (N)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    work = ROOT / "runs" / "char-gpt"
    model = ["--n-layer", 4, "--n-head", 4, "--n-embd", 128, "--block-size", 64]
    pre = run("lm", "pretrain", "--text", DATA / "tinyshakespeare.txt", *model,
              "--steps", args.pretrain_steps, "--batch-size", 16, "--eval-interval", 100,
              "--sample-interval", 0, "--seed", args.seed, "--out", work / "pretrain",
              "--overwrite", "--no-progress")
    print(f"pretrained: validation loss {pre['val_loss']:.4f} after {pre['steps']} steps, "
          f"{pre['seconds']:.0f} s", flush=True)
    common = ["--data", DATA / "sentiment_sentences.csv", "--text-column", "text", "--steps",
              args.steps, "--lr", args.lr, "--batch-size", 16, "--warmup-steps", 20,
              "--val-fraction", 0.1, "--eval-interval", 20, "--seed", args.seed,
              "--overwrite", "--no-progress"]
    ft = run("finetune", work / "pretrain", *common, "--out", work / "finetune")
    fs = run("finetune", work / "pretrain", *common, "--from-scratch", "--out",
             work / "from-scratch")
    target = work / "finetune" / "compare.png"
    plot({"fine-tuned from Shakespeare": work / "finetune",
          "from scratch": work / "from-scratch"}, target,
         f"char GPT on review sentences, {args.steps} steps")
    for name, r in (("fine-tuned", ft), ("from scratch", fs)):
        print(f"{name}: validation loss {r['initial_val_loss']:.4f} -> {r['val_loss']:.4f} "
              f"nats/char after {r['steps']} steps ({r['s_per_step']:.3f} s/step)")
    print(f"plot: {target}")


if __name__ == "__main__":
    main()
