"""Takes: a recorder that waits for the performer.

The `takes` output records nothing until `record.toggle` (the R key in the preview, or a pad
mapped to it); then each press starts or ends a take, a new file in its folder named by the
time it started (`takes/take-20261123-214501.mp4`). A take is a `VideoRecorder` written
crash-safe, so even a take the show died in plays up to its last second.

Starting a take opens an encoder (NVENC or libx264: tens of milliseconds) and ending one
flushes it, so both happen on a helper thread: the frame loop never waits for them. Frames
that arrive while a take is starting are not in it.

While a take records, a marker file (`takes/.recording`) says so. A show restarted after a
crash (`perform`'s supervisor) opens the output with `resume=True`: if the marker is there,
the crash ended a take, and a new one starts at once.

With `session_path` (the show's session, which `perform` keeps beside the takes), each saved
take gets a note beside it (`take-....json`): the session, and the show clock's times of the
take's first and last frames, which is what `render --take` needs to play the take again from
the session, at any size, with the take's own sound.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path

from ..common.files import write_whole
from .base import Sink, SinkError, SinkStats
from .mux import import_av
from .recorder import VideoRecorder, next_free_path

log = logging.getLogger(__name__)

DEFAULT_DIR = "takes"
MARKER = ".recording"  # in the takes folder while a take records
TAKE_NOTE_SCHEMA = 1


class TakeRecorder(Sink):
    """Records takes into `directory` on `toggle()`. Extra keyword arguments go to each take's
    VideoRecorder (codec, crf, threads, nice...)."""

    def __init__(self, directory: str | Path = DEFAULT_DIR, *, prefix: str = "take-", name: str = "takes",
                 close_timeout_s: float = 30.0, resume: bool = False, **recorder_kwargs):
        self.name = name
        self.directory = Path(directory)
        self.prefix = prefix
        self.close_timeout_s = close_timeout_s
        self.resume = resume  # after a crash: start a take at once if one was recording
        # a take that fails (the disk, the encoder) goes on in a new file beside it
        self.recorder_kwargs = {"crash_safe": True, "reopen": True, **recorder_kwargs}
        self.session_path: Path | None = None  # the show's session, named in each take's note
        self.width = self.height = 0
        self.fps = 0.0
        self.messages: collections.deque[str] = collections.deque(maxlen=16)  # for the HUD's news
        self.saved: list[Path] = []  # takes written and closed
        self._lock = threading.Lock()
        self._current: VideoRecorder | None = None  # the take frames go to
        self._started_at = 0.0
        self._starting = False  # a take's encoder is opening on a helper thread
        self._stop_when_started = False  # toggled again while starting
        self._helpers: list[threading.Thread] = []
        self._totals = [0, 0, 0, 0]  # submitted, written, dropped, errors of finished takes
        self._last_error: str | None = None
        self._open = False

    # -- the sink protocol ----------------------------------------------------------------
    def open(self, width: int, height: int, fps: float) -> None:
        if width < 1 or height < 1 or fps <= 0:
            raise ValueError(f"{self.name}: bad frame format {width}x{height} @ {fps} fps")
        import_av()  # say now, not at the first take, that PyAV is missing
        if self.directory.exists() and not self.directory.is_dir():
            raise SinkError(f"{self.name}: {self.directory} is a file, not a folder for takes")
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self._open = True
        marker = self.directory / MARKER
        if marker.is_file():
            if self.resume:
                self.messages.append(f"a take ended with the crash ({marker.read_text().strip()}); "
                                     "recording goes on in a new one")
                log.warning("%s", self.messages[-1])
                self.toggle()
            else:
                marker.unlink(missing_ok=True)  # left by a show that died unsupervised

    def submit(self, frame) -> bool:
        take = self._current
        return take.submit(frame) if take is not None else False

    def close(self, timeout_s: float = 2.0) -> bool:
        """End the take in progress (its file is finished, waiting up to `close_timeout_s`, as a
        take must not be cut short at the end of a show) and wait for the helpers."""
        self._open = False
        with self._lock:
            take, self._current = self._current, None
            self._stop_when_started = self._starting
        ok = True
        if take is not None:
            ok = self._finish(take, max(timeout_s, self.close_timeout_s))
        deadline = time.monotonic() + max(timeout_s, self.close_timeout_s)
        for helper in list(self._helpers):
            helper.join(max(0.0, deadline - time.monotonic()))
            ok = ok and not helper.is_alive()
        return ok

    @property
    def stats(self) -> SinkStats:
        submitted, written, dropped, errors = self._totals
        take = self._current
        queued = restarts = 0
        if take is not None:
            st = take.stats
            submitted, written, dropped, errors = (submitted + st.submitted, written + st.written,
                                                   dropped + st.dropped, errors + st.errors)
            queued, restarts = st.queued, st.restarts
        return SinkStats(self.name, submitted, written, dropped, errors, self._last_error, self._open, queued,
                         restarts)

    # -- takes ----------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._current is not None or self._starting

    def toggle(self) -> str:
        """Start a take, or end the one in progress (from the engine thread; never waits).
        Returns what happened, for the HUD."""
        if not self._open:
            return "takes: not open"
        with self._lock:
            if self._starting:
                self._stop_when_started = not self._stop_when_started
                return "take: ending as soon as it has started" if self._stop_when_started else "take: starting"
            take, self._current = self._current, None
            if take is None:
                self._starting, self._stop_when_started = True, False
        if take is not None:
            self._helper(self._finish, take, self.close_timeout_s)
            return f"take ending: {take.path.name}"
        path = self._next_path()
        self._helper(self._start, path)
        return f"take starting: {path.name}"

    def hud_lines(self) -> dict[str, str]:
        status = self.status()
        return {"rec": status} if status else {}

    def status(self, now: float | None = None) -> str | None:
        """'REC 1:23 take-....mp4' while a take records (with "(no sound)" when the audio input
        is not in it), None otherwise."""
        take = self._current
        if take is None:
            return "starting a take" if self._starting else None
        seconds = int((time.monotonic() if now is None else now) - self._started_at)
        # a take meant to carry the audio input says so when it has none (no input running)
        deaf = take.live_audio is not None and take.first_timestamp is not None and take.audio_track is None
        return f"REC {seconds // 60}:{seconds % 60:02d} {take.path.name}" + (" (no sound)" if deaf else "")

    def _next_path(self) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self.directory / f"{self.prefix}{stamp}.mp4"
        return next_free_path(path, self.saved) if path.exists() or path in self.saved else path

    def _start(self, path: Path) -> None:
        take = VideoRecorder(path, name=self.name, **self.recorder_kwargs)
        take.messages = self.messages  # its news (failed, going on in a new file) are the HUD's
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            take.open(self.width, self.height, self.fps)
        except Exception as exc:
            with self._lock:
                self._starting = False
                self._totals[3] += 1
                self._last_error = f"{path}: {exc}"
            log.error("take: could not start %s: %s", path, exc)
            self.messages.append(f"take failed: {exc}"[:200])
            return
        with self._lock:
            self._starting = False
            stop = self._stop_when_started or not self._open
            if not stop:
                self._current, self._started_at = take, time.monotonic()
        if stop:
            self._finish(take, self.close_timeout_s)
        else:
            self._mark(path)
            log.info("take: recording %s", path)

    def _mark(self, path: Path | None) -> None:
        marker = self.directory / MARKER
        try:
            if path is None:
                marker.unlink(missing_ok=True)
            else:
                marker.write_text(f"{path.name}\n")
        except OSError as exc:
            log.debug("take: marker %s: %s", marker, exc)

    def _finish(self, take: VideoRecorder, timeout_s: float) -> bool:
        self._mark(None)
        ok = take.close(timeout_s)
        st = take.stats
        with self._lock:
            for i, n in enumerate((st.submitted, st.written, st.dropped, st.errors)):
                self._totals[i] += n
            if st.errors:
                self._last_error = st.last_error
        if st.written and take.path.is_file():
            self.saved.append(take.path)
            self._write_note(take)
            seconds = st.written / self.fps if self.fps else 0.0
            log.info("take: saved %s (%d frames, ~%.0f s)", take.path, st.written, seconds)
            self.messages.append(f"take saved: {take.path} ({st.written} frames)")
        elif not ok or st.errors:
            self.messages.append(f"take failed: {st.last_error or 'the encoder did not finish'}"[:200])
        return ok

    def _write_note(self, take: VideoRecorder) -> None:
        """The take's note for `render --take` (see the module's docstring), written whole."""
        if self.session_path is None or take.first_timestamp is None:
            return
        session = Path(self.session_path)
        try:
            session = Path(os.path.relpath(session, take.path.parent))
        except ValueError:  # another drive (Windows): keep it absolute
            pass
        note = {"type": "take", "schema_version": TAKE_NOTE_SCHEMA, "video": take.path.name,
                "session": session.as_posix(), "first_frame_clock_s": take.first_timestamp,
                "last_frame_clock_s": take.last_timestamp, "frames": take.stats.written, "fps": self.fps}
        path = take.path.with_suffix(".json")
        try:
            with write_whole(path, ".json.part") as tmp:
                Path(tmp).write_text(json.dumps(note, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:  # (FileWriteError too)
            log.warning("take: could not write %s (%s); the take plays, but cannot be rendered again", path, exc)

    def _helper(self, fn, *args) -> None:
        self._helpers = [h for h in self._helpers if h.is_alive()]
        helper = threading.Thread(target=fn, args=args, name=f"{self.name}-helper", daemon=True)
        self._helpers.append(helper)
        helper.start()
