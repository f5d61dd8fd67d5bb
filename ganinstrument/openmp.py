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
"""

from __future__ import annotations

import os

DEFAULTS = {"GOMP_SPINCOUNT": "20000", "KMP_BLOCKTIME": "1"}


def configure_openmp() -> None:
    """Set the defaults above where the user has set nothing (OMP_WAIT_POLICY included)."""
    if "OMP_WAIT_POLICY" in os.environ:
        return
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
