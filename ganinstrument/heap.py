"""Give freed heap memory back to the system now and then, so a long show's memory stays flat.

The instrument raises glibc's trim threshold (models.ops.tune_cpu_allocator) so that a CPU
generator reuses its freed blocks instead of faulting fresh pages in every frame. The price is
that glibc never returns free memory on its own: across the threads' arenas, free memory
fragments and the process's resident size creeps up (+0.7 MiB/min over a 53-minute soak, with
the memory actually in use flat). `HeapTrimmer` calls glibc's `malloc_trim(0)` every
`interval_s` on its own thread, which releases the free pages inside the heap as well as at its
top. A trim costs a few milliseconds (measured 2-15 ms on the demo) and locks each arena while
it walks it, so it runs rarely. Elsewhere than glibc (Windows, macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time

log = logging.getLogger(__name__)

INTERVAL_S = 60.0


def _malloc_trim():
    try:
        fn = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


class HeapTrimmer:
    """`start()` a thread that trims the heap every `interval_s`; `stop()` ends it.

    `trims` counts the trims done, `last_ms` / `max_ms` their durations. `start()` returns
    False where there is no glibc to ask.
    """

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self.interval_s = float(interval_s)
        self.trims = 0
        self.last_ms = 0.0
        self.max_ms = 0.0
        self._trim = _malloc_trim()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def trim(self) -> bool | None:
        """Trim once, now (on the calling thread): True if memory was released, None where
        there is no glibc to ask."""
        if self._trim is None:
            return None
        t0 = time.perf_counter()
        released = bool(self._trim(0))
        ms = (time.perf_counter() - t0) * 1000.0
        self.trims += 1
        self.last_ms, self.max_ms = ms, max(self.max_ms, ms)
        return released

    def start(self) -> bool:
        if self._trim is None:
            return False
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ganinstrument-heap-trim", daemon=True)
            self._thread.start()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.trim()
            except Exception as exc:  # never worth stopping a show for
                log.debug("malloc_trim failed: %s", exc)
                return

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the thread (within `timeout` s); True if it has stopped."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True
