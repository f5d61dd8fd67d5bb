"""Give freed heap memory back to the system now and then, so a long show's memory stays flat.

The instrument raises glibc's trim threshold (generator.ops.tune_cpu_allocator) so that a CPU
generator reuses its freed blocks instead of faulting fresh pages in every frame. The price is
that glibc never returns free memory on its own: across the threads' arenas, free memory
fragments and the process's resident size creeps up (+0.7 MiB/min over a 53-minute soak, with
the memory actually in use flat). `HeapTrimmer` checks the process's resident size every
`interval_s` on its own thread and, once it has grown `slack_bytes` past where it settled after
the last trim, calls glibc's `malloc_trim(0)`, which releases the free pages inside the heap as
well as at its top.

Why not trim on every check: a trim also releases the free blocks the generator reuses every
frame, and the next frames fault them back in (on the demo, ~20 MiB, ~5,000 page faults, within
seconds of each trim: measured with a trim a minute). So the trimmer waits for real growth:
memory stays within the slack of where it settled, and the fault bursts come once in a long
while instead of every minute. A trim itself costs a few milliseconds (2-15 ms on the demo) and
locks each arena while it walks it. Elsewhere than glibc (Windows, macOS, musl) nothing runs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable

from .observers import notify

log = logging.getLogger(__name__)

INTERVAL_S = 60.0
SLACK_BYTES = 32 << 20  # resident growth past the settled size that makes a trim worth it


def _malloc_trim():
    try:
        fn = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def resident_bytes() -> int | None:
    """The process's resident set size (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class HeapTrimmer:
    """`start()` a thread that trims once (what loading left free), then checks every
    `interval_s` and trims the heap when the resident size has grown `slack_bytes` since it
    settled (see the module's docstring); `stop()` ends it.

    `checks` and `trims` count what it did, `last_ms` / `max_ms` the trims' durations.
    `start()` returns False where there is no glibc to ask.
    """

    def __init__(self, interval_s: float = INTERVAL_S, slack_bytes: int = SLACK_BYTES) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        if slack_bytes < 0:
            raise ValueError(f"slack_bytes must be >= 0, got {slack_bytes!r}")
        self.interval_s = float(interval_s)
        self.slack_bytes = int(slack_bytes)
        self.checks = 0
        self._settled: int | None = None  # resident size at the first check after a trim (or start)
        self.trims = 0
        self.last_ms = 0.0
        self.max_ms = 0.0
        self._trim = _malloc_trim()
        # Observers of each trim, called on the trimming thread with its start and end
        # (perf_counter seconds): keep them short (benchmarks, tools).
        self.on_trim: list[Callable[[float, float], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def trim(self) -> bool | None:
        """Trim once, now (on the calling thread): True if memory was released, None where
        there is no glibc to ask."""
        if self._trim is None:
            return None
        t0 = time.perf_counter()
        released = bool(self._trim(0))
        t1 = time.perf_counter()
        ms = (t1 - t0) * 1000.0
        self.trims += 1
        self.last_ms, self.max_ms = ms, max(self.max_ms, ms)
        notify(self.on_trim, t0, t1, what="an on_trim")
        return released

    def check(self) -> bool | None:
        """Trim if the resident size has grown `slack_bytes` past where it settled; True if it
        trimmed, False if not, None where there is no glibc. The first check after a trim (or
        ever) only notes the size: by then the blocks the frames reuse are back in."""
        if self._trim is None:
            return None
        self.checks += 1
        rss = resident_bytes()
        if rss is None:  # cannot tell: trim, as a plain timer would
            self.trim()
            return True
        if self._settled is None:
            self._settled = rss
            return False
        if rss - self._settled < self.slack_bytes:
            return False
        self.trim()
        self._settled = None
        return True

    def start(self) -> bool:
        if self._trim is None:
            return False
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ganinstrument-heap-trim", daemon=True)
            self._thread.start()
        return True

    def _run(self) -> None:
        try:
            self.trim()  # what loading the model and warming up left free, before it settles
            self._settled = None
        except Exception as exc:
            log.debug("malloc_trim failed: %s", exc)
            return
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception as exc:  # never worth stopping a show for
                log.debug("malloc_trim failed: %s", exc)
                return

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop the thread (within `timeout_s`); True if it has stopped."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            return not thread.is_alive()
        return True
