"""MIDI in and out: controllers -> ControlEvents, and values -> LEDs / motor faders.

Threads (docs/architecture.md, "Threads and processes"):

- the backend's callback thread (one per open input port) owns nothing: it timestamps on the
  instrument clock, decodes the bytes, and puts the event in a DropQueue (queues.py), which
  drops the newest when full and counts it; MIDI clock and transport (0xF8, 0xFA, 0xFB, 0xFC,
  0xF2) go instead to the MidiInput's `midi_clock` (clock.py), with the same timestamp, and
  never reach the queue (70 ticks/s at 174 BPM must not wake the engine);
- the hot-plug poller (one per MidiInput / MidiOutput) owns the open ports: every `poll_s` it
  lists the ports, closes the ones that vanished and (re)opens the ones that match; listing and
  opening are not thread-safe in mido/rtmidi, so only this thread does them after start();
- the engine calls `MidiInput.drain()` once per frame and `MidiOutput.send()`; neither waits:
  drain empties the queue, send skips the frame if the poller holds the ports just then.

Coalescing (latest value per continuous control) happens in the router, not here: drain returns
every event in arrival order.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ...common.clock import Clock, MonotonicClock
from ...common.events import ControlEvent
from ...common.queues import DropQueue, QueueBound
from ...common.text import shorten, shorten_repr
from ..complaints import Complaints
from .clock import MESSAGES as CLOCK_MESSAGES
from .clock import MidiClock
from .ports import CLIENT_NAME, Backend, MidiPortError, PortMatcher, normalise

log = logging.getLogger("ganinstrument.midi")
# How often the ports are listed, to open the ones that appear and notice the ones that go.
# A device unplugged and back within one poll keeps a dead port (nothing says it left), so this
# is shorter than a USB device takes to come back (about a second); a listing costs ~0.05 ms.
POLL_S = 0.5

# Channel-voice status nibble -> (mido type, message length in bytes).
_VOICE = {
    0x80: ("note_off", 3),
    0x90: ("note_on", 3),
    0xA0: ("polytouch", 3),
    0xB0: ("control_change", 3),
    0xC0: ("program_change", 2),
    0xD0: ("aftertouch", 2),
    0xE0: ("pitchwheel", 3),
}


def decode(data: Sequence[int], timestamp: float = 0.0, source: str = "") -> ControlEvent | None:
    """One MIDI message's bytes -> a ControlEvent; None for system messages (sysex, clock, ...).

    Raises ValueError for malformed bytes (wrong length, a data byte >= 128, no status byte).
    Values are raw, as mido gives them: 0..127, pitchwheel -8192..8191; a program change has
    the program in both `number` and `value`; aftertouch has number 0.
    """
    status = data[0]
    if status >= 0xF0:
        return None
    voice = _VOICE.get(status & 0xF0)
    if voice is None:
        raise ValueError(f"no status byte: {list(data)!r}")
    kind, length = voice
    if len(data) != length or any(b > 127 or b < 0 for b in data[1:]):
        raise ValueError(f"malformed {kind}: {list(data)!r}")
    channel = status & 0x0F
    if length == 2:
        number = data[1] if kind == "program_change" else 0
        return ControlEvent(kind, channel, number, float(data[1]), timestamp, source)
    if kind == "pitchwheel":
        return ControlEvent(kind, channel, 0, float(data[1] | (data[2] << 7)) - 8192.0, timestamp, source)
    return ControlEvent(kind, channel, data[1], float(data[2]), timestamp, source)


def bytes_shown(data: Sequence[int], limit: int = 8) -> str:
    """MIDI bytes for a log line: "[90 3C 40]", the first `limit` of a long message."""
    try:
        head = " ".join(f"{int(b) & 0xFF:02X}" for b in list(data[:limit]))
    except Exception:  # not bytes at all
        return shorten_repr(data, 40)
    return f"[{head}{f' ... ({len(data)} bytes)' if len(data) > limit else ''}]"


@dataclass
class PortCounters:
    """Per input port; written only by that port's callback thread, read by anyone."""

    received: int = 0
    dropped: int = 0  # the queue was full
    ignored: int = 0  # system messages (sysex, active sensing, ...) that got through
    malformed: int = 0
    clock: int = 0  # clock and transport messages handed to the MidiClock


@dataclass(frozen=True)
class MidiStats:
    received: int
    dropped: int
    ignored: int
    malformed: int
    queued: int
    open_ports: tuple[str, ...]
    clock: int = 0  # clock and transport messages (midi_clock has their own counts)


class PortSet:
    """The open ports of one direction that match a PortMatcher; reopened as devices come and go.

    `opener(name)` opens a port and returns its handle (with the close function as
    `handle[-1]` when a tuple, or the handle itself when callable); it raises MidiPortError.
    `on_change(change, name)` with change "opened", "lost" or "reopened" runs on the poller
    thread: keep it short (set a flag for the engine: re-send LEDs, re-arm takeover).
    """

    def __init__(self, backend, direction: str, matcher: PortMatcher, opener, on_change=None,
                 poll_s: float = POLL_S):
        self.backend, self.direction, self.matcher = backend, direction, matcher
        self._opener, self._on_change, self.poll_s = opener, on_change, poll_s
        self.lock = threading.Lock()  # held while the port dict changes; users try-acquire
        self.handles: dict[str, object] = {}  # owned by the poller (under lock)
        self.open_names: tuple[str, ...] = ()
        self.messages: deque[str] = deque(maxlen=32)
        self._seen: set[str] = set()
        self._said: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_poll: list[Callable[[], None]] = []  # run by the poller every poll_s (short!)

    # -- the poller ---------------------------------------------------------------------
    def start(self) -> None:
        self.scan()  # synchronously once, so a missing device is reported at start
        self._thread = threading.Thread(target=self._run, name=f"midi-{self.direction}-hotplug", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.scan()
                for tick in self.on_poll:
                    tick()
            except Exception as exc:  # the poller must outlive anything a backend throws
                self._say("scan", f"MIDI {self.direction} poll failed: {exc}")

    def scan(self) -> None:
        """List the ports once: close the vanished, open the matching (the poller's job)."""
        try:
            names = self.backend.names(self.direction)
        except MidiPortError as exc:
            self._say("backend", f"{exc}; will retry every {self.poll_s:g} s")
            names = []
        else:
            self._said.pop("backend", None)
        for name in [n for n in self.handles if n not in names]:
            self._close(name)
            self._notify("lost", name)
            self._say(name, f"MIDI {self.direction} {name!r} is gone; will reopen it when it returns")
        for name in self.matcher.choose(names):
            if name in self.handles:
                continue
            try:
                handle = self._opener(name)
            except MidiPortError as exc:
                self._say(name, str(exc))
                continue
            with self.lock:
                self.handles[name] = handle
            key = normalise(name)
            change = "reopened" if key in self._seen else "opened"
            self._seen.add(key)
            self._said.pop(name, None)
            log.info("MIDI %s %s: %s", self.direction, change, name)
            self._notify(change, name)
            self.open_names = tuple(self.handles)  # after the callback: whoever sees it, sees both
        if not self.handles and self.matcher.patterns:
            listed = ", ".join(repr(n) for n in names) or "none"
            self._say("missing", f"no MIDI {self.direction} matches {self.matcher.describe()} "
                                 f"({self.direction}s now: {listed}); still looking every {self.poll_s:g} s")
        else:
            self._said.pop("missing", None)

    def _close(self, name: str) -> None:
        with self.lock:
            handle = self.handles.pop(name)
            self.open_names = tuple(self.handles)
        close = handle[-1] if isinstance(handle, tuple) else handle
        try:
            close()
        except Exception as exc:  # closing a dead port may complain; it is closed either way
            log.debug("closing MIDI %s %s: %s", self.direction, name, exc)

    def _notify(self, change: str, name: str) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(change, name)
        except Exception:
            log.exception("MIDI on_change callback failed")

    def _say(self, key: str, text: str) -> None:
        # Once per distinct message: a poll every POLL_S must not flood the log.
        if self._said.get(key) != text:
            self._said[key] = text
            self.messages.append(text)
            log.warning("%s", text)

    def close(self, timeout_s: float = 2.0) -> bool:
        """Stop the poller (within `timeout_s`), then close every port. True if the thread stopped."""
        self._stop.set()
        stopped = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            stopped = not self._thread.is_alive()
        for name in list(self.handles):
            self._close(name)
        return stopped


class _PortClient:
    """What MIDI in and out share: their PortSet (hot-plugged ports, news for the HUD) on a backend."""

    backend: Backend
    ports: PortSet

    def start(self):
        self.ports.start()
        return self

    @property
    def open_ports(self) -> tuple[str, ...]:
        return self.ports.open_names

    @property
    def messages(self) -> deque[str]:
        """What the performer should know (a device missing, a port in use), newest last."""
        return self.ports.messages

    def close(self, timeout_s: float = 2.0) -> bool:
        """Stop the poller and close the ports; True if the poller stopped within `timeout_s`."""
        stopped = self.ports.close(timeout_s)
        if hasattr(self.backend, "close"):
            self.backend.close()
        return stopped

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class MidiInput(_PortClient):
    """Controller inputs: every port matching `ports` (None: every input), hot-plugged.

    `drain()` -> the ControlEvents since the last call, in arrival order. The queue holds at most
    `queue_size` events; beyond that new events are dropped and counted (stats().dropped).
    `backend`: a mido backend string ("mido.backends.rtmidi/UNIX_JACK"); None reads MIDO_BACKEND.
    `midi_clock` (always present) follows the MIDI clock and transport of every open port.
    """

    def __init__(self, ports: Iterable[str] | str | None = None, *, backend=None, clock: Clock | None = None,
                 queue_size: int = 8192, poll_s: float = POLL_S, client_name: str = CLIENT_NAME,
                 on_change: Callable[[str, str], None] | None = None):
        self.backend = backend if isinstance(backend, Backend) or hasattr(backend, "names") \
            else Backend(backend, client_name)
        self.clock = clock or MonotonicClock()
        self._queue: DropQueue[ControlEvent] = DropQueue(int(queue_size), drop="newest")
        # One clock, fed by every open port. Two devices clocking us at once is the performer's
        # problem (their ticks would add up): the clock counts it (conflicts) and we say it.
        self.midi_clock = MidiClock(self.clock.now)
        self._counters: list[PortCounters] = []
        self.ports = PortSet(self.backend, "input", PortMatcher(ports, client_name), self._open,
                             on_change, poll_s)
        if isinstance(self.backend, Backend):  # the MIDI input process's restarts, for the performer
            self.backend.notify = self.ports.messages.append
        # Malformed bytes: one line per port, then counts (said by the poller).
        self._complaints = Complaints("MIDI", self.ports.messages, log)
        self.ports.on_poll.append(self._complaints.flush)

    def _open(self, name: str):
        counters = PortCounters()
        self._counters.append(counters)
        put, now, complaints = self._queue.put, self.clock.now, self._complaints
        midi_clock = self.midi_clock

        def on_bytes(data, _name=name):
            # The backend's thread: timestamp, decode, queue. Nothing else, never raises.
            t = now()
            if data and data[0] in CLOCK_MESSAGES:
                if len(data) != (3 if data[0] == 0xF2 else 1) or any(not 0 <= b <= 127 for b in data[1:]):
                    counters.malformed += 1
                    complaints.say(("malformed", _name), f"MIDI {shorten(_name, 60)}: malformed message "
                                   f"{bytes_shown(data)} ignored (a faulty device or cable?)",
                                   f"MIDI {shorten(_name, 60)}: {{n}} more malformed messages ignored")
                    return
                counters.clock += 1
                conflicts = midi_clock.conflicts
                midi_clock.feed(data[0], data[1:], t, _name)
                if midi_clock.conflicts != conflicts:
                    complaints.say("clock conflict", f"MIDI clock from more than one port at once (now "
                                   f"{shorten(_name, 60)}): the tempo and beat follow their sum; "
                                   f"unplug or mute the clock of all but one",
                                   "MIDI clock from more than one port: {n} more ticks")
                return
            try:
                event = decode(data, t, _name)
            except Exception:
                counters.malformed += 1
                complaints.say(("malformed", _name), f"MIDI {shorten(_name, 60)}: malformed message "
                               f"{bytes_shown(data)} ignored (a faulty device or cable?)",
                               f"MIDI {shorten(_name, 60)}: {{n}} more malformed messages ignored")
                return
            if event is None:
                counters.ignored += 1
            elif put(event):
                counters.received += 1
            else:
                counters.dropped += 1

        return self.backend.open_input(name, on_bytes)

    def drain(self) -> list[ControlEvent]:
        """Every event since the last drain, oldest first (the engine, once per frame)."""
        return self._queue.drain()

    def hud_lines(self) -> dict[str, str]:
        """While no port is open: what it is waiting for."""
        return {} if self.open_ports else {"midi": f"waiting for {self.ports.matcher.describe()}"}

    queue_size = QueueBound()  # how many events may wait for the engine (then the newest are dropped)

    def stats(self) -> MidiStats:
        cs = list(self._counters)
        return MidiStats(sum(c.received for c in cs), sum(c.dropped for c in cs), sum(c.ignored for c in cs),
                         sum(c.malformed for c in cs), len(self._queue), self.open_ports,
                         sum(c.clock for c in cs))



class MidiOutput(_PortClient):
    """Feedback outputs: every port matching `ports` (None or empty: none), hot-plugged.

    `send(data)` writes one message to every open output; it never waits: when the poller is
    (re)opening ports just then it returns False and the caller tries again next frame.
    """

    def __init__(self, ports: Iterable[str] | str | None = None, *, backend=None, poll_s: float = POLL_S,
                 client_name: str = CLIENT_NAME, on_change: Callable[[str, str], None] | None = None):
        self.backend = backend if isinstance(backend, Backend) or hasattr(backend, "names") \
            else Backend(backend, client_name)
        matcher = PortMatcher(ports, client_name)
        if not matcher.patterns:
            matcher.matches = lambda name: False  # never spray LED messages at every synth
        self.ports = PortSet(self.backend, "output", matcher, self.backend.open_output, on_change, poll_s)
        self.sent = 0
        self.errors = 0  # written by the sending thread only

    def send(self, data: Sequence[int]) -> bool:
        lock = self.ports.lock
        if not lock.acquire(blocking=False):
            return False
        try:  # under the lock, so the poller never closes a port mid-send (it waits for us)
            if not self.ports.handles:
                return False
            for name, (send, _close) in self.ports.handles.items():
                try:
                    send(list(data))
                    self.sent += 1
                except Exception as exc:  # unplugged under us (WinMM raises): the poller will notice
                    self.errors += 1
                    self.ports._say(name, f"MIDI output {name!r}: send failed: {exc}")
            return True
        finally:
            lock.release()

