"""The reference for ``scratchnn lm pretrain``: the same GPT, data and schedule in PyTorch.

Same model (GPT-2 blocks: pre-LayerNorm, GELU (tanh), causal attention, tied embedding; the
config of ``scratchnn lm pretrain``'s defaults), same initialisation scheme (N(0, 0.02),
residual projections N(0, 0.02/sqrt(2 n_layer)), zero biases), same tokens (scratchnn's
character tokenizer and 90/10 split), the very same training windows and fixed evaluation
windows (drawn by scratchnn's seeded generators), and the same AdamW (betas 0.9/0.99, weight
decay on matrices only), warm-up + cosine schedule (step t uses lr(t), t = 1..N) and gradient
clipping. Prints the validation loss at every evaluation, the final one and the wall time.

Run: ``python benchmarks/lm_pretrain_torch.py [--text FILE] [--steps N] [--seed S]``
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from scratchnn.data.lm import (
    encode_text,
    eval_starts,
    read_text,
    sample_batch,
    split_ids,
    windows_at,
)
from scratchnn.data.tokenizers import CharTokenizer
from scratchnn.recipes.lm import BETAS, lm_rngs

THREADS = 2


class Block(nn.Module):
    """Pre-LayerNorm transformer block with GPT-2's module names."""

    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn, self.mlp = nn.Module(), nn.Module()
        self.attn.c_attn, self.attn.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp.c_fc, self.mlp.c_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        nh = self.n_head
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(C, dim=2)  # 3 × (B, T, C)
        q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        x = x + self.attn.c_proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)
        h = F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh")  # (B, T, 4C)
        return x + self.mlp.c_proj(h)


class GPT(nn.Module):
    """GPT-2 language model with a tied output head."""

    def __init__(self, vocab: int, block: int, n_layer: int, n_head: int, d: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.h = nn.ModuleList(Block(d, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        residual_std = 0.02 / math.sqrt(2 * n_layer)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and module is not self.lm_head:
                std = residual_std if name.endswith(".c_proj") else 0.02
                nn.init.normal_(module.weight, 0.0, std)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))  # (B, T, C)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, V)


def lr_at(t: int, lr: float, min_lr: float, warmup: int, total: int) -> float:
    """The learning rate of step t (1-based): linear warm-up, then cosine to min_lr."""
    if t < warmup:
        return lr * t / warmup
    if t > total:
        return min_lr
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * (t - warmup) / (total - warmup))) / 2


def loss_of(model: nn.Module, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
    logits = model(torch.from_numpy(x))  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", default="../shared/data/tinyshakespeare.txt")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-interval", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(THREADS)
    torch.manual_seed(args.seed)
    B, T, steps = args.batch_size, args.block_size, args.steps
    warmup = min(100, steps // 10) if args.warmup_steps is None else args.warmup_steps

    source = read_text(args.text)
    tok = CharTokenizer.from_text(source.text)
    ids = np.asarray(encode_text(tok, source.text, "the text"), dtype=np.uint16)
    train_ids, val_ids = split_ids(ids, 0.1)
    rngs = lm_rngs(args.seed)  # scratchnn's generators: the very same windows
    starts = eval_starts(len(val_ids), args.eval_batches, B, T, rngs["eval"])

    model = GPT(tok.vocab_size, T, args.n_layer, args.n_head, args.n_embd)
    params = list(model.parameters())  # the tied weight once
    groups = [{"params": [q for q in params if q.ndim >= 2], "weight_decay": args.weight_decay},
              {"params": [q for q in params if q.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=BETAS, eps=1e-8)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{sum(q.numel() for q in params):,} parameters; {len(train_ids):,} train / "
          f"{len(val_ids):,} validation tokens", flush=True)

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            losses = [loss_of(model, *windows_at(val_ids, row, T)).item() for row in starts]
        model.train()
        return float(np.mean(losses))

    start, train_time, loss_sum, n = time.perf_counter(), 0.0, 0.0, 0
    val = float("nan")
    for t in range(1, steps + 1):
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(t, args.lr, args.min_lr, warmup, steps)
        x, y = sample_batch(train_ids, B, T, rngs["batches"])  # (B, T), (B, T)
        loss = loss_of(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        train_time += time.perf_counter() - t0
        loss_sum, n = loss_sum + loss.item(), n + 1
        if t % args.eval_interval == 0 or t == steps:
            val = evaluate()
            print(f"step {t}: train loss {loss_sum / n:.4f}, val loss {val:.4f} "
                  f"(perplexity {math.exp(val):.2f}), {time.perf_counter() - start:.1f} s",
                  flush=True)
            loss_sum, n = 0.0, 0
    wall = time.perf_counter() - start
    print(f"final validation loss: {val:.4f} nats/char after {steps} steps")
    print(f"wall time: {wall:.1f} s ({train_time:.1f} s in training steps, "
          f"{steps * B * T / train_time:,.0f} tokens/s)")


if __name__ == "__main__":
    main()
