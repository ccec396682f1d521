"""Training-step benchmark: scratchnn against PyTorch on the same work, in the same run.

One step = forward + cross-entropy + backward + optimizer step on in-memory data, after 3
warm-up steps. The two frameworks alternate step by step so that a noisy machine slows both
alike; the figure that matters is the ratio ``torch_ms / scratchnn_ms`` (above 1: scratchnn is
faster). See ../shared/docs/BENCHMARKS.md.

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


WORKLOADS = {
    "iris-mlp": Workload("iris-mlp", iris_mlp, 200),
    "mlp-784": Workload("mlp-784", mlp_784, 15),
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
    peak = matmul_peak_gflops()
    print(f"float32 1024x1024 matmul peak (NumPy): {peak:.1f} GFLOP/s")
    header = (f"{'workload':<10} {'scratchnn ms':>12} {'torch ms':>9} {'ratio':>6} "
              f"{'GFLOP/s':>8} {'MFU':>6} {'sn peak MB':>10}")
    print(header)
    for name in args.workload or list(WORKLOADS):
        r = run(WORKLOADS[name], args.steps)
        print(f"{r['name']:<10} {r['sn_ms']:>12.3f} {r['torch_ms']:>9.3f} {r['ratio']:>6.2f} "
              f"{r['gflops']:>8.2f} {r['gflops'] / peak:>6.1%} {r['mem_mb']:>10.1f}")


if __name__ == "__main__":
    main()
