"""Recorded input as sources: MIDI files and recorded sessions, for `render` and tests.

A session file (JSON lines) is what `perform --record-session` writes: every control event
and every modulation source's reading (the audio's, each frame) with its time, so a
performance can be rendered again later, at another resolution, through the same mapping.
Lines:

    {"type": "session", "schema_version": 2, ...header fields...}
    {"type": "start", "clock_s": 1234.5}
    {"t": 1.25, "event": {"kind": "control_change", "channel": 0, "number": 7, "value": 100, ...}}
    {"t": 1.26, "update": {"target": "psi", "value": 0.5, "action": false, "source": "osc"}}
    {"t": 1.26, "modulation": {"source": "audio", "values": {...}, "events": [["onset.low", 1.25]], "silent": false}}

(Sessions of schema 1 hold the audio's raw `features` rows instead of `modulation` ones; they
are still read, and played back as the audio source's readings.)

Readers never execute anything and reject lines they cannot understand with the file and
line number.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..common.clock import Clock
from ..common.errors import GanInstrumentError
from ..common.events import ControlEvent, ParamUpdate
from ..common.reporting import Quiet
from ..common.timeline import T_DIGITS, Timed, Timeline

log = logging.getLogger(__name__)

SESSION_SCHEMA = 2  # 2: modulation rows (1: raw audio feature rows)


class ReplayError(GanInstrumentError, ValueError):
    """A MIDI file or session file could not be read; names the file (and line)."""


# -- MIDI files ---------------------------------------------------------------------------
_MIDI_KINDS = {"control_change", "note_on", "note_off", "pitchwheel", "aftertouch", "polytouch", "program_change"}


def midi_file_events(path, *, source: str = "midi-file") -> list[Timed]:
    """Every channel message of a standard MIDI file as timed ControlEvents (seconds from 0).

    Tempo changes are honoured (mido converts ticks to seconds). Meta and sysex messages
    are skipped.
    """
    import mido

    try:
        midi = mido.MidiFile(os.fspath(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise ReplayError(f"{path}: not a readable MIDI file ({exc})") from None
    out: list[Timed] = []
    t = 0.0
    for msg in midi:  # merged tracks, msg.time = delta seconds
        t += float(msg.time)
        if msg.is_meta or msg.type not in _MIDI_KINDS:
            continue
        out.append(Timed(t, event=event_from_mido(msg, t, source)))
    return out


def event_from_mido(msg, timestamp: float, source: str) -> ControlEvent:
    """A mido channel message as a ControlEvent (the same conversion live input uses)."""
    kind = msg.type
    if kind == "control_change":
        number, value = msg.control, msg.value
    elif kind in ("note_on", "note_off"):
        number, value = msg.note, msg.velocity
    elif kind == "pitchwheel":
        number, value = 0, msg.pitch
    elif kind == "aftertouch":
        number, value = 0, msg.value
    elif kind == "polytouch":
        number, value = msg.note, msg.value
    elif kind == "program_change":
        number, value = msg.program, 0
    else:
        raise ValueError(f"not a channel message: {kind}")
    return ControlEvent(kind, int(msg.channel), int(number), float(value), float(timestamp), source)


# -- sessions -----------------------------------------------------------------------------
def _plain_scalar(obj):
    """JSON for numpy's scalars (a feature computed with numpy is np.float64 or np.bool_)."""
    item = getattr(obj, "item", None)
    if item is not None and getattr(obj, "shape", None) == ():
        return item()
    raise TypeError(f"a session cannot hold a {type(obj).__name__}")


class SessionWriter:
    """Appends timed events to a session file (line-buffered; survives a crash line by line).

    Writing never stops the show: a line that cannot be written as JSON is left out (and
    counted in `skipped`), and once the file cannot be written at all (the disk full, a
    drive pulled), the session stops, saying so once in `error` and the log.
    """

    def __init__(self, path, **header):
        self.path = Path(path)
        self.error: str | None = None
        self.skipped = 0
        try:
            self._f = open(self.path, "w", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise ReplayError(f"{path}: cannot write the session file ({exc.strerror or exc})") from None
        self._write({"type": "session", "schema_version": SESSION_SCHEMA, **header})

    def _write(self, obj) -> None:
        if self.error is not None:
            return
        try:
            line = json.dumps(obj, separators=(",", ":"), allow_nan=False, default=_plain_scalar) + "\n"
        except (TypeError, ValueError) as exc:
            self.skipped += 1
            if self.skipped == 1 or self.skipped % 1000 == 0:
                log.warning("session %s: a line left out (%d so far): %s", self.path, self.skipped, exc)
            return
        try:
            self._f.write(line)
        except OSError as exc:
            self.error = f"{self.path}: cannot write the session any more ({exc.strerror or exc}); the show goes on"
            log.error("%s", self.error)

    def start(self, clock_s: float) -> None:
        """The show clock's time of t = 0 (the first frame): what a take's frames, stamped with
        the show clock, are found by in the session (`render --take`)."""
        self._write({"type": "start", "clock_s": float(clock_s)})

    def event(self, t: float, event: ControlEvent) -> None:
        self._write({"t": round(float(t), T_DIGITS), "event": asdict(event)})

    def update(self, t: float, update: ParamUpdate) -> None:
        self._write({"t": round(float(t), T_DIGITS), "update": asdict(update)})

    def modulation(self, t: float, source: str, reading: dict) -> None:
        """A modulation source's reading (modulation.source.Reading.as_row())."""
        values = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                  for k, v in reading.get("values", {}).items()}
        self._write({"t": round(float(t), T_DIGITS), "modulation": {**reading, "source": source, "values": values}})

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as exc:  # its last lines could not be flushed
            log.error("session %s: closing it failed (%s)", self.path, exc.strerror or exc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_fields(cls, data: dict, path, lineno: int):
    fields = cls.__dataclass_fields__
    unknown = set(data) - set(fields)
    if unknown:
        raise ReplayError(f"{path}:{lineno}: unknown {cls.__name__} fields {sorted(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ReplayError(f"{path}:{lineno}: bad {cls.__name__}: {exc}") from None


def _check_reading(row: dict, path, lineno: int) -> dict:
    """A modulation row: a source name, values (name -> number or null), events ([name, time or
    null] pairs), silent (true/false)."""
    def number(v) -> bool:
        return v is None or (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v))

    values, events = row.get("values", {}), row.get("events", [])
    ok = (isinstance(row.get("source"), str) and isinstance(values, dict)
          and all(isinstance(k, str) and number(v) for k, v in values.items())
          and isinstance(events, list)
          and all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and number(e[1]) for e in events)
          and isinstance(row.get("silent", False), bool))
    if not ok:
        raise ReplayError(f"{path}:{lineno}: a modulation line needs source (text), values (name: number), "
                          "events ([name, time] pairs) and silent (true/false)")
    return {"source": row["source"], "values": values, "events": events, "silent": row.get("silent", False)}


def _check_features(row: dict, path, lineno: int) -> dict:
    """A schema-1 features line: a dict whose `onsets` (if any) is a list of objects with a
    `kind` (text)."""
    onsets = row.get("onsets", [])
    if not isinstance(onsets, list) or not all(isinstance(o, dict) and isinstance(o.get("kind"), str) for o in onsets):
        raise ReplayError(f"{path}:{lineno}: a features line's onsets must be a list of objects with a kind")
    return row


def read_session(path) -> tuple[dict, list[Timed]]:
    """The header and every timed line of a session file, in time order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{path}: cannot read the session file ({exc})") from None
    header: dict = {}
    out: list[Timed] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReplayError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ReplayError(f"{path}:{lineno}: expected an object")
        if obj.get("type") == "session":
            version = obj.get("schema_version", 0)
            if isinstance(version, bool) or not isinstance(version, int):
                raise ReplayError(f"{path}:{lineno}: schema_version must be a whole number, got {version!r}"[:300])
            if version > SESSION_SCHEMA:
                raise ReplayError(f"{path}: session schema {obj.get('schema_version')} is newer than this "
                                  f"ganinstrument understands ({SESSION_SCHEMA})")
            header = {**obj, **({"clock_s": header["clock_s"]} if "clock_s" in header else {})}
            continue
        if obj.get("type") == "start":
            clock_s = obj.get("clock_s")
            if isinstance(clock_s, bool) or not isinstance(clock_s, (int, float)) or not math.isfinite(clock_s):
                raise ReplayError(f"{path}:{lineno}: a start line needs the clock's time 'clock_s'")
            header["clock_s"] = float(clock_s)  # (header: the session line, and this)
            continue
        t = obj.get("t")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise ReplayError(f"{path}:{lineno}: missing or bad time 't'")
        if "event" in obj and isinstance(obj["event"], dict):
            out.append(Timed(float(t), event=_check_fields(ControlEvent, obj["event"], path, lineno)))
        elif "update" in obj and isinstance(obj["update"], dict):
            out.append(Timed(float(t), update=_check_fields(ParamUpdate, obj["update"], path, lineno)))
        elif "modulation" in obj and isinstance(obj["modulation"], dict):
            out.append(Timed(float(t), modulation=_check_reading(obj["modulation"], path, lineno)))
        elif "features" in obj and isinstance(obj["features"], dict):
            out.append(Timed(float(t), features=_check_features(obj["features"], path, lineno)))
        else:
            raise ReplayError(f"{path}:{lineno}: expected one of 'event', 'update', 'modulation', 'features'")
    out.sort(key=lambda item: item.t)  # stable: equal times keep file order
    return header, out


class TimelineControls(Quiet):
    """Recorded controls (a session's events, updates and keys; a MIDI file's events) as a
    control source: each `drain` hands out what happened up to `clock`'s time (render's), so
    they are routed and applied by the same engine, in the same frames, as they were live."""

    def __init__(self, items: Iterable[Timed], clock: Clock, clock_s: float = 0.0):
        self.timeline, self.clock = Timeline(i for i in items if i.event is not None or i.update is not None), clock
        self.clock_s = clock_s  # the live clock's time of the session's t = 0 (its events' timestamps)

    def drain(self) -> list[ControlEvent | ParamUpdate]:
        out: list[ControlEvent | ParamUpdate] = []
        for item in self.timeline.until(self.clock.now()):
            if item.event is not None:  # its timestamp on the render's clock, as it was on the show's
                out.append(replace(item.event, timestamp=item.event.timestamp - self.clock_s)
                           if self.clock_s and item.event.timestamp > 0 else item.event)
            else:
                out.append(item.update)
        return out


# -- takes ----------------------------------------------------------------------------------
MAX_TAKE_S = 24 * 3600.0  # longer than any show: a note saying more is broken


@dataclass(frozen=True)
class TakeNote:
    """What `perform` notes beside a take (outputs/takes.py): its video, the show's session,
    and where in the session the take's first and last frames are (seconds from its start)."""

    video: Path
    session: Path
    start_s: float
    end_s: float
    frames: int


def read_take_note(path) -> tuple[TakeNote, dict, list[Timed]]:
    """A take (its .mp4 or its note, .json) -> (note, the session's header, its timed lines)."""
    path = Path(path)
    note_path = path if path.suffix.lower() == ".json" else path.with_suffix(".json")
    try:
        note = json.loads(note_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReplayError(f"{note_path}: not found. A take is rendered again from the note `perform` "
                          "writes beside it (with the takes output, and a session); a take recorded "
                          "without one can only be copied") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReplayError(f"{note_path}: not a take's note ({exc})") from None
    fields = ("video", "session", "first_frame_clock_s", "last_frame_clock_s")
    if not isinstance(note, dict) or note.get("type") != "take" or any(f not in note for f in fields):
        raise ReplayError(f"{note_path}: not a take's note (it needs type: take and {', '.join(fields)})")
    times = [note["first_frame_clock_s"], note["last_frame_clock_s"]]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in times) \
            or times[1] < times[0]:
        raise ReplayError(f"{note_path}: the take's frame times are not numbers in order: {times}")
    session = note_path.parent / str(note["session"])
    header, items = read_session(session)
    clock_s = header.get("clock_s")
    if clock_s is None:
        raise ReplayError(f"{session}: has no start time (written by an older ganinstrument), so "
                          f"{note_path.name}'s frames cannot be found in it")
    start_s, end_s = times[0] - clock_s, times[1] - clock_s
    if start_s < -1e-3 or end_s - start_s > MAX_TAKE_S:
        raise ReplayError(f"{note_path}: the take ({start_s:.3f} .. {end_s:.3f} s) does not fit in its session "
                          f"{session.name}: is it the session of another show?")
    frames = note.get("frames")
    take = TakeNote(note_path.parent / str(note["video"]), session, max(0.0, float(start_s)), float(end_s),
                    int(frames) if isinstance(frames, int) else 0)
    return take, header, items
