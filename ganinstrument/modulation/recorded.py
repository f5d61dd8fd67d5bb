"""A session's recorded readings as a modulation source (render --session, --take).

What each modulation source said, frame by frame, as the live engine logged it
(sources.replay.SessionWriter.modulation), handed out again up to the render clock's time,
so the modulation moves exactly as it did live. Sessions of schema 1 logged the audio's raw
features instead; they are read as the audio source's readings.

The engine logs a silence once, not every frame: here a silence lasts until the source speaks
again, as it did live.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..common.clock import Clock
from ..common.reporting import Quiet
from ..common.timeline import Timed, Timeline
from .audio import SOURCE as AUDIO
from .audio import reading_of
from .source import Event, Reading


def recorded_sources(items: Iterable[Timed], clock: Clock) -> list[RecordedModulation]:
    """One RecordedModulation per source the session has readings of, in the order first seen."""
    by_source: dict[str, list[Timed]] = {}
    for item in items:
        reading = _reading(item)
        if reading is not None:
            name, reading = reading
            by_source.setdefault(name, []).append(_Row(item.t, reading))
    return [RecordedModulation(name, rows, clock) for name, rows in by_source.items()]


@dataclass(frozen=True)
class _Row:
    t: float
    reading: Reading


class RecordedModulation(Quiet):
    """Source `name`'s readings (rows with a time `t` and a `reading`) up to `clock`'s time. Several in
    one frame (a render at a lower frame rate than the show) are merged: the newest values,
    every event; a silence followed by a reading in the same frame ends the silence there."""

    def __init__(self, name: str, rows: Iterable[_Row], clock: Clock):
        self.name, self.clock = name, clock
        self.timeline = Timeline(rows)
        self._silence: Reading | None = None  # the silence that lasts until the source speaks

    def read(self, t: float | None = None) -> Reading:
        values: dict[str, float | None] = {}
        events: list[Event] = []
        for item in self.timeline.until(self.clock.now() if t is None else t):
            reading = item.reading
            if reading.silent:
                values, self._silence = dict(reading.values), reading
            else:
                if self._silence is not None:
                    values, self._silence = {}, None
                values.update({k: v for k, v in reading.values.items() if v is not None or k not in values})
            events.extend(reading.events)
        if self._silence is not None:
            return Reading(values or self._silence.values, tuple(events), True)
        return Reading(values, tuple(events))


def _reading(item: Timed) -> tuple[str, Reading] | None:
    """(source, Reading) of a session line, or None for a line that is not a reading."""
    row = item.modulation
    if row is not None:
        return row["source"], Reading(row["values"], tuple(Event(n, t) for n, t in row["events"]), row["silent"])
    if item.features is not None:  # (schema 1: the audio's raw features)
        features = dict(item.features)
        onsets = features.pop("onsets", [])
        return AUDIO, reading_of(features or None, onsets)
    return None
