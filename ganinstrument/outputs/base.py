"""The sink protocol: where frames go (Spout, a preview window, a video file, nowhere).

The engine thread calls `submit(frame)` once per frame on every sink. `submit` never waits:
it puts the frame in the sink's own bounded queue and returns, dropping the oldest queued frame
when the queue is full (and counting the drop). Each sink does its real work (GL upload, encode,
send) on its own thread, which also owns whatever must stay on one thread (a GL context, an
encoder). A sink that fails logs once, counts the error and switches itself off; the other
sinks and the engine go on.

    sink.open(width, height, fps)   # starts the thread; raises if the sink cannot start
    sink.submit(frame) -> bool      # never blocks; False once the sink is closed or failed
    sink.close(timeout_s=2.0)       # drains (FIFO sinks), flushes, joins with a timeout
    sink.stats                      # SinkStats: submitted, written, dropped, errors, last_error

Two queue policies: latest-wins (`queue_size=1`: preview and Spout want the newest picture and
nothing else) and a bounded FIFO (the recorder wants every frame, and drops only when the
encoder falls behind by a whole queue). For offline rendering, where every frame must land and
nothing is live, `on_full="wait"` makes `submit` wait for room instead of dropping.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..errors import GanInstrumentError

log = logging.getLogger(__name__)

ON_FULL = ("drop", "wait")


class SinkError(GanInstrumentError, OSError):
    """A sink could not start or could not go on (names the sink and the reason)."""


class SinkUnavailableError(SinkError):
    """A sink cannot run on this machine (a missing package, platform or display)."""


class SinkSpecError(GanInstrumentError, ValueError):
    """An `--output` spec is malformed: every problem is listed at once."""


@dataclass(frozen=True)
class SinkStats:
    """A snapshot of one sink's counters (taken under its lock)."""

    name: str
    submitted: int
    written: int
    dropped: int
    errors: int
    last_error: str | None
    enabled: bool
    queued: int


class Sink(ABC):
    """What the engine sees of an output."""

    name: str

    @abstractmethod
    def open(self, width: int, height: int, fps: float) -> None:
        """Prepare for frames of `width` x `height` at a nominal `fps`; raises `SinkError`."""

    @abstractmethod
    def submit(self, frame) -> bool:
        """Hand a frame over without waiting. True if it was queued."""

    @abstractmethod
    def close(self, timeout_s: float = 2.0) -> bool:
        """Finish (drain, flush, release). True if everything stopped within `timeout_s`."""

    @property
    @abstractmethod
    def stats(self) -> SinkStats:
        """The sink's counters now."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ThreadedSink(Sink):
    """A sink whose work runs on its own thread, fed through a bounded queue.

    Subclasses implement, all called on the sink's thread:
      `_start()`        set up (GL context, encoder); an exception here fails `open`.
      `_write(frame)`   consume one frame.
      `_tick()`         called every `tick_s` while no frame arrives (poll window events).
      `_finish()`       flush and release; called once, also after a failure.
    """

    tick_s: float | None = None  # None: the thread sleeps until a frame or close arrives

    def __init__(self, name: str, *, queue_size: int = 1, on_full: str = "drop",
                 drain_on_close: bool | None = None, open_timeout_s: float = 10.0):
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if on_full not in ON_FULL:
            raise ValueError(f"on_full must be one of {ON_FULL}, got {on_full!r}")
        self.name = name
        self.queue_size = queue_size
        self.on_full = on_full
        # FIFO sinks (recorders) write what is queued before closing; latest-wins sinks don't.
        self.drain_on_close = queue_size > 1 if drain_on_close is None else drain_on_close
        self.open_timeout_s = open_timeout_s
        self.width = self.height = 0
        self.fps = 0.0
        # Shared between the engine thread and the sink thread; every field below is
        # guarded by `_cond`.
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._submitted = self._written = self._dropped = self._errors = 0
        self._last_error: str | None = None
        self._enabled = False
        self._closing = False
        self._thread: threading.Thread | None = None

    # -- engine side -------------------------------------------------------------------

    def open(self, width: int, height: int, fps: float) -> None:
        if self._thread is not None:
            raise SinkError(f"{self.name}: already open")
        if width < 1 or height < 1 or fps <= 0:
            raise ValueError(f"{self.name}: bad frame format {width}x{height} @ {fps} fps")
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        started = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(started, failure),
                                        name=f"sink-{self.name}", daemon=True)
        self._thread.start()
        if not started.wait(self.open_timeout_s):
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            raise SinkError(f"{self.name}: did not start within {self.open_timeout_s:g} s")
        if failure:
            self._thread.join(self.open_timeout_s)
            err = failure[0]
            if isinstance(err, SinkError):
                raise err
            raise SinkError(f"{self.name}: could not start: {err}") from err

    def submit(self, frame) -> bool:
        with self._cond:
            if not self._enabled or self._closing:
                return False
            item = self._prepare(frame)
            self._submitted += 1
            if len(self._queue) >= self.queue_size:
                if self.on_full == "wait":
                    while (len(self._queue) >= self.queue_size and self._enabled
                           and not self._closing):
                        self._cond.wait(0.1)
                    if not self._enabled or self._closing:
                        return False
                else:
                    self._queue.popleft()
                    self._dropped += 1
            self._queue.append(item)
            self._cond.notify_all()
            return True

    def close(self, timeout_s: float = 2.0) -> bool:
        thread = self._thread
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if thread is None:
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("%s: still busy after %.1f s; left running in the background",
                        self.name, timeout_s)
            return False
        return True

    @property
    def stats(self) -> SinkStats:
        with self._cond:
            return SinkStats(self.name, self._submitted, self._written, self._dropped,
                             self._errors, self._last_error, self._enabled and not self._closing,
                             len(self._queue))

    @property
    def enabled(self) -> bool:
        with self._cond:
            return self._enabled and not self._closing

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until the queue is empty and the last frame written (tests, offline render)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while (self._queue or self._busy) and self._enabled:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _prepare(self, frame):
        """Runs on the submitting thread under the lock: must be cheap and never wait."""
        return frame

    # -- sink thread -------------------------------------------------------------------

    _busy = False

    def _run(self, started: threading.Event, failure: list) -> None:
        try:
            self._start()
        except BaseException as err:  # reported to `open`, which raises it
            failure.append(err)
            self._safe_finish()
            started.set()
            return
        with self._cond:
            self._enabled = True
        started.set()
        try:
            self._loop()
        except Exception as err:
            self._fail(err)
        self._safe_finish()
        with self._cond:
            self._enabled = False
            self._queue.clear()
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    if not self._cond.wait(self.tick_s) and self.tick_s is not None:
                        break
                if self._closing and (not self.drain_on_close or not self._queue):
                    return
                frame = self._queue.popleft() if self._queue else None
                self._busy = frame is not None
                self._cond.notify_all()
            if frame is None:
                self._tick()
                continue
            self._write(frame)
            with self._cond:
                self._written += 1
                self._busy = False
                self._cond.notify_all()

    def _fail(self, err: BaseException) -> None:
        log.error("%s: %s; this output is switched off, the others go on", self.name, err,
                  exc_info=err)
        with self._cond:
            self._errors += 1
            self._last_error = f"{type(err).__name__}: {err}"
            self._enabled = False
            self._busy = False

    def _safe_finish(self) -> None:
        try:
            self._finish()
        except Exception as err:
            self._fail(err)

    @abstractmethod
    def _start(self) -> None: ...

    @abstractmethod
    def _write(self, frame) -> None: ...

    def _tick(self) -> None:
        pass

    def _finish(self) -> None:
        pass


class Sinks:
    """Several sinks driven as one: what `open_sinks` returns and the engine holds."""

    def __init__(self, sinks):
        self.sinks = list(sinks)

    def __iter__(self):
        return iter(self.sinks)

    def __len__(self) -> int:
        return len(self.sinks)

    def get(self, name: str):
        """The first sink called `name` (e.g. "preview"), or None."""
        return next((s for s in self.sinks if s.name == name), None)

    def submit(self, frame) -> int:
        """Hand `frame` to every sink; returns how many took it. Never waits on a sink."""
        return sum(bool(s.submit(frame)) for s in self.sinks)

    def close(self, timeout_s: float = 2.0) -> bool:
        """Close in reverse order of opening, each with its own timeout."""
        ok = True
        for sink in reversed(self.sinks):
            ok = sink.close(timeout_s) and ok
        return ok

    def stats(self) -> list[SinkStats]:
        return [s.stats for s in self.sinks]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
