"""The frame loop: the one pipeline both `perform` (live) and `render` (offline) drive.

The engine thread owns the instrument (state, smoothing, scene, generator). Each frame it

  1. drains the control sources (keys from the preview, MIDI, OSC, or a recorded timeline),
     in arrival order;
  2. routes control events through the mapping into ParamUpdates and applies them;
  3. reads every modulation source (audio features) and feeds the readings to the modulation;
  4. steps the instrument by the clock's dt (smooth, modulate, update the scene, render);
  5. submits the frame to every sink, which never waits (each sink has its own thread).

Live, the clock is the real one and frames are paced to `fps` (late latching: pacing.py).
Offline (`offline=True`, `render`), the clock is a FakeClock the engine moves exactly 1/fps a
frame and never sleeps; a pre-roll (`pre_roll` frames) moves every value on without drawing,
so a take renders from the middle of a show with every value where it was.

Sources and sinks run their own threads and never hold the engine up: latest wins, slow sinks
drop frames and count them. An exception inside a frame is logged with its traceback, shown
on the HUD, and the last good frame stays up. Shutdown is startup in reverse, each part with a
timeout.
"""

from __future__ import annotations

import collections
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from ..common import heap
from ..common.clock import Clock, MonotonicClock
from ..common.events import ControlEvent, ParamUpdate
from ..common.frame import Frame
from ..common.observers import notify
from ..common.queues import DropQueue
from ..common.text import shorten
from ..instrument.show import RECORD, Panic, apply_controls
from ..modulation.beat import SOURCE as BEAT
from ..modulation.beat import TEMPO_ACTION_NAMES
from .hud import Hud
from .pacing import LivePacing, OfflinePacing, Pacing
from .params_log import ParamsLog
from .quantize import Quantizer
from .stats import EngineStats, FrameTimes, Running

if TYPE_CHECKING:
    from ..instrument.facade import Instrument
    from ..mapping.router import Router
    from ..modulation.beat import BeatSource
    from ..modulation.source import ModulationSource
    from ..outputs.base import Sinks
    from ..sources.midi.feedback import MidiFeedback
    from ..sources.protocols import ControlSource
    from ..sources.replay import SessionWriter

log = logging.getLogger(__name__)

UNRECORDED_ACTIONS = ("quit", "midi.reconnected")  # a key's action a session does not replay
KEY_QUEUE = 256  # key actions waiting for the next frame; beyond that the oldest are dropped


class News(str):
    """A message for the HUD. Each is its own object, so the HUD (which shows a source's newest
    message once it changes) shows "frozen" again the second time it happens."""


class Autosaver(Protocol):
    """What the engine asks of the autosave (commands.autosave.Autosave)."""

    def tick(self, now: float) -> None: ...

    def close(self, timeout_s: float = 2.0) -> bool: ...


class Engine:
    """Drives one Instrument from its sources into its sinks.

    Every part is optional: `router` (mapping.Router) for the sources' control events,
    `controls` (sources.protocols.ControlSource: MIDI, OSC, a recorded timeline),
    `modulation` (modulation.source.ModulationSource: audio features, LFOs, live or recorded),
    `beat` (modulation.beat.BeatSource: the live beat clock, read first; its tempo.* actions),
    `feedback` (LEDs and motor faders follow the values), `sinks` (outputs.Sinks), `session`
    (every control event and modulation reading logged, for `render --session`), `autosave`
    (the look, for a restart after a crash), `log_params` (a path: every target value per frame,
    and the beat clock, as JSON lines).

    `fps`: the frame rate to pace at (None: as fast as the generator goes). `offline`: the
    clock is a FakeClock the engine moves exactly 1/fps a frame (never sleeping), frames are
    stamped i/fps, the presets folder is read inline, and Ctrl-C is raised again after closing
    (an offline run stopped part way is not a result). `pre_roll`: that many frames first move
    every value on without drawing or sending anything; `draw=False`: every frame does that
    (benchmarks of the input path). `max_frames`: stop after that many
    frames out. `close_timeout_s`: each part's time to stop at the end. `start_s`: the clock's
    time of the show's t = 0 in sessions and logs (None: the first frame's; render: 0, the
    session's own, so a take's pre-roll keeps the show's times).
    """

    def __init__(self, instrument: Instrument, *, router: Router | None = None,
                 controls: Sequence[ControlSource] = (), modulation: Sequence[ModulationSource] = (),
                 beat: BeatSource | None = None,
                 sinks: Sinks | None = None, clock: Clock | None = None, fps: float | None = 60.0,
                 offline: bool = False, pre_roll: int = 0, draw: bool = True, max_frames: int | None = None,
                 log_params: str | os.PathLike | None = None, session: SessionWriter | None = None,
                 feedback: MidiFeedback | None = None, autosave: Autosaver | None = None,
                 trim_heap_s: float | None = heap.INTERVAL_S, close_timeout_s: float = 2.0,
                 start_s: float | None = None):
        self.inst = instrument
        self.router = router
        self.controls: tuple[ControlSource, ...] = tuple(controls)
        self.beat = beat
        self.modulation: tuple[ModulationSource, ...] = ((beat,) if beat is not None else ()) + tuple(modulation)
        self.quantizer = Quantizer()
        self._clock: Mapping[str, float | None] = {}  # the beat clock's reading this frame
        self._silent: set[str] = set()  # sources whose silence the session has logged
        self.sinks = sinks
        self.feedback = feedback
        self.autosave = autosave
        self.clock: Clock = clock or MonotonicClock()
        self.fps = fps
        self.offline = offline
        self._stop = threading.Event()
        self.pacing: Pacing = OfflinePacing(self.clock, fps) if offline else LivePacing(self.clock, fps, self._stop)
        self.max_frames = max_frames
        self.close_timeout_s = close_timeout_s
        self.session = session
        self._run = Running()
        self._pre_roll_left = max(0, int(pre_roll))
        self.draw = draw
        # Observers called after each frame with the frame (None before the first picture, and
        # when not drawing) and its FrameTimes, on the engine thread: keep them short (benchmarks, progress, tools).
        self.on_frame: list[Callable[[Frame | None, FrameTimes], None]] = []
        self.panic = Panic()  # freeze / blackout
        self.messages: collections.deque[str] = collections.deque(maxlen=8)  # for the HUD's news
        self._keys: DropQueue[str] = DropQueue(KEY_QUEUE, drop="oldest")  # (the newest, quit, matters most)
        self._log = ParamsLog(log_params) if log_params else None
        self._last_t: float | None = None
        self._now = 0.0  # the clock at the frame
        self.start_s = start_s
        self._start_t: float | None = None
        self._last_good: Frame | None = None
        self.heap_trimmer = heap.HeapTrimmer(trim_heap_s) if trim_heap_s else None  # (run() starts it)
        self._in_flight: collections.deque = collections.deque()  # CUDA events of frames not yet done
        self._said_session_error = False
        self.hud = Hud()

    # -- control ------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the loop to finish after the current frame (any thread, signal handlers too)."""
        self._stop.set()

    def key_action(self, action: str) -> None:
        """Called from the preview thread: queue a key's action for the next frame."""
        self._keys.put(action)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def frozen(self) -> bool:
        return self.panic.frozen

    @property
    def blackout(self) -> bool:
        return self.panic.blackout

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> EngineStats:
        """Run frames until stopped (Ctrl-C, quit key, window closed, max_frames); then close.

        Everything built before the show (torch, the networks, the mapping: ~170,000 Python
        objects for the demo) is frozen out of Python's cyclic garbage collector for the run:
        a full collection walks every object and took 50..150 ms here, a stall of several
        frames at a random moment. Collections of what the show itself allocates stay cheap.
        Every `trim_heap_s` the heap is checked, and freed memory goes back to the system once
        it has grown (heap.HeapTrimmer), so the show's memory stays flat.
        """
        gc.collect()
        gc.freeze()
        if self.heap_trimmer is not None:
            self.heap_trimmer.start()
        if not self.offline:  # (offline, files are read inline: a recall lands on its frame)
            self.inst.bank.start()  # preset files are read and written on its worker from now on
        interrupted = False
        try:
            self.pacing.start()
            while not self._stop.is_set():
                self.frame()
                if self.max_frames is not None and self._run.frames >= self.max_frames:
                    break
                if self.sinks is not None and self.sinks.window_closed():
                    break
                self.pacing.wait()
        except KeyboardInterrupt:
            log.info("stopping (Ctrl-C)")
            interrupted = True
        finally:
            if self.heap_trimmer is not None:
                self.heap_trimmer.stop()
            self.close(self.close_timeout_s)
            gc.unfreeze()
        if interrupted and self.offline:
            raise KeyboardInterrupt
        return self.stats

    def frame(self) -> Frame | None:
        """One frame: drain, route, apply, modulate, step, submit. Never raises. When not
        drawing (the pre-roll, or `draw` off): drain, route, apply, modulate and move the values
        on; nothing is drawn or sent, and the frame is not counted among the frames out."""
        now = self.clock.now()
        if self._start_t is None:
            self._start_t = now if self.start_s is None else self.start_s
            if self.session is not None:
                self.session.start(self._start_t)
        dt = 0.0 if self._last_t is None else max(0.0, now - self._last_t)
        self._last_t = self._now = now
        t = now - self._start_t
        drawing = self.draw and not self._pre_roll_left
        self._pre_roll_left = max(0, self._pre_roll_left - 1)
        started = time.perf_counter()
        marks = [started] * 5  # after the GPU wait, the controls, the modulation, the render; the submit's start
        rendered_before = self._run.rendered
        try:
            self._wait_for_gpu()
            marks[0] = time.perf_counter()
            self._take_controls(t)
            marks[1] = time.perf_counter()
            self._take_modulation(t)
            self._fire_quantized()
            marks[2] = time.perf_counter()
            frame = self._render(dt) if drawing else self._advance(dt)
            marks[3] = time.perf_counter()
            if self._run.rendered > rendered_before and frame.pixels.is_cuda:
                done = torch.cuda.Event(blocking=True)  # sleeps rather than spins when waited on
                done.record()
                self._in_flight.append(done)
        except Exception as exc:  # the show goes on with the last good frame
            last_good = self._failed(exc)
            frame = last_good if drawing else None
        self._run.frames += drawing
        seconds = time.perf_counter() - started
        ms = seconds * 1e3
        self._run.frame_ms = ms
        if self._run.rendered > rendered_before:
            self.pacing.drew(seconds)
        if dt > 0:
            self._run.fps = 0.9 * self._run.fps + 0.1 / dt if self._run.fps else 1.0 / dt
        marks[4] = time.perf_counter()
        if drawing and frame is not None and self.sinks is not None:
            stamp = self.pacing.stamp(now, self._run.frames - 1)
            self.sinks.submit(self.panic.output(frame).again(stamp))
        submitted = time.perf_counter()
        if drawing and self._run.frames == 1:
            log.info("first frame out")  # (benchmarks/startup.py times launch to this line)
        if self.feedback is not None:
            try:
                self.feedback.update()  # LEDs and motor faders follow the values, throttled
            except Exception as exc:
                log.debug("MIDI feedback failed: %s", exc)
        if self.autosave is not None:
            try:
                self.autosave.tick(now)
            except Exception as exc:
                log.debug("autosave snapshot failed: %s", exc)
        if drawing:
            self._log_values(t)
        try:
            self._update_hud(now)
        except Exception as exc:  # a part that cannot say what it is doing stops nothing
            log.debug("the HUD's values failed: %s", exc)
        waited, input_end, modulation_end, render_end, submit_start = marks
        self._run.times = times = FrameTimes(
            max(0.0, input_end - waited), max(0.0, modulation_end - input_end), max(0.0, render_end - modulation_end),
            submitted - submit_start, time.perf_counter() - started, waited - started)
        notify(self.on_frame, frame, times, what="an on_frame")
        return frame

    @property
    def stats(self) -> EngineStats:
        """The engine's counters now (a frozen snapshot)."""
        return EngineStats(**vars(self._run))

    def _take_controls(self, t: float) -> None:
        """The controls of this frame: keys (the preview's, then recorded ones), then each
        source's events and updates; routed and applied, in arrival order."""
        keys = self._keys.drain()
        events: list[ControlEvent] = []
        direct: list[ParamUpdate] = []
        for source in self.controls:
            for item in source.drain():
                if not isinstance(item, ParamUpdate):
                    events.append(item)
                elif item.source == "key":  # (a recorded session's keys)
                    keys.append(item.target)
                else:
                    direct.append(item)
        if self.session is not None:
            for action in keys:
                if action not in UNRECORDED_ACTIONS:
                    self.session.update(t, ParamUpdate(action, action=True, source="key"))
            for ev in events:
                self.session.event(t, ev)
            for up in direct:
                self.session.update(t, up)
        if self.feedback is not None and events:
            self.feedback.observe(events)  # echo suppression: don't fight a control being moved
        updates = list(direct)
        if self.router is not None and events:
            updates.extend(self.router.route(events))
        self._run.events += len(events)
        now = []
        for update in updates:  # (an action that waits for the beat is held: _fire_quantized)
            (self.quantizer.hold if update.action and update.quantize else now.append)(update)
        self._apply(keys, now)

    def _apply(self, keys: list[str], updates: list[ParamUpdate]) -> None:
        touched = apply_controls(self.inst, self.panic, keys, updates, self._engine_action)
        if touched:
            self._run.last_touched = touched

    def _fire_quantized(self) -> None:
        """The held actions whose beat has come (the frame's beat from the beat clock's reading)."""
        due = self.quantizer.due(self._clock.get("beats"), self._clock.get("beats_per_bar", 4.0), self._now,
                                 self._clock.get("tempo_bpm"))
        if due:
            self._apply([], due)

    def _take_modulation(self, t: float) -> None:
        """Every modulation source's reading, logged in the session, fed to the modulation
        (while frozen, read and dropped: the look comes back as it was)."""
        modulation = self.inst.modulation
        for source in self.modulation:
            reading = source.read(self._now)  # (all of them at the frame's time)
            if source.name == BEAT and reading.values:  # (a recorded clock can have frames without)
                self._clock = reading.values  # (the frame's beat: quantized actions, the logs)
                bpm = reading.values.get("tempo_bpm")
                if bpm is not None and bpm != self.inst.state.target("tempo.bpm"):  # (MIDI clock, a tap:
                    self.inst.set("tempo.bpm", bpm, immediate=True)  # the knob and morph_beats see it)
            if self.session is not None and not (reading.silent and not reading.events and source.name in self._silent):
                self.session.modulation(t, source.name, reading.as_row())  # (a silence once, not every frame)
            if reading.silent:
                self._silent.add(source.name)
            else:
                self._silent.discard(source.name)
            if modulation is not None and not self.frozen:
                modulation.feed(reading)
        error = self.session.error if self.session is not None else None
        if error and not self._said_session_error:  # (the disk is full: the show goes on)
            self._said_session_error = True
            self.messages.append(News(error))

    def _advance(self, dt: float) -> None:
        if not self.frozen:
            self.inst.advance(dt)

    def _render(self, dt: float) -> Frame:
        if self.frozen and self._last_good is not None:
            return self._last_good
        frame = self.inst.step(dt)
        if frame.index != (self._last_good.index if self._last_good is not None else None):
            self._run.rendered += 1
        self._last_good = frame
        return frame

    def _failed(self, exc: Exception) -> Frame | None:
        self._run.errors += 1
        self._run.last_error = f"{type(exc).__name__}: {exc}"
        if self._run.errors == 1 or self._run.errors % 100 == 0:
            log.error("frame %d failed (%d so far): %s; %s (--debug shows where)", self._run.frames,
                      self._run.errors, shorten(self._run.last_error, 300),
                      "the render stops" if self.offline else "the last good frame stays up")
        log.debug("frame %d failed", self._run.frames, exc_info=exc)  # (formatted only when shown)
        if self.offline:  # a render does not go on without its picture: it fails at once
            self.request_stop()
        return self._last_good

    def _engine_action(self, update: ParamUpdate) -> bool:
        """The engine's own actions (show.apply_controls calls this first); False: not one."""
        action = update.target
        if self.panic.handles(action):
            self.messages.append(News(self.panic.toggle(action)))
        elif action in TEMPO_ACTION_NAMES:  # (a render plays its recorded clock: nothing to do)
            if self.beat is not None:
                # (a tap at the moment the pad was hit, not the frame's: the event's own time)
                bpm = self.beat.act(action, update.time_s if update.time_s is not None else self.clock.now())
                if bpm is not None:
                    self.inst.set("tempo.bpm", bpm, immediate=True)  # what the tempo knob shows
        elif action == RECORD:
            self.messages.append(News(self._toggle_takes()))
        elif action == "quit":
            self.request_stop()
        elif action == "midi.reconnected":  # a controller came back: its faders are anywhere
            if self.router is not None:
                self.router.rearm(forget_position=True)
            if self.feedback is not None:
                self.feedback.resend_all()
        else:
            return False
        return True

    def _toggle_takes(self) -> str:
        said = self.sinks.toggle() if self.sinks is not None else []
        return "; ".join(said) if said else "nothing to record to: add takes to --output"

    def _wait_for_gpu(self) -> None:
        """On CUDA a render only queues kernels and returns. Unchecked, the engine would run
        frames ahead of the GPU until CUDA's launch queue filled, each queued frame adding a
        frame of control-to-picture latency, and the time a frame takes (pacing's late
        latching, the HUD) would be the queueing time. So at most one frame is still on the
        GPU when the next is queued: before taking input, wait for the frame before the last.
        That keeps the CPU's queueing of one frame overlapping the GPU's work on the other."""
        while len(self._in_flight) >= 2:
            self._in_flight.popleft().synchronize()

    def _log_values(self, t: float) -> None:
        if self._log is None:
            return
        clock = None
        if self._clock:  # the beat at the frame's time (the sources are read at it), and that time
            # on the show clock (perf_counter = CLOCK_MONOTONIC: t_host_us), so another program can compare
            clock = {"bpm": self._clock.get("tempo_bpm"), "beat": self._clock.get("beats"),
                     "source": self.beat.now.source if self.beat is not None else "session",
                     "t_host_us": round(self._now * 1e6)}
        self._log.write(self._run.frames - 1, t, self.inst.last_values, clock)
        if self._log.error is not None:  # (the disk is full: said once, the show goes on)
            self.messages.append(News(self._log.error))
            self._log = None

    def _update_hud(self, now: float) -> None:
        if self.sinks is not None and self.sinks.shows_hud():
            self.sinks.set_hud(self.hud_values(now))

    def hud_values(self, now: float) -> dict[str, object]:
        """What the HUD shows besides the picture (hud.py)."""
        return self.hud.values(self, now)

    # -- shutdown -----------------------------------------------------------------------
    def close(self, timeout_s: float = 2.0) -> bool:
        """Startup in reverse: inputs first (so nothing new arrives), then outputs, then logs."""
        ok = True
        for part in self.controls + ((self.feedback,) if self.feedback is not None else ()):
            ok = _quietly(part.close, timeout_s) and ok
        for source in self.modulation:
            ok = _quietly(source.stop, timeout_s) and ok
        if self.sinks is not None:
            ok = _quietly(self.sinks.close, timeout_s) and ok
        if self.autosave is not None:
            ok = _quietly(self.autosave.close, timeout_s) and ok
            self.autosave = None
        ok = _quietly(self.inst.bank.close, max(timeout_s, 5.0)) and ok  # the saves still queued
        for part in (self._log, self.session):
            if part is not None:
                _quietly(part.close)
        self._log = None
        self.session = None
        self._run.closed = ok
        return ok


def _quietly(fn, *args) -> bool:
    try:
        result = fn(*args)
        return result is not False
    except Exception as exc:
        log.warning("while shutting down %s: %s", getattr(fn, "__qualname__", fn), exc)
        return False
