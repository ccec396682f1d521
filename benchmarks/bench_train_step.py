"""Training-step benchmark: scratchnn against PyTorch on the same work, in the same run.

One step = forward + cross-entropy + backward + optimizer step on in-memory data, after 3
warm-up steps. The two frameworks alternate step by step so that a noisy machine slows both
alike; the figure that matters is the ratio ``torch_ms / scratchnn_ms`` (above 1: scratchnn is
faster). The method is the project's benchmark contract (BENCHMARKS.md in the shared docs).

Run: ``python benchmarks/bench_train_step.py [--steps N] [--workload NAME ...]``
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import scratchnn as sn
from scratchnn import nn, optim
from scratchnn.nn import functional as F

THREADS = 2


@dataclass
class Workload:
    name: str
    build: Callable  # rng -> (scratchnn_step, torch_step, model_flops_per_step)
    steps: int


def _mlp_pair(sizes, batch, make_opt_sn, make_opt_t, rng):
    """The same MLP in both frameworks (same initial weights), and one step for each."""
    layers_sn, layers_t = [], []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b, rng=rng)
        lin_t = torch.nn.Linear(a, b)
        with torch.no_grad():
            lin_t.weight.copy_(torch.from_numpy(lin.weight.data))
            lin_t.bias.copy_(torch.from_numpy(lin.bias.data))
        layers_sn.append(lin)
        layers_t.append(lin_t)
        if i < len(sizes) - 2:
            layers_sn.append(nn.ReLU())
            layers_t.append(torch.nn.ReLU())
    model, model_t = nn.Sequential(*layers_sn), torch.nn.Sequential(*layers_t)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], batch)
    opt, opt_t = make_opt_sn(model.parameters()), make_opt_t(model_t.parameters())
    xs, ys = sn.tensor(x), sn.tensor(y)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step_sn():
        opt.zero_grad()
        loss = F.cross_entropy(model(xs), ys)
        loss.backward()
        opt.step()

    def step_t():
        opt_t.zero_grad()
        loss = torch.nn.functional.cross_entropy(model_t(xt), yt)
        loss.backward()
        opt_t.step()

    flops = 6 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return step_sn, step_t, flops


def iris_mlp(rng):
    return _mlp_pair(
        (4, 100, 3), 120,
        lambda p: optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1), rng,
    )


def mlp_784(rng):
    return _mlp_pair(
        (784, 1024, 1024, 10), 256,
        lambda p: optim.AdamW(p, lr=1e-3), lambda p: torch.optim.AdamW(p, lr=1e-3), rng,
    )


def lstm(rng):
    """LSTM(32→256, batch-first) · last step · Linear(256→10) on 32 × 64 × 32, AdamW."""
    batch, steps, n_in, hidden, classes = 32, 64, 32, 256, 10
    rnn, head = nn.LSTM(n_in, hidden, batch_first=True, rng=rng), nn.Linear(hidden, classes,
                                                                             rng=rng)
    rnn_t, head_t = torch.nn.LSTM(n_in, hidden, batch_first=True), torch.nn.Linear(hidden,
                                                                                   classes)
    for ours, theirs in ((rnn, rnn_t), (head, head_t)):
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((batch, steps, n_in)).astype(np.float32)
    y = rng.integers(0, classes, batch)
    params = [*rnn.parameters(), *head.parameters()]
    opt = optim.AdamW(params, lr=1e-3)
    opt_t = torch.optim.AdamW([*rnn_t.parameters(), *head_t.parameters()], lr=1e-3)
    xs, ys = sn.tensor(x), sn.tensor(y)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step_sn():
        opt.zero_grad()
        out, _ = rnn(xs)  # (N, T, H)
        loss = F.cross_entropy(head(out[:, -1]), ys)
        loss.backward()
        opt.step()

    def step_t():
        opt_t.zero_grad()
        out, _ = rnn_t(xt)
        loss = torch.nn.functional.cross_entropy(head_t(out[:, -1]), yt)
        loss.backward()
        opt_t.step()

    # Multiply-adds: input and hidden projections of the 4 gates at every step, and the head.
    macs = batch * steps * 4 * hidden * (n_in + hidden) + batch * hidden * classes
    return step_sn, step_t, 6 * macs


def cnn_lenet(rng):
    """LeNet-like CNN on 64 × 1 × 28 × 28 inputs, AdamW (same initial weights on both sides)."""
    batch = 64
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128, rng=rng), nn.ReLU(), nn.Linear(128, 10, rng=rng),
    )
    model_t = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(3136, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10),
    )
    with torch.no_grad():
        for p, p_t in zip(model.parameters(), model_t.parameters()):
            p_t.copy_(torch.from_numpy(p.data))
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    opt_t = torch.optim.AdamW(model_t.parameters(), lr=1e-3)
    xs, ys = sn.tensor(x), sn.tensor(y)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step_sn():
        opt.zero_grad()
        loss = F.cross_entropy(model(xs), ys)
        loss.backward()
        opt.step()

    def step_t():
        opt_t.zero_grad()
        loss = torch.nn.functional.cross_entropy(model_t(xt), yt)
        loss.backward()
        opt_t.step()

    # Multiply-adds: conv = N·Ho·Wo·C_out·C_in·kh·kw; linear = N·in·out. ×2 forward, ×3 step.
    macs = (batch * 28 * 28 * 32 * 1 * 9 + batch * 14 * 14 * 64 * 32 * 9
            + batch * (3136 * 128 + 128 * 10))
    return step_sn, step_t, 6 * macs


class _TorchGPT(torch.nn.Module):
    """The ``gpt`` workload's model in PyTorch, with scratchnn's GPT module names."""

    def __init__(self, c) -> None:
        super().__init__()
        tnn, d = torch.nn, c.n_embd
        self.n_head = c.n_head
        self.wte, self.wpe = tnn.Embedding(c.vocab_size, d), tnn.Embedding(c.block_size, d)
        self.h = tnn.ModuleList()
        for _ in range(c.n_layer):
            block = tnn.Module()
            block.ln_1, block.ln_2 = tnn.LayerNorm(d), tnn.LayerNorm(d)
            block.attn, block.mlp = tnn.Module(), tnn.Module()
            block.attn.c_attn, block.attn.c_proj = tnn.Linear(d, 3 * d), tnn.Linear(d, d)
            block.mlp.c_fc, block.mlp.c_proj = tnn.Linear(d, 4 * d), tnn.Linear(4 * d, d)
            self.h.append(block)
        self.ln_f = tnn.LayerNorm(d)
        self.lm_head = tnn.Linear(d, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))  # (B, T, C)
        C, nh = x.shape[-1], self.n_head
        for b in self.h:
            q, k, v = b.attn.c_attn(b.ln_1(x)).split(C, dim=2)  # 3 × (B, T, C)
            q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + b.attn.c_proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)
            mlp = b.mlp
            x = x + mlp.c_proj(torch.nn.functional.gelu(mlp.c_fc(b.ln_2(x)), approximate="tanh"))
        return self.lm_head(self.ln_f(x))  # (B, T, V)


def gpt(rng):
    """GPT (vocab 65, context 128, 4 layers, 4 heads, width 256) on 16 × 128 tokens, AdamW."""
    from scratchnn.models import GPT, GPTConfig

    config, batch = GPTConfig(), 16
    model, model_t = GPT(config, rng=rng), _TorchGPT(config)
    model_t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    T, V = config.block_size, config.vocab_size
    x = rng.integers(0, V, (batch, T))
    y = rng.integers(0, V, (batch, T))
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    opt_t = torch.optim.AdamW(model_t.parameters(), lr=1e-3)
    xs, ys = sn.tensor(x), sn.tensor(y)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step_sn():
        opt.zero_grad()
        _, loss = model(xs, ys)
        loss.backward()
        opt.step()

    def step_t():
        opt_t.zero_grad()
        loss = torch.nn.functional.cross_entropy(model_t(xt).reshape(-1, V), yt.reshape(-1))
        loss.backward()
        opt_t.step()

    # Per token: 12 d² per layer (q/k/v, output, MLP) and d·V for the head; attention scores
    # and their product with v cost 4 T d per token and layer (full T×T, as computed).
    d, n_layer, tokens = config.n_embd, config.n_layer, batch * T
    forward = 2 * tokens * (n_layer * 12 * d * d + d * V) + n_layer * 4 * tokens * T * d
    return step_sn, step_t, 3 * forward


WORKLOADS = {
    "iris-mlp": Workload("iris-mlp", iris_mlp, 200),
    "mlp-784": Workload("mlp-784", mlp_784, 15),
    "cnn-lenet": Workload("cnn-lenet", cnn_lenet, 15),
    "lstm": Workload("lstm", lstm, 15),
    "gpt": Workload("gpt", gpt, 15),
}


def matmul_peak_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Float32 GFLOP/s of one n×n matmul through NumPy's BLAS: the machine's practical peak."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9


def peak_memory_mb(step: Callable) -> float:
    """Peak NumPy allocation during one step (NumPy reports to tracemalloc; torch does not)."""
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def run(workload: Workload, steps: int | None) -> dict:
    step_sn, step_t, flops = workload.build(np.random.default_rng(0))
    n = steps or workload.steps
    for _ in range(3):
        step_sn()
        step_t()
    t_sn, t_t = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        step_sn()
        t1 = time.perf_counter()
        step_t()
        t2 = time.perf_counter()
        t_sn.append(t1 - t0)
        t_t.append(t2 - t1)
    ms_sn, ms_t = 1e3 * statistics.median(t_sn), 1e3 * statistics.median(t_t)
    return {
        "name": workload.name, "sn_ms": ms_sn, "torch_ms": ms_t, "ratio": ms_t / ms_sn,
        "gflops": flops / (ms_sn / 1e3) / 1e9, "mem_mb": peak_memory_mb(step_sn),
    }


def versions() -> str:
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(
            f"{i['internal_api']} {i['version']} ({i['num_threads']} threads)"
            for i in threadpool_info() if i["user_api"] == "blas"
        )
    except ImportError:
        blas = "unknown (threadpoolctl not installed)"
    return (f"numpy {np.__version__}; BLAS: {blas}; torch {torch.__version__} "
            f"({torch.get_num_threads()} threads)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", nargs="*", choices=sorted(WORKLOADS), default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per workload")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    print(versions())
    # The peak is measured before and after the workloads and the higher figure kept: a busy
    # machine lowers a single reading, which would inflate every utilisation figure.
    peak = matmul_peak_gflops()
    results = [run(WORKLOADS[name], args.steps) for name in args.workload or list(WORKLOADS)]
    peak = max(peak, matmul_peak_gflops())
    print(f"float32 1024x1024 matmul peak (NumPy, best of two readings): {peak:.1f} GFLOP/s")
    print(f"{'workload':<10} {'scratchnn ms':>12} {'torch ms':>9} {'ratio':>6} "
          f"{'GFLOP/s':>8} {'MFU':>6} {'sn peak MB':>10}")
    for r in results:
        print(f"{r['name']:<10} {r['sn_ms']:>12.3f} {r['torch_ms']:>9.3f} {r['ratio']:>6.2f} "
              f"{r['gflops']:>8.2f} {r['gflops'] / peak:>6.1%} {r['mem_mb']:>10.1f}")
    if any(r["gflops"] > peak for r in results):
        print("note: a workload beat the measured matmul peak: the machine was busy while the "
              "peak was measured, so the MFU column is not reliable in this run")


if __name__ == "__main__":
    main()
