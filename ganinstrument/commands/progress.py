"""A progress bar on stderr for the long offline commands (render's frames, GANSpace's samples):
redrawn in place on a terminal at most twice a second, one line per update otherwise (logs)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, unit: str, stream=None):
        self.total, self.unit, self.stream = total, unit, stream or sys.stderr  # (the one of the moment)
        self.start = time.monotonic()
        self._last = 0.0
        self.live = self.stream.isatty() if hasattr(self.stream, "isatty") else False

    def update(self, done: int) -> None:
        now = time.monotonic()
        if done < self.total and now - self._last < 0.5:
            return
        self._last = now
        elapsed = now - self.start
        eta = elapsed / done * (self.total - done) if done else float("nan")
        bar = "#" * int(30 * done / max(self.total, 1))
        text = (f"[{bar:<30}] {done}/{self.total} {self.unit} {100 * done / max(self.total, 1):5.1f}% "
                f"elapsed {elapsed:5.0f}s ETA {eta:5.0f}s" if done else f"[{' ' * 30}] 0/{self.total} {self.unit}")
        self.stream.write(("\r" if self.live else "") + text + ("" if self.live and done < self.total else "\n"))
        self.stream.flush()
