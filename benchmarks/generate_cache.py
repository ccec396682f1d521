"""Decoding speed with and without a key/value cache: scratchnn against PyTorch, same work.

The model is the ``gpt`` workload of the benchmark doc (vocab 65, context 128, 4 layers, 4
heads, width 256), randomly initialised, in scratchnn and as a Hugging Face ``GPT2LMHeadModel``
in PyTorch. Each side samples ``--tokens`` tokens after a 6-token prompt, one sequence, with
the same context policy as ``scratchnn.models.generate``: a full window slides forward by half
a block, and without the cache every token recomputes the whole window. The four runs
(scratchnn cached / uncached, PyTorch cached / uncached) alternate, so a noisy machine slows
all of them alike; medians are printed with the cache's speed-up on each side and the ratio
``torch_s / scratchnn_s`` (above 1: scratchnn is faster).

Run: ``python benchmarks/generate_cache.py [--tokens 200] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from scratchnn.models import GPT, GPTConfig, generate

THREADS = 2
PROMPT = [1, 2, 3, 4, 5, 6]


def torch_generate(model: GPT2LMHeadModel, n_new: int, block_size: int, use_cache: bool,
                   seed: int) -> list[int]:
    """Sample ``n_new`` tokens with scratchnn's window policy, in PyTorch."""
    gen = torch.Generator().manual_seed(seed)
    out = list(PROMPT)
    start, past = 0, None
    with torch.no_grad():
        for _ in range(n_new):
            n = len(out)
            if n - start > block_size:
                start, past = n - block_size // 2, None
            if past is not None:
                # The cache holds positions start..n-2: feed the newest token at position n-1.
                ids = torch.tensor([out[n - 1:]])
                pos = torch.tensor([[n - 1 - start]])
                result = model(ids, cache=past, position_ids=pos, use_cache=True)
            else:
                ids = torch.tensor([out[start:]])
                result = model(ids, use_cache=use_cache)
            past = result.cache if use_cache else None
            probs = torch.softmax(result.logits[0, -1], dim=-1)
            out.append(int(torch.multinomial(probs, 1, generator=gen)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(THREADS)
    config = GPTConfig()  # the benchmark doc's gpt workload
    ours = GPT(config, rng=np.random.default_rng(args.seed))
    theirs = GPT2LMHeadModel(GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.n_embd,
        n_layer=config.n_layer, n_head=config.n_head, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
        eos_token_id=0)).eval()
    prompt = np.array(PROMPT)

    runs = {
        ("scratchnn", True): lambda: generate(ours, prompt, args.tokens,
                                              rng=np.random.default_rng(args.seed)),
        ("scratchnn", False): lambda: generate(ours, prompt, args.tokens, use_cache=False,
                                               rng=np.random.default_rng(args.seed)),
        ("torch", True): lambda: torch_generate(theirs, args.tokens, config.block_size, True,
                                                args.seed),
        ("torch", False): lambda: torch_generate(theirs, args.tokens, config.block_size, False,
                                                 args.seed),
    }
    for run in runs.values():  # warm-up
        run()
    seconds: dict[tuple[str, bool], list[float]] = {key: [] for key in runs}
    for _ in range(args.repeats):
        for key, run in runs.items():
            t = time.perf_counter()
            run()
            seconds[key].append(time.perf_counter() - t)
    med = {key: float(np.median(v)) for key, v in seconds.items()}
    print(f"{args.tokens} tokens after a {len(PROMPT)}-token prompt, GPT {config.n_layer} layers "
          f"x {config.n_embd}, context {config.block_size}; medians of {args.repeats} "
          f"alternating runs; torch {torch.__version__} ({THREADS} threads)")
    print(f"{'':10s} {'cached s':>9s} {'uncached s':>11s} {'cache speed-up':>15s}")
    for side in ("scratchnn", "torch"):
        cached, uncached = med[(side, True)], med[(side, False)]
        print(f"{side:10s} {cached:9.3f} {uncached:11.3f} {uncached / cached:14.2f}x")
    print(f"torch_s / scratchnn_s: cached {med[('torch', True)] / med[('scratchnn', True)]:.2f}, "
          f"uncached {med[('torch', False)] / med[('scratchnn', False)]:.2f}")


if __name__ == "__main__":
    main()
