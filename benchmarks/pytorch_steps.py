#!/usr/bin/env python3
"""The reference side of the step benchmarks: the same training steps as gan_step and
dcgan_step, written in PyTorch, timed on the same CPU with the same thread count.

Each step does what forgery's trainer does in that benchmark, with PyTorch's fastest usual
idioms: the real batch is drawn inside the step (N(0, 1), as the C++ benchmarks draw it);
the critic update runs the generator without autograd, then the critic on real and fake
(one batch of 2n when the critic has no BatchNorm, two passes otherwise, as PyTorch's DCGAN
example does), one backward and an Adam step; the generator update draws fresh noise, turns
off the critic's parameter gradients (so no weight gradient of D is computed), and runs one
backward and an Adam step. WGAN-GP: 5 critic updates with the gradient penalty (lambda 10,
through autograd.grad with create_graph) and one generator update.

Timing: per-step wall time, median over every step of several repetitions after warm-up,
as bench_common.hpp does; ms per step and the repetitions' spread are printed.

Not part of the build or the tests (forgery does not depend on PyTorch). Needs torch:
  python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==1.13.1 numpy==1.26.4
  OMP_NUM_THREADS=2 /tmp/torchenv/bin/python benchmarks/pytorch_steps.py [--json FILE]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
from torch import nn


def mlp_pair():
    g = nn.Sequential(nn.Linear(100, 256), nn.LeakyReLU(0.2), nn.Linear(256, 512), nn.LeakyReLU(0.2),
                      nn.Linear(512, 784), nn.Tanh())
    d = nn.Sequential(nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2),
                      nn.Linear(256, 1))
    return g, d, (784,)


def dcgan_pair():
    g = nn.Sequential(nn.Linear(100, 128 * 7 * 7, bias=False), nn.Unflatten(1, (128, 7, 7)), nn.BatchNorm2d(128),
                      nn.ReLU(), nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                      nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh())
    d = nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(64, 128, 4, 2, 1, bias=False),
                      nn.BatchNorm2d(128), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(128 * 7 * 7, 1))
    return g, d, (1, 28, 28)


def set_critic_grad(d, on):
    for p in d.parameters():
        p.requires_grad_(on)


def ns_step(g, d, shape, batch, split_critic):
    """One non-saturating step: one critic update and one generator update, Adam."""
    g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    both = torch.cat([ones, zeros])

    def step():
        real = torch.randn(batch, *shape)
        with torch.no_grad():
            fake = g(torch.randn(batch, 100))
        d_opt.zero_grad(set_to_none=True)
        if split_critic:
            loss = bce(d(real), ones) + bce(d(fake), zeros)
        else:
            loss = 2 * bce(d(torch.cat([real, fake])), both)
        loss.backward()
        d_opt.step()

        g_opt.zero_grad(set_to_none=True)
        set_critic_grad(d, False)
        bce(d(g(torch.randn(batch, 100))), ones).backward()
        set_critic_grad(d, True)
        g_opt.step()

    return step


def gp_step(g, d, shape, batch, n_critic=5, lam=10.0):
    """One WGAN-GP step: n_critic critic updates with the gradient penalty, one generator update."""
    g_opt = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
    d_opt = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.0, 0.9))

    def step():
        for _ in range(n_critic):
            real = torch.randn(batch, *shape)
            with torch.no_grad():
                fake = g(torch.randn(batch, 100))
            d_opt.zero_grad(set_to_none=True)
            out = d(torch.cat([real, fake]))
            eps = torch.rand(batch, 1)
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            grad, = torch.autograd.grad(d(x_hat).sum(), x_hat, create_graph=True)
            penalty = lam * ((grad.norm(2, dim=1) - 1) ** 2).mean()
            loss = out[batch:].mean() - out[:batch].mean() + penalty
            loss.backward()
            d_opt.step()
        g_opt.zero_grad(set_to_none=True)
        set_critic_grad(d, False)
        (-d(g(torch.randn(batch, 100))).mean()).backward()
        set_critic_grad(d, True)
        g_opt.step()

    return step


def mlp_gemm_list(batch):
    """The MLP GAN step's matrix products as gan_step lists them (column-major BLAS terms:
    transposes, m, n, k), for timing the BLAS PyTorch uses on the same shapes."""
    g_dims = [(100, 256), (256, 512), (512, 784)]
    d_dims = [(784, 512), (512, 256), (256, 1)]
    calls = []

    def forward(dims, n):
        calls.extend(("N", "N", o, n, i) for i, o in dims)

    def backward(dims, n, params, first_input):
        for idx in reversed(range(len(dims))):
            i, o = dims[idx]
            if params:
                calls.append(("N", "T", o, i, n))
            if idx > 0 or first_input:
                calls.append(("T", "N", i, n, o))

    forward(g_dims, batch)  # critic update
    forward(d_dims, 2 * batch)
    backward(d_dims, 2 * batch, True, False)
    forward(g_dims, batch)  # generator update
    forward(d_dims, batch)
    backward(d_dims, batch, False, True)
    backward(g_dims, batch, True, False)
    return calls


def gemm_list_step(calls):
    """One pass over `calls` through torch.mm: column-major C (m x n) = op(A) op(B) is the
    row-major C^T (n x m) = op(B)^T op(A)^T, with transposes as views (no copies)."""
    ops = []
    for ta, tb, m, n, k in calls:
        a = torch.randn(k, m) if ta == "N" else torch.randn(m, k)  # row-major views of column-major A
        b = torch.randn(n, k) if tb == "N" else torch.randn(k, n)
        at = a if ta == "N" else a.t()  # op(A)^T as a (k x m) row-major view
        bt = b if tb == "N" else b.t()  # op(B)^T as a (n x k) row-major view
        ops.append((bt, at, torch.empty(n, m)))

    def step():
        for bt, at, c in ops:
            torch.mm(bt, at, out=c)

    return step, sum(2.0 * m * n * k for _, _, m, n, k in calls)


def time_step(step, reps, rep_seconds, warm_seconds):
    """Median and min of every step timed alone, over `reps` repetitions after warm-up."""
    t_end = time.perf_counter() + warm_seconds
    while time.perf_counter() < t_end:
        step()
    medians, every = [], []
    for _ in range(reps):
        times = []
        t_end = time.perf_counter() + rep_seconds
        while time.perf_counter() < t_end or len(times) < 5:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        medians.append(statistics.median(times))
        every += times
    med = statistics.median(every)
    return {"median_ms": med * 1e3, "min_ms": min(every) * 1e3,
            "spread": (max(medians) - min(medians)) / statistics.median(medians)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--quick", action="store_true", help="one short repetition (timings meaningless)")
    parser.add_argument("--only", choices=["mlp", "wgan_gp", "dcgan", "gemms"], action="append",
                        help="run only these benchmarks (repeatable)")
    parser.add_argument("--peak", type=float,
                        help="the FMA peak in GFLOP/s that a C++ benchmark measured (for the GEMM lists' %% of peak)")
    args = parser.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    reps, rep_s, warm_s = (1, 0.1, 0.1) if args.quick else (7, 0.5, 0.5)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"PyTorch {torch.__version__} on {cpu}; {torch.get_num_threads()} thread(s); "
          f"MKL {'yes' if torch.backends.mkl.is_available() else 'no'}, "
          f"oneDNN {'yes' if torch.backends.mkldnn.is_available() else 'no'}")

    rows = []
    want = set(args.only or ["mlp", "wgan_gp", "dcgan", "gemms"])
    if "mlp" in want:
        for batch in (64, 256):
            g, d, shape = mlp_pair()
            rows.append(("mlp_gan", batch, time_step(ns_step(g, d, shape, batch, False), reps, rep_s, warm_s)))
    if "wgan_gp" in want:
        g, d, shape = mlp_pair()
        rows.append(("wgan_gp", 64, time_step(gp_step(g, d, shape, 64), reps, rep_s, warm_s)))
    if "dcgan" in want:
        g, d, shape = dcgan_pair()
        rows.append(("dcgan", 64, time_step(ns_step(g, d, shape, 64, True), reps, rep_s, warm_s)))

    if "gemms" in want:
        for batch in (64, 256):
            step, flop = gemm_list_step(mlp_gemm_list(batch))
            t = time_step(step, reps, rep_s, warm_s)
            t["gflop"] = flop * 1e-9
            rows.append(("mlp_gemms", batch, t))

    print(f"{'benchmark':<10} {'batch':>5} | {'step ms':>8} {'min ms':>8} {'spread':>7} | {'GFLOP':>6} {'% peak':>7}")
    for name, batch, t in rows:
        extra = ""
        if "gflop" in t:
            extra = f" | {t['gflop']:6.3f}"
            if args.peak:
                extra += f" {100 * t['gflop'] / (t['median_ms'] * 1e-3) / args.peak:6.1f}%"
        print(f"{name:<10} {batch:>5} | {t['median_ms']:8.3f} {t['min_ms']:8.3f} {100 * t['spread']:6.1f}%{extra}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "cpu": cpu, "threads": torch.get_num_threads(), "peak": args.peak,
                       "results": [dict(name=n, batch=b, **t) for n, b, t in rows]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
