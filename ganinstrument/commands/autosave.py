"""Autosave: the current look, written to a preset file every couple of seconds.

What `perform` resumes from when the supervisor (supervisor.py) restarts it after a crash.
The engine thread takes the snapshot (`Instrument.snapshot`: a copy of the values, no I/O);
a writer thread does the YAML and the atomic write, so a frame never waits on the disk.
Latest wins: if the disk is slow, older snapshots are skipped, never queued.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..common.errors import GanInstrumentError
from ..state.presets import save_preset_file

log = logging.getLogger("ganinstrument")


class Autosave:
    """`tick(now)` once a frame on the engine thread; `close()` writes the last look and stops."""

    def __init__(self, instrument, path, every_s: float = 2.0):
        self.inst = instrument
        self.path = Path(path)
        self.every_s = float(every_s)
        self.saved = 0
        self.failures = 0
        self._last: float | None = None
        self._pending = None
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="autosave", daemon=True)
        self._thread.start()

    def tick(self, now: float) -> None:
        if self._last is not None and now - self._last < self.every_s:
            return
        self._last = now
        snapshot = self.inst.snapshot("autosave")
        with self._cond:
            self._pending = snapshot
            self._cond.notify()

    def close(self, timeout_s: float = 2.0) -> bool:
        """Write the current look one last time, then stop the writer."""
        try:
            snapshot = self.inst.snapshot("autosave")
        except Exception as exc:  # the show is over; say it and go on closing
            log.warning("autosave: could not take the last snapshot: %s", exc)
            snapshot = None
        with self._cond:
            if snapshot is not None:
                self._pending = snapshot
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait()
                snapshot, self._pending = self._pending, None
                closing = self._closing
            if snapshot is not None:
                try:
                    save_preset_file(self.path, snapshot)
                    self.saved += 1
                except (GanInstrumentError, OSError) as exc:
                    self.failures += 1
                    if self.failures == 1:
                        log.warning("autosave to %s failed (%s); playing on without it", self.path, exc)
            if closing:
                return
