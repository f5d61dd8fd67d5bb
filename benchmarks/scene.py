"""Scene update cost: `Bender.apply` per frame against the generator's own frame time.

For each configuration, model A and model B are two random initialisations of the same network
(different seeds; the demo's B is the demo with seeded noise on its weights). One Bender with
the default edits and every blend group is timed per call, each call with new values:

- idle:        the same values again (nothing rewritten; the target is essentially zero)
- one group:   `blend.<largest group>` moving
- all groups:  every `blend.<group>` moving (every blended tensor re-lerped)
- edits:       every default edit moving, blends at 0
- everything:  every blend group and every edit moving

Figures are medians in ms, and as a fraction of one generator frame (batch 1,
noise_mode='const', inference mode) timed in the same run on the same device.

Usage:
    python benchmarks/scene.py                        # demo and sg2-1024-f, auto device
    python benchmarks/scene.py --configs demo --device cpu --repeats 50
    python benchmarks/scene.py --list
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch

from ganinstrument.generator import build_generator, load_generator
from ganinstrument.generator.configs import FULL_SIZE
from ganinstrument.generator.device import pick_device
from ganinstrument.generator.ops import tune_cpu_allocator
from ganinstrument.scene.bending import Bender

CONFIGS = {"demo": None, **FULL_SIZE}
DEFAULT = ["demo", "sg2-1024-f"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def build_pair(name: str, device: torch.device):
    if name == "demo":
        A = load_generator("demo")
        B = copy.deepcopy(A)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for key, t in B.state_dict().items():
                if t.is_floating_point() and not key.endswith("_filter"):
                    t.add_(torch.randn(t.shape, generator=gen) * 0.2 * float(t.std(correction=0) if t.numel() > 1 else 0.05))
    else:
        kind, kwargs = CONFIGS[name]
        torch.manual_seed(0)
        A = build_generator(kind, **kwargs)
        torch.manual_seed(1)
        B = build_generator(kind, **kwargs)
    return A.eval().to(device), B.eval().to(device)


def median_ms(fn, device, repeats: int, max_seconds: float) -> float:
    times = []
    start = time.perf_counter()
    for i in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn(i)
        sync(device)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > max_seconds and len(times) >= 3:
            break
    return statistics.median(times) * 1e3


def bench_one(name: str, device: torch.device, args) -> None:
    A, B = build_pair(name, device)
    t0 = time.perf_counter()
    bender = Bender(A, B)
    setup_s = time.perf_counter() - t0
    copies_mb = bender.copies_bytes / 2**20
    groups = bender.blend_groups
    sizes = {g: sum(A.state_dict()[k].numel() for k in bender.keys_for(f"blend.{g}")) for g in groups}
    largest = max(groups, key=sizes.get)
    edits = [e.target for e in bender.edits]
    blends = [f"blend.{g}" for g in groups]

    def moving(names, i):  # values that differ from the previous call's
        return {n: 0.25 + 0.5 * (i % 2) + 1e-3 * j for j, n in enumerate(names)}

    z = torch.randn(1, A.z_dim, device=device)
    with torch.inference_mode():
        for _ in range(args.warmup):
            A(z, None, noise_mode="const")
        sync(device)
        frame_ms = median_ms(lambda i: A(z, None, noise_mode="const"), device, args.frames, args.max_seconds)

    bender.reset()
    idle_values = dict(bender.values)
    cases = {
        "idle": lambda i: bender.apply(idle_values),
        f"one group ({largest})": lambda i: bender.apply(moving([f"blend.{largest}"], i)),
        "all groups": lambda i: bender.apply(moving(blends, i)),
        "edits": lambda i: bender.apply({**moving(edits, i), **{b: 0.0 for b in blends}}),
        "everything": lambda i: bender.apply(moving(blends + edits, i)),
    }
    print(f"\n{name}: {sum(sizes.values()) / 1e6:.1f} M blended values in {len(groups)} groups, "
          f"{len(edits)} edits; Bender setup {setup_s:.2f} s, pristine copies and noise {copies_mb:.0f} MiB")
    print(f"  generator frame: {frame_ms:10.2f} ms")
    for label, fn in cases.items():
        fn(0)  # reach a state the first timed call moves away from
        ms = median_ms(lambda i, fn=fn: fn(i + 1), device, args.repeats, args.max_seconds)
        print(f"  {label:<24} {ms:10.3f} ms  {ms / frame_ms:8.2%} of a frame", flush=True)
    bender.reset()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", help=f"any of: {', '.join(CONFIGS)} (default: {' '.join(DEFAULT)})")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: automatic)")
    parser.add_argument("--repeats", type=int, default=30, help="apply() calls timed per case")
    parser.add_argument("--frames", type=int, default=5, help="generator frames timed")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time budget per measurement")
    parser.add_argument("--list", action="store_true", help="list the configurations and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, cfg in CONFIGS.items():
            print(f"{name:<14} {'built-in demo (sg2 256)' if cfg is None else cfg}")
        return 0
    names = args.configs or DEFAULT
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    device = pick_device(args.device)
    tuned = device.type == "cpu" and tune_cpu_allocator()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device: {device} ({where}); torch {torch.__version__}; allocator tuned: {tuned}")
    for name in names:
        bench_one(name, device, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
