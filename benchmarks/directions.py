"""Cost of finding directions in the tool: closed-form factorization (SeFa) per network.

For each configuration (random weights: the cost depends on the sizes only), the time of
`scene.sefa.sefa(G, layers)` for every layer range, median of `--repeats` runs, on the CPU, with
the machine's description. The issue's target: well under one second for a 1024 px StyleGAN2
config-f.

Usage:
    python benchmarks/directions.py                      # demo, sg2-1024-f, sg3t-1024
    python benchmarks/directions.py --configs sg2-512-f --repeats 20
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
from ganinstrument.scene.sefa import sefa

CONFIGS = ["demo", *FULL_SIZE]
DEFAULT = ["demo", "sg2-1024-f", "sg3t-1024"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="*", default=DEFAULT, choices=CONFIGS)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
          f"python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'config':12s} {'num_ws':>6s} {'w_dim':>5s}  " + "  ".join(f"{r:>8s}" for r in LAYER_RANGES) + "   (ms)")
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
        print(f"{name:12s} {G.num_ws:6d} {G.w_dim:5d}  " + "  ".join(f"{c:8.1f}" for c in cells))


if __name__ == "__main__":
    main()
