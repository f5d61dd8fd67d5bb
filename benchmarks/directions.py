"""Cost of finding directions in the tool: SeFa and GANSpace per network.

For each configuration (random weights: the cost depends on the sizes only), on the CPU, with
the machine's description:
- the time of `scene.sefa.sefa(G, layers)` for every layer range, median of `--repeats` runs (the
  issue's target: well under one second for a 1024 px StyleGAN2 config-f);
- the time of `scene.ganspace.ganspace(G, samples)` once, for `--samples` w (default 100,000),
  and its rate.

Usage:
    python benchmarks/directions.py                      # demo, sg2-1024-f, sg3t-1024
    python benchmarks/directions.py --configs sg2-512-f --repeats 20 --samples 20000
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
from ganinstrument.generator.styles import LAYER_RANGES
from ganinstrument.scene.ganspace import ganspace
from ganinstrument.scene.sefa import sefa

CONFIGS = ["demo", *FULL_SIZE]
DEFAULT = ["demo", "sg2-1024-f", "sg3t-1024"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="*", default=DEFAULT, choices=CONFIGS)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--samples", type=int, default=100_000, help="GANSpace's samples of w (0: skip)")
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
          f"python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'config':12s} {'num_ws':>6s} {'w_dim':>5s}  " + "  ".join(f"{r:>8s}" for r in LAYER_RANGES)
          + f"   (SeFa, ms)  GANSpace {args.samples} w")
    for name in args.configs:
        G = build_demo() if name == "demo" else build_generator(FULL_SIZE[name][0], **FULL_SIZE[name][1])
        G.eval()
        cells = []
        for spec in LAYER_RANGES:
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                sefa(G, spec)
                times.append((time.perf_counter() - t0) * 1e3)
            cells.append(statistics.median(times))
        pca = ""
        if args.samples:
            t0 = time.perf_counter()
            ganspace(G, args.samples)
            took = time.perf_counter() - t0
            pca = f"{took:8.3f} s ({args.samples / took:,.0f} w/s)"
        print(f"{name:12s} {G.num_ws:6d} {G.w_dim:5d}  " + "  ".join(f"{c:8.1f}" for c in cells) + f"   {pca}")


if __name__ == "__main__":
    main()
