"""MIDI ports: which backend, which names match, opening and closing, errors that say what to do.

The backend follows mido's own convention: `MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK` (module,
then an optional API after the slash); `--midi-api alsa|jack` says the same. Without either, and
with several APIs compiled into python-rtmidi (Linux), the first that works is used: ALSA if its
sequencer opens, else JACK if a server runs. ALSA's and JACK's own stderr chatter is silenced. For the rtmidi module (the one we depend on) ports are opened
with python-rtmidi directly, because mido turns any port opened with a client name into a virtual
port, and because the raw callback is the cheapest place to timestamp. Any other mido backend
(portmidi, ...) works through mido's own ports.

Port names are unstable: ALSA adds `client:port` numbers, Windows appends " <index>", both change
across reboots. Patterns therefore match a normalised name, case-insensitively, as a substring, or
as a regular expression when written `/like this/`.

Listing and opening are not thread-safe in mido/rtmidi, so one thread (the hot-plug poller) does
all of it; see `midi.PortSet`.

RtMidi inputs are opened in a child process (midi/child.py, driven by midi/host.InputHost), because
RtMidi's input queue can crash the process that reads it; a crash there now costs a restart of that
child, not of the show. `GANINSTRUMENT_MIDI_INPROCESS=1`, or a platform where no child can start (a
frozen app), reads the inputs in this process instead.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable

from ...common.errors import GanInstrumentError
from .child import PortGone, api_label, open_rtmidi_input
from .host import HostError, HostUnavailable, InputHost

log = logging.getLogger(__name__)

DEFAULT_BACKEND = "mido.backends.rtmidi"
CLIENT_NAME = "ganinstrument"

# RtMidi's trailing ALSA "20:0" and Windows " 3" are not part of a device's name.
_ALSA_NUMBERS = re.compile(r"\s+\d+:\d+$")
_WINDOWS_INDEX = re.compile(r"\s+\d+$")
# Ports that never are a controller: ALSA's loopback.
_NEVER = re.compile(r"midi through", re.IGNORECASE)


# --midi-api values -> RtMidi API names (the part after the slash in MIDO_BACKEND).
MIDI_APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE", "winmm": "WINDOWS_MM"}


def backend_spec(midi_api: str | None) -> str | None:
    """The backend string for a --midi-api value; None for "auto" (MIDO_BACKEND, else a probe)."""
    if not midi_api or midi_api == "auto":
        return None
    return f"{DEFAULT_BACKEND}/{MIDI_APIS.get(midi_api.lower(), midi_api)}"


def add_midi_api_option(parser) -> None:
    """--midi-api for perform, devices and learn."""
    parser.add_argument("--midi-api", default="auto", choices=["auto", *MIDI_APIS],
                        help="MIDI system: auto (default: MIDO_BACKEND if set, else ALSA if its sequencer "
                             "opens, else JACK if a server runs), alsa, jack, coremidi, winmm")


def backend_of(args) -> str | None:
    """The backend string perform/devices/learn were asked for (--midi-backend, then --midi-api)."""
    return getattr(args, "midi_backend", None) or backend_spec(getattr(args, "midi_api", None))


def quiet_alsa_and_jack() -> None:
    """Silence what libasound and libjack print to stderr themselves ("ALSA lib seq_hw.c:...
    open /dev/snd/seq failed", "Cannot connect to server socket"): we say what failed in one
    line of our own. Process-wide error handlers (snd_lib_error_set_handler,
    jack_set_error_function) rather than redirecting fd 2 around a probe: they also cover later
    calls (every hot-plug poll lists ports) and never hide another thread's output."""
    global _QUIETED
    if _QUIETED or sys.platform != "linux":
        return
    _QUIETED = True
    import ctypes

    for lib, setter, proto in (
            ("libasound.so.2", "snd_lib_error_set_handler",
             # (file, line, function, err, fmt, ...): the variadic rest is never read
             ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)),
            ("libjack.so.0", "jack_set_error_function", ctypes.CFUNCTYPE(None, ctypes.c_char_p)),
            ("libjack.so.0", "jack_set_info_function", ctypes.CFUNCTYPE(None, ctypes.c_char_p))):
        try:
            fn = getattr(ctypes.CDLL(lib), setter)
        except (OSError, AttributeError):  # not installed: then it prints nothing either
            continue
        handler = proto(lambda *args: None)
        _HANDLERS.append(handler)  # kept alive for as long as the library may call it
        fn(handler)


_QUIETED = False
_HANDLERS: list = []


class MidiPortError(GanInstrumentError, OSError):
    """A MIDI port or backend could not be used; the message names it and what to do."""


def normalise(name: str) -> str:
    """The stable part of a port name: lower case, without ALSA numbers or a Windows index."""
    name = _ALSA_NUMBERS.sub("", name.strip())
    if sys.platform == "win32":
        name = _WINDOWS_INDEX.sub("", name)
    return name.casefold()


class PortMatcher:
    """Which port names a list of patterns chooses.

    A pattern is a case-insensitive substring of the normalised name, or a regular expression
    between slashes (`/launch ?control xl/`), searched case-insensitively. No patterns (None or
    empty) choose every port except ALSA's "Midi Through". Our own ports (client `own_client`,
    JACK may add "-01") are never chosen, so feedback outputs never loop back into the input.
    """

    def __init__(self, patterns: Iterable[str] | str | None = None, own_client: str = CLIENT_NAME):
        if isinstance(patterns, str):
            patterns = [patterns]
        self.patterns = tuple(p for p in (patterns or ()) if p.strip())
        self._tests: list[Callable[[str], bool]] = [_compile(p) for p in self.patterns]
        self._own = re.compile(rf"^{re.escape(own_client)}(-\d+)?:", re.IGNORECASE)

    def matches(self, name: str) -> bool:
        if self._own.match(name):
            return False
        if not self._tests:
            return not _NEVER.search(name)
        norm = normalise(name)
        return any(test(norm) for test in self._tests)

    def choose(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.matches(n)]

    def describe(self) -> str:
        return " or ".join(repr(p) for p in self.patterns) if self.patterns else "any port"


def _compile(pattern: str) -> Callable[[str], bool]:
    p = pattern.strip()
    if len(p) >= 2 and p.startswith("/") and p.endswith("/"):
        try:
            rx = re.compile(p[1:-1], re.IGNORECASE)
        except re.error as exc:
            raise MidiPortError(f"MIDI port pattern {pattern!r} is not a valid regular expression: {exc}") from None
        return lambda name: rx.search(name) is not None
    needle = normalise(p)
    return lambda name: needle in name


def explain_open_error(direction: str, name: str, exc: BaseException) -> MidiPortError:
    """A clear error for a port that would not open (Windows: another program has it)."""
    text = str(exc) or type(exc).__name__
    if "WinMM" in text or "MMSYSERR_ALLOCATED" in text or "in use" in text.lower():
        hint = ("Windows lets only one program open a MIDI port: close it in the other program "
                "(Resolume, Ableton, TouchDesigner, a browser tab using Web MIDI), or share the "
                "device through loopMIDI / Windows MIDI Services")
    elif "JACK server not running" in text:
        hint = "start JACK (jackd or qjackctl), or choose another API with --midi-api"
    else:
        hint = "check that the device is connected and not opened exclusively by another program"
    return MidiPortError(f"cannot open MIDI {direction} {name!r}: {text}; {hint}")


class Backend:
    """A mido backend string resolved: lists port names, opens inputs (with a raw callback) and outputs.

    `spec`: "mido.backends.rtmidi/UNIX_JACK" style; None reads MIDO_BACKEND, else the rtmidi default.
    Creating it imports the backend but opens nothing; a missing library or server shows up as a
    MidiPortError from the first call that needs it.
    """

    def __init__(self, spec: str | None = None, client_name: str = CLIENT_NAME):
        self.spec = spec or os.environ.get("MIDO_BACKEND") or DEFAULT_BACKEND
        self.module_name, _, api = self.spec.partition("/")
        self.api_name = api or None
        self.how = "chosen" if spec else ("MIDO_BACKEND" if os.environ.get("MIDO_BACKEND") else "auto")
        self.client_name = client_name
        self._rtmidi = None
        self._listers: dict[str, object] = {}
        self._lock = threading.RLock()  # listing/opening are not thread-safe in rtmidi
        self._reader: _Reader | None = None  # polls rtmidi inputs opened in this process
        self._host: InputHost | None = None  # the MIDI input process
        self._host_down = os.environ.get("GANINSTRUMENT_MIDI_INPROCESS", "") not in ("", "0")
        self.notify: Callable[[str], None] | None = None  # what the performer should know
        self.probe_notes: list[str] = []  # why the automatic choice passed over an API
        try:
            if self.module_name in ("mido.backends.rtmidi", "rtmidi"):
                import rtmidi

                self._rtmidi = rtmidi
                self._rtapi = self._resolve_api(rtmidi)
            else:
                import mido

                self._mido = mido.Backend(self.spec, load=True)
        except ImportError as exc:
            raise MidiPortError(f"MIDI backend {self.spec!r} is not installed ({exc}); "
                                "pip install mido python-rtmidi") from None

    def _resolve_api(self, rtmidi) -> int:
        quiet_alsa_and_jack()
        if self.api_name is None:
            api = self._probe(rtmidi)
            if api != rtmidi.API_UNSPECIFIED:
                self.api_name = api_label(rtmidi, api)  # the MIDI input process uses the same
                self.spec = f"{DEFAULT_BACKEND}/{self.api_name}"
            return api
        api = getattr(rtmidi, f"API_{self.api_name}", None)
        if api is None:
            raise MidiPortError(f"unknown MIDI API {self.api_name!r} in {self.spec!r}; "
                                f"compiled in: {', '.join(self.api_names())}")
        if api not in rtmidi.get_compiled_api():
            raise MidiPortError(f"MIDI API {self.api_name} is not compiled into python-rtmidi here; "
                                f"compiled in: {', '.join(self.api_names())}")
        return api

    def _probe(self, rtmidi) -> int:
        """With several APIs compiled in (Linux: ALSA and JACK), the first that works: ALSA if
        its sequencer opens, else JACK if a server runs. Else RtMidi's default (the error then
        comes from the first listing)."""
        compiled = rtmidi.get_compiled_api()
        if len(compiled) < 2:
            return rtmidi.API_UNSPECIFIED
        order = [a for a in (getattr(rtmidi, "API_LINUX_ALSA", None), getattr(rtmidi, "API_UNIX_JACK", None))
                 if a in compiled]
        tried = []
        for api in order:
            if api == getattr(rtmidi, "API_LINUX_ALSA", None) and not os.path.exists("/dev/snd/seq"):
                tried.append("no ALSA sequencer (/dev/snd/seq)")
                continue
            try:
                rtmidi.MidiIn(api, self.client_name).delete()
            except Exception as exc:
                tried.append(f"{api_label(rtmidi, api)}: {exc}")
                continue
            self.probe_notes = tried
            return api
        self.probe_notes = tried
        return rtmidi.API_UNSPECIFIED

    def api_names(self) -> list[str]:
        """The APIs this backend could use (rtmidi: the compiled ones)."""
        if self._rtmidi is None:
            return [self.api_name] if self.api_name else []
        rt = self._rtmidi
        return [api_label(rt, a) for a in rt.get_compiled_api()]

    def describe(self) -> str:
        """The backend and the API actually in use, e.g. "mido.backends.rtmidi/UNIX_JACK"."""
        if self._rtmidi is None:
            return self.spec
        try:
            api = self._lister("input").get_current_api()
            return f"mido.backends.rtmidi/{api_label(self._rtmidi, api)}"
        except Exception as exc:  # no server, no sequencer: say which
            return f"{self.spec} (unavailable: {exc})"

    # -- listing ----------------------------------------------------------------------
    def _lister(self, direction: str):
        # One long-lived rtmidi object per direction: get_ports() is always current, and
        # creating a client per poll would churn JACK/ALSA clients every second.
        lister = self._listers.get(direction)
        if lister is None:
            cls = self._rtmidi.MidiIn if direction == "input" else self._rtmidi.MidiOut
            lister = cls(self._rtapi, self.client_name)
            self._listers[direction] = lister
        return lister

    def names(self, direction: str) -> list[str]:
        """Current port names (direction "input" or "output"); MidiPortError if the backend is down."""
        try:
            with self._lock:
                if self._rtmidi is None:
                    return list(self._mido.get_input_names() if direction == "input"
                                else self._mido.get_output_names())
                return list(self._lister(direction).get_ports())
        except Exception as exc:
            self._drop_lister(direction)
            tried = f" (tried: {'; '.join(self.probe_notes)})" if self.probe_notes else ""
            raise MidiPortError(f"cannot list MIDI {direction}s with {self.spec}: {exc}{tried}; "
                                "start JACK, or load the ALSA sequencer (modprobe snd-seq), "
                                "or choose with --midi-api") from None

    def _drop_lister(self, direction: str) -> None:
        lister = self._listers.pop(direction, None)
        if lister is not None:
            try:
                lister.delete()
            except Exception:
                pass

    # -- opening ----------------------------------------------------------------------
    def open_input(self, name: str, on_bytes: Callable[[list[int]], None]) -> Callable[[], None]:
        """Open input `name`; `on_bytes(data)` runs on the backend's thread per message. Returns close()."""
        with self._lock:
            return self._open_input(name, on_bytes)

    def _open_input(self, name, on_bytes):
        if self._rtmidi is None:
            return self._open_mido_input(name, on_bytes)
        if not self._host_down:
            if self._host is None:
                self._host = InputHost(self.api_name, self.client_name, _RTMIDI_QUEUE, notify=self._forward)
            try:
                return self._host.open(name, on_bytes)
            except HostUnavailable as exc:
                self._host_down = True
                self._notify(f"{exc}; reading MIDI inputs in the show's own process instead")
            except HostError as exc:
                raise explain_open_error("input", name, exc) from None
        try:
            port = open_rtmidi_input(self._rtmidi, self._rtapi, self.client_name, _RTMIDI_QUEUE, name)
        except PortGone as exc:
            raise MidiPortError(str(exc)) from None
        except Exception as exc:
            raise explain_open_error("input", name, exc) from None
        # No Python callback: with JACK, RtMidi calls a callback on JACK's real-time process
        # thread, which then waits for the GIL, overruns the period, loses messages and (seen
        # in the engine benchmark) crashes in RtMidi. RtMidi queues messages itself; our reader
        # thread takes them from that queue. That queue is not thread-safe either
        # (thestk/rtmidi#352): under load JACK's thread crashed in jackProcessIn every few
        # minutes to an hour (supervisor.py restarts perform). A callback was tried again and
        # deadlocked: closing a JACK port while holding the GIL waits for the process cycle,
        # which waits for the GIL. Hence the MIDI child process (midi/child.py); this in-process
        # path remains for where no child can start.
        if self._reader is None:
            self._reader = _Reader()
        self._reader.add(port, on_bytes)

        def close() -> None:
            self._reader.remove(port)
            self._locked(_close_rtmidi, port, is_input=True)

        return close

    def open_output(self, name: str) -> tuple[Callable[[list[int]], None], Callable[[], None]]:
        """Open output `name`; returns (send(bytes), close())."""
        with self._lock:
            return self._open_output(name)

    def _open_output(self, name):
        if self._rtmidi is None:
            return self._open_mido_output(name)
        rt = self._rtmidi
        try:
            port = rt.MidiOut(self._rtapi, self.client_name)
            port.open_port(self._index(port.get_ports(), name), "out")
        except MidiPortError:
            raise
        except Exception as exc:
            raise explain_open_error("output", name, exc) from None
        return port.send_message, lambda: self._locked(_close_rtmidi, port, is_input=False)

    def _locked(self, fn, *args, **kwargs):
        with self._lock:
            return fn(*args, **kwargs)

    @staticmethod
    def _index(names: list[str], name: str) -> int:
        try:
            return names.index(name)
        except ValueError:
            raise MidiPortError(f"MIDI port {name!r} has gone (ports now: {', '.join(names) or 'none'})") from None

    def _open_mido_input(self, name, on_bytes):
        try:
            port = self._mido.open_input(name, callback=lambda msg: on_bytes(msg.bytes()))
        except Exception as exc:
            raise explain_open_error("input", name, exc) from None
        return port.close

    def _open_mido_output(self, name):
        import mido

        try:
            port = self._mido.open_output(name)
        except Exception as exc:
            raise explain_open_error("output", name, exc) from None
        return (lambda data: port.send(mido.Message.from_bytes(data))), port.close

    def _notify(self, text: str) -> None:
        log.warning("%s", text)
        self._forward(text)

    def _forward(self, text: str) -> None:  # (the host logs its own)
        if self.notify is not None:
            self.notify(text)

    @property
    def input_process(self) -> InputHost | None:
        """The MIDI input process, once an input has opened through it."""
        return self._host

    def close(self) -> None:
        with self._lock:
            for direction in list(self._listers):
                self._drop_lister(direction)
            host, self._host = self._host, None
        if host is not None:
            host.close()


_RTMIDI_QUEUE = 16384  # messages RtMidi holds per input between two polls (floods included)
_POLL_S = 0.0005  # the reader's pause when every queue is empty: adds at most half a millisecond


class _Reader:
    """One thread that empties the RtMidi queues of every open input, oldest first, calling
    each port's `on_bytes`. Ports are added and removed under a lock the poll also takes, so
    a port is never read while it closes."""

    def __init__(self) -> None:
        self._ports: dict[int, tuple[object, Callable[[list[int]], None]]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, port, on_bytes) -> None:
        with self._lock:
            self._ports[id(port)] = (port, on_bytes)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ganinstrument-midi-reader", daemon=True)
                self._thread.start()

    def remove(self, port) -> None:
        with self._lock:
            self._ports.pop(id(port), None)

    def _run(self) -> None:
        while True:
            busy = False
            with self._lock:
                if not self._ports:
                    self._thread = None
                    return
                for port, on_bytes in self._ports.values():
                    for _ in range(1024):  # bounded, so one flooding port cannot starve the others
                        try:
                            item = port.get_message()
                        except Exception:
                            break
                        if item is None:
                            break
                        busy = True
                        try:
                            on_bytes(item[0])
                        except Exception:  # a bug of ours: the reader must go on
                            log.debug("MIDI on_bytes failed", exc_info=True)
            if not busy:
                time.sleep(_POLL_S)


def _close_rtmidi(port, *, is_input: bool) -> None:
    try:
        port.close_port()
    finally:
        port.delete()
