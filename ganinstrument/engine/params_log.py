"""--log-params: every frame's values (and the beat clock) as JSON lines, for tools and tests.

The engine thread writes a row per frame out; the file is buffered and flushed at least every
FLUSH_S of show time, so readers see the show within a second. A write that fails (the disk
full) stops the log and says why once; the show goes on.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping

log = logging.getLogger(__name__)

FLUSH_S = 1.0  # rows reach the disk at least this often


class ParamsLog:
    def __init__(self, path: str | os.PathLike):
        self._file = open(path, "w", encoding="utf-8", buffering=1 << 16)
        self._flushed_t = 0.0
        self.error: str | None = None  # (once writing failed: what to tell the performer)

    def write(self, frame: int, t: float, values: Mapping[str, float], clock: Mapping[str, object] | None) -> None:
        """One frame's row; `clock`: the beat clock's bpm, beat, source and host time, if any."""
        if self._file is None:
            return
        row: dict[str, object] = {"frame": frame, "t": round(t, 6), "values": values}
        if clock:
            row["clock"] = clock
        try:
            self._file.write(json.dumps(row, separators=(",", ":")) + "\n")
            if t - self._flushed_t >= FLUSH_S:
                self._flushed_t = t
                self._file.flush()
        except (OSError, TypeError, ValueError) as exc:  # the disk is full: stop logging, play on
            log.error("--log-params: cannot write any more (%s); the show goes on without it", exc)
            self.error = f"--log-params stopped: {exc}"
            self.close()

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                log.warning("--log-params: closing it failed (%s)", exc)
