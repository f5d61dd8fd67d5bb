"""OpenMP's idle policy for the CPU back end, set before torch loads.

After each parallel region (a convolution, say) OpenMP's worker threads either spin, ready
for the next one, or sleep until woken. Measured on the demo network (2-core machine, frames
paced so the workers go idle between them; `python benchmarks/engine.py` and a probe):

| policy                               | quiet: ms/frame p50 | 2 CPU hogs beside: p50 / p90 |
|--------------------------------------|---------------------|------------------------------|
| libgomp default (spin ~300,000 times) | 8.2                 | 9.6 / 932 (frames in bursts)  |
| OMP_WAIT_POLICY=PASSIVE (never spin)  | 17.3                | 33 / 40                      |
| GOMP_SPINCOUNT=20000 (spin briefly)   | 8.3                 | 18.6 / 23.9                  |

So workers spin briefly, then sleep. `KMP_BLOCKTIME` is the same knob (in ms) for the Intel
and LLVM OpenMP that torch uses on Windows and macOS (default 200 ms of spinning); 1 ms there
is our choice by analogy, not measured. Whatever the user has set wins.

A live show on the CPU also leaves one core to everything else (`live_cpu_threads`): the
encoder, the audio analysis and MIDI then do not preempt an OpenMP worker in the middle of a
parallel region, which stalls the whole region. Demo at 60 fps, 3 minutes each, 2-core machine,
recorder + null sinks, 200 CC/s, audio clicks (`python benchmarks/engine.py --minutes 3 --no-jack`):

| torch threads | frame p50 / p99 | frames > 2x median | MIDI -> submitted p50 / p99 |
|---------------|-----------------|--------------------|-----------------------------|
| 2 (default)   | 10.8 / 33.7 ms  | 694 of 10,551      | 19.9 / 51.6 ms              |
| 1             | 13.5 / 23.1 ms  | 14 of 10,676       | 22.7 / 39.3 ms              |
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULTS = {"GOMP_SPINCOUNT": "20000", "KMP_BLOCKTIME": "1"}


def configure_openmp() -> None:
    """Set the defaults above where the user has set nothing (OMP_WAIT_POLICY included)."""
    if "OMP_WAIT_POLICY" in os.environ:
        return
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)


def live_cpu_threads(cpus: int | None = None, default: int | None = None) -> int | None:
    """Threads for CPU torch during a live show: one core fewer than torch would take (at least
    one), so the show's other threads keep a core. None where the user has chosen
    (OMP_NUM_THREADS or MKL_NUM_THREADS set): theirs wins. `cpus`/`default` are for tests."""
    if any(os.environ.get(key) for key in THREAD_VARS):
        return None
    if default is None:
        import torch

        default = torch.get_num_threads()
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    return max(1, min(default, cpus - 1))


def leave_a_core() -> int | None:
    """Apply `live_cpu_threads` to torch; returns the count set, or None (the user chose)."""
    n = live_cpu_threads()
    if n is not None:
        import torch

        torch.set_num_threads(n)
    return n
