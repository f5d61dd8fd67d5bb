"""The sink protocol: where frames go (Spout, a preview window, a video file, nowhere).

The engine thread calls `submit(frame)` once per frame on every sink. `submit` never waits:
it puts the frame in the sink's own bounded queue and returns, dropping the oldest queued frame
when the queue is full (and counting the drop). Each sink does its real work (GL upload, encode,
send) on its own thread, which also owns whatever must stay on one thread (a GL context, an
encoder). A sink that fails logs one line, counts the error and is down for a moment: its
thread releases what it held and opens it again after a back-off (RESTART_BACKOFF_S, doubling
up to RESTART_MAX_S while it keeps failing, afresh once it has run STEADY_S), and says so in
its `messages` (the HUD's news). Frames submitted while it is down are counted as dropped.
The other sinks and the engine go on.

`dropped` counts pictures an output failed to show (or, for a recorder, frames it lost). A
latest-wins sink that is handed a repeat of the picture it has queued (an unchanged scene is
submitted again every frame, with a new time) replaces it without counting a drop.

    sink.open(width, height, fps)   # starts the thread; raises if the sink cannot start
    sink.submit(frame) -> bool      # never blocks; False once the sink is closed or failed
    sink.close(timeout_s=2.0)       # drains (FIFO sinks), flushes, joins with a timeout
    sink.stats                      # SinkStats: submitted, written, dropped, errors, last_error,
                                    #   restarts, write_s (the last write's seconds)
    sink.on_write                   # observers of each write (start, end), on the sink's thread

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..common.errors import GanInstrumentError
from ..common.observers import notify
from ..common.text import shorten
from .resize import resize_frame

log = logging.getLogger(__name__)

ON_FULL = ("drop", "wait")
RESTART_BACKOFF_S = 0.25  # the first wait before a failed sink opens again
RESTART_MAX_S = 2.0  # ... doubling while it keeps failing, up to this
STEADY_S = 10.0  # a sink that ran this long since it opened again starts its back-off afresh


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
    restarts: int = 0  # times the sink failed and opened again
    write_s: float = 0.0  # how long its thread took to write the last frame


class Sink(ABC):
    """What the engine sees of an output (and the HUD reads: common.reporting.Reporting)."""

    name: str
    messages: Sequence[str] = ()  # its news, newest last
    shows_hud = False  # (the preview) it shows the HUD: `set_hud` takes the engine's values

    def hud_lines(self) -> Mapping[str, str]:
        """Lines it keeps up on the HUD while they hold ("rec": "00:12 recording")."""
        return {}

    def set_hud(self, values: Mapping[str, object]) -> None:
        """(shows_hud) The HUD's values from the engine; other sinks have no HUD."""

    def toggle(self) -> str | None:
        """`record.toggle`: a sink that records takes starts or ends one and says which;
        None from the others."""
        return None

    def window_closed(self) -> bool:
        """A window the performer closed (the preview's): the show ends."""
        return False

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
    restart = True  # a sink that fails opens again after a back-off (False: it stays off)

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
        self._restarts = 0
        self._backoff_s = RESTART_BACKOFF_S  # (sink thread) the next wait before reopening
        self._opened_at: float | None = None  # (sink thread) when it last opened again
        self._enabled = False
        self._down = False  # failed, waiting to open again: frames are dropped and counted
        self._closing = False
        self._thread: threading.Thread | None = None
        self.messages: collections.deque[str] = collections.deque(maxlen=8)  # for the HUD's news
        # Observers of each write, called on the sink's thread with its start and end
        # (perf_counter seconds): keep them short (benchmarks, tools).
        self.on_write: list[Callable[[float, float], None]] = []
        self._write_s = 0.0

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
            if self._down and not self._closing:
                self._submitted += 1
                self._dropped += 1
                return False
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
                    replaced = self._queue.popleft()
                    if self.queue_size > 1 or not _same_picture(replaced, item):
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
                             len(self._queue), self._restarts, self._write_s)

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
        while True:
            try:
                self._loop()
                failed = False
            except Exception as err:
                self._fail(err)
                failed = True
            self._safe_finish()
            if not (failed and self.restart and self._reopen()):
                break
        with self._cond:
            self._enabled = self._down = False
            self._queue.clear()
            self._cond.notify_all()

    def _reopen(self) -> bool:
        """After a failure: wait a back-off and open again. The back-off doubles (up to
        RESTART_MAX_S) with each failure, to open or to write, until the sink has run
        STEADY_S without one. False if the sink was closed meanwhile."""
        now = time.monotonic()
        if self._opened_at is not None and now - self._opened_at >= STEADY_S:
            self._backoff_s = RESTART_BACKOFF_S  # it ran well for a while: this is a new failure
        while True:
            delay, self._backoff_s = self._backoff_s, min(2 * self._backoff_s, RESTART_MAX_S)
            with self._cond:
                self._cond.wait_for(lambda: self._closing, timeout=delay)
                if self._closing:
                    return False
            try:
                self._before_reopen()
                self._start()
            except Exception as err:
                log.debug("%s: does not open again yet: %s", self.name, err)
                with self._cond:
                    self._last_error = shorten(f"{type(err).__name__}: {err}", 200)
                try:
                    self._finish()
                except Exception as finish_err:
                    log.debug("%s: while releasing: %s", self.name, finish_err)
                continue
            self._opened_at = time.monotonic()
            with self._cond:
                self._restarts += 1
                self._enabled, self._down = True, False
                self._cond.notify_all()
            text = self._reopened()
            log.warning("%s", text)
            self.messages.append(text)
            return True

    def _reopened(self) -> str:
        """What to say once the sink is open again after a failure."""
        return f"{self.name}: open again"

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
            began = time.perf_counter()
            self._write(frame)
            ended = time.perf_counter()
            notify(self.on_write, began, ended, what=f"{self.name}: an on_write")
            with self._cond:
                self._written += 1
                self._write_s = ended - began
                self._busy = False
                self._cond.notify_all()

    def _fail(self, err: BaseException) -> None:
        """One line for the log and the HUD (the traceback only at debug level)."""
        text = shorten(" ".join(f"{type(err).__name__}: {err}".split()), 200)
        again = self.restart and not self._closing
        with self._cond:
            self._errors += 1
            quiet = self._errors > 1 and text == self._last_error
            self._last_error = text
            self._enabled = False
            self._down = again
            self._busy = False
            self._queue.clear()
            self._cond.notify_all()
        what = "opening it again in a moment" if again else "this output is switched off"
        if not quiet:
            log.error("%s: failed (%s); %s, the others go on", self.name, text, what)
        log.debug("%s: the failure's traceback", self.name, exc_info=err)
        self.messages.append(f"{self.name} failed: {text}; {what}")

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

    def _before_reopen(self) -> None:
        """Called on the sink's thread before it opens again after a failure."""

    def _finish(self) -> None:
        pass


def _same_picture(a, b) -> bool:
    """Whether two queued items show the same picture (a frame submitted again, retimed)."""
    a = a[0] if isinstance(a, tuple) else a
    b = b[0] if isinstance(b, tuple) else b
    index_a, index_b = getattr(a, "index", None), getattr(b, "index", None)
    return index_a is not None and index_a == index_b and getattr(a, "pixels", None) is getattr(b, "pixels", 0)


class Sinks:
    """Several sinks driven as one: what `open_sinks` returns and the engine holds.

    `size`: (width, height) every frame is scaled to before it goes out (render's --size),
    once for all of them, on the frame's device; None: frames go out as they come.
    """

    def __init__(self, sinks, size: tuple[int, int] | None = None):
        self.sinks = list(sinks)
        self.size = size

    def __iter__(self):
        return iter(self.sinks)

    def __len__(self) -> int:
        return len(self.sinks)

    def get(self, name: str):
        """The first sink called `name` (e.g. "preview"), or None."""
        return next((s for s in self.sinks if s.name == name), None)

    def submit(self, frame) -> int:
        """Hand `frame` to every sink; returns how many took it. Never waits on a sink."""
        if self.size is not None:
            frame = resize_frame(frame, self.size)
        return sum(bool(s.submit(frame)) for s in self.sinks)

    def toggle(self) -> list[str]:
        """`record.toggle` to every sink; what those that record takes said."""
        return [said for said in (s.toggle() for s in self.sinks) if said is not None]

    def shows_hud(self) -> bool:
        return any(s.shows_hud for s in self.sinks)

    def set_hud(self, values: Mapping[str, object]) -> None:
        for sink in self.sinks:
            if sink.shows_hud:
                sink.set_hud(values)

    def window_closed(self) -> bool:
        return any(s.window_closed() for s in self.sinks)

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
