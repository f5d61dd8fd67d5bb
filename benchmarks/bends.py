"""Cost of activation bending: a frame with each transform active on one middle layer, against
the same frame unbent, and the per-frame bookkeeping with every bend neutral.

For each configuration (random weights; the demo's own), on the chosen device: the median ms of
a synthesis frame (batch 1, constant noise, inference mode) unbent, then with one transform at
the far end of its range on the middle bendable layer (all channels, then a quarter of them),
and `ActivationBender.update` per frame with every bend neutral (us).

Usage:
    python benchmarks/bends.py                                 # demo, auto device
    python benchmarks/bends.py --configs demo sg2-1024-f --device cpu --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from ganinstrument.generator import build_generator
from ganinstrument.generator.configs import FULL_SIZE
from ganinstrument.generator.demo import build_demo
from ganinstrument.generator.device import pick_device
from ganinstrument.scene.activation_bends import NEUTRAL, RANGES, TRANSFORMS
from ganinstrument.scene.activations import ActivationBender


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _frame_ms(G, ws, device, repeats: int) -> float:
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            _sync(device)
            t0 = time.perf_counter()
            G.synthesis(ws, noise_mode="const")
            _sync(device)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="*", default=["demo"], choices=["demo", *FULL_SIZE])
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    device = pick_device(args.device)
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
          f"python {platform.python_version()}, torch {torch.__version__}, device {device}")
    for name in args.configs:
        G = build_demo() if name == "demo" else build_generator(FULL_SIZE[name][0], **FULL_SIZE[name][1])
        G = G.eval().to(device)
        bender = ActivationBender(G)
        layer = bender.layers[len(bender.layers) // 2][0]
        with torch.inference_mode():
            ws = G.mapping(torch.randn(1, G.z_dim, device=device), None if not G.c_dim else
                           torch.eye(G.c_dim, device=device)[:1])
        plain = _frame_ms(G, ws, device, args.repeats)
        neutral = {f"bend.{n}.{t}": NEUTRAL[t] for n, _ in bender.layers for t in TRANSFORMS}
        t0 = time.perf_counter()
        for _ in range(1000):
            bender.update(neutral)
        idle_us = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        bender.group()  # (the channel clusters: once per network, in perform's warm-up)
        group_s = time.perf_counter() - t0
        print(f"{name}: unbent frame {plain:.2f} ms; update() with every bend neutral {idle_us:.1f} us; "
              f"channel clusters {group_s:.2f} s (once); bends on {layer}:")
        print(f"  {'transform':12s} {'all ch. ms':>10s} {'+ms':>7s} {'1/4 ch. ms':>10s} {'+ms':>7s}")
        for t in TRANSFORMS:
            lo, hi = RANGES[t]
            far = hi if hi != NEUTRAL[t] else lo
            row = []
            for share in (1.0, 0.25):
                bender.update({f"bend.{layer}.{t}": far, f"bend.{layer}.channels": share})
                ms = _frame_ms(G, ws, device, args.repeats)
                row += [ms, ms - plain]
            bender.update({})
            print(f"  {t:12s} {row[0]:10.2f} {row[1]:+7.2f} {row[2]:10.2f} {row[3]:+7.2f}")
        bender.close()


if __name__ == "__main__":
    main()
