"""Generator speed: ms per frame, FLOPs per frame, achieved FLOP/s, and that figure as a
fraction of this machine's float32 matrix-multiply throughput measured in the same run.

Full-size random-initialised networks are built from their NVlabs constructor arguments (no
files needed). Batch 1, `noise_mode='const'`, truncation psi 1, in eval mode under
`torch.inference_mode()`. On CUDA the networks run float16 where their `num_fp16_res` asks.

FLOPs are counted with torch.utils.flop_counter on our own implementation (2 per
multiply-add, convolutions and matrix products only); an implementation that skips
multiplications by zero counts fewer FLOPs, so compare ms per frame first.

Usage:
    python benchmarks/generator.py                   # CPU configs, auto device
    python benchmarks/generator.py --configs sg2-512-f sg3t-1024 --device cuda
    python benchmarks/generator.py --list
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from ganinstrument.generator import build_generator
from ganinstrument.generator.configs import FULL_SIZE
from ganinstrument.generator.device import pick_device
from ganinstrument.generator.ops import tune_cpu_allocator

CONFIGS = FULL_SIZE
# FLOPs per frame as counted on the official NVlabs code (the reference figures): our
# StyleGAN3 skips multiplications by zero (polyphase resampling), so its own count differs;
# dividing the reference count by our time compares like with like.
REFERENCE_GFLOP = {"sg2-256-paper": 30.1, "sg2-1024-f": 151.0, "sg3t-256": 238.0, "sg3r-256": 234.0}
CPU_DEFAULT = ["sg2-256-paper", "sg2-1024-f", "sg3t-256", "sg3r-256"]
GPU_DEFAULT = ["sg2-256-paper", "sg2-512-f", "sg2-1024-f", "sg3t-256", "sg3r-256", "sg3t-1024"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, n: int = 2048, seconds: float = 2.0) -> float:
    """Best float32 matrix-multiply throughput in GFLOP/s over a short run."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    torch.mm(a, b, out=c)
    sync(device)
    best = 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for _ in range(4 if device.type == "cpu" else 50):
            torch.mm(a, b, out=c)
        sync(device)
        dt = time.perf_counter() - t0
        best = max(best, (4 if device.type == "cpu" else 50) * 2 * n**3 / dt / 1e9)
    return best


def count_flops(G, z, c) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        G(z, c, noise_mode="const")
    return float(counter.get_total_flops())


def bench_one(name: str, device: torch.device, warmup: int, repeats: int, max_seconds: float):
    kind, kwargs = CONFIGS[name]
    torch.manual_seed(0)
    G = build_generator(kind, **kwargs).to(device)
    z = torch.randn(1, G.z_dim, device=device)
    c = torch.zeros(1, G.c_dim, device=device)
    with torch.inference_mode():
        flops = count_flops(G, z, c)
        for _ in range(warmup):
            G(z, c, noise_mode="const")
        sync(device)
        times = []
        budget_start = time.perf_counter()
        for _ in range(repeats):
            t0 = time.perf_counter()
            G(z, c, noise_mode="const")
            sync(device)
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - budget_start > max_seconds and len(times) >= 3:
                break
    del G
    return statistics.median(times), flops, len(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", help=f"any of: {', '.join(CONFIGS)}")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: automatic)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed frames first (oneDNN sets up per shape)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per-config timing budget")
    parser.add_argument("--list", action="store_true", help="list the configurations and exit")
    parser.add_argument("--no-tune-allocator", action="store_true",
                        help="leave glibc's allocator thresholds alone (the instrument raises them on CPU)")
    args = parser.parse_args(argv)
    if args.list:
        for name, (kind, kw) in CONFIGS.items():
            print(f"{name:<14} {kind} {kw}")
        return 0
    device = pick_device(args.device)
    names = args.configs or (GPU_DEFAULT if device.type == "cuda" else CPU_DEFAULT)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        where = torch.cuda.get_device_name(device)
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
    tuned = device.type == "cpu" and not args.no_tune_allocator and tune_cpu_allocator()
    peak = matmul_gflops(device)
    print(f"device: {device} ({where}); torch {torch.__version__}; allocator tuned: {tuned}")
    print(f"fp32 matmul throughput (2048^3, best): {peak:.1f} GFLOP/s")
    print(f"{'config':<14} {'ms/frame':>10} {'fps':>8} {'GFLOP':>8} {'GFLOP/s':>9} {'of matmul':>10} "
          f"{'ref GFLOP':>10} {'ref of mm':>10} {'n':>4}")
    for name in names:
        seconds, flops, n = bench_one(name, device, args.warmup, args.repeats, args.max_seconds)
        achieved = flops / seconds / 1e9
        ref = REFERENCE_GFLOP.get(name)
        ref_cols = (f"{ref:>10.1f} {ref / seconds / peak:>10.0%}" if ref else f"{'-':>10} {'-':>10}")
        print(f"{name:<14} {seconds * 1e3:>10.1f} {1 / seconds:>8.2f} {flops / 1e9:>8.1f} "
              f"{achieved:>9.1f} {achieved / peak:>10.0%} {ref_cols} {n:>4}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
