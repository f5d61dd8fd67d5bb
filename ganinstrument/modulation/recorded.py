"""A session's recorded readings as a modulation source (render --session, --take).

What each modulation source said, frame by frame, as the live engine logged it
(sources.replay.SessionWriter.modulation), handed out again up to the render clock's time,
so the modulation moves exactly as it did live. Sessions of schema 1 logged the audio's raw
features instead; they are read as the audio source's readings.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..common.clock import Clock
from ..common.reporting import Quiet
from ..common.timeline import Timed, Timeline
from .audio import SOURCE as AUDIO
from .audio import reading_of
from .source import Event, Reading


def recorded_sources(items: Iterable[Timed], clock: Clock) -> list[RecordedModulation]:
    """One RecordedModulation per source the session has readings of, in the order first seen."""
    items = list(items)
    names: dict[str, None] = {}
    for item in items:
        if item.modulation is not None:
            names.setdefault(item.modulation["source"])
        elif item.features is not None:
            names.setdefault(AUDIO)
    return [RecordedModulation(items, clock, name) for name in names]


class RecordedModulation(Quiet):
    """Source `name`'s recorded readings up to `clock`'s time. Several readings in one frame
    (a render at a lower frame rate than the show) are merged: the newest values, every event."""

    def __init__(self, items: Iterable[Timed], clock: Clock, name: str):
        self.name, self.clock = name, clock
        self.timeline = Timeline(i for i in items if _reading(i, name) is not None)

    def read(self) -> Reading:
        values: dict[str, float | None] = {}
        events: list[Event] = []
        silent = False
        for item in self.timeline.until(self.clock.now()):
            reading = _reading(item, self.name)
            if reading.silent:
                values, silent = dict(reading.values), True
            else:
                if silent:
                    values, silent = {}, False
                values.update({k: v for k, v in reading.values.items() if v is not None or k not in values})
            events.extend(reading.events)
        return Reading(values, tuple(events), silent)


def _reading(item: Timed, name: str) -> Reading | None:
    row = item.modulation
    if row is not None:
        if row["source"] != name:
            return None
        return Reading(row["values"], tuple(Event(n, t) for n, t in row["events"]), row["silent"])
    if item.features is not None and name == AUDIO:  # (schema 1)
        features = dict(item.features)
        onsets = [o for o in features.pop("onsets", []) if isinstance(o, dict)]
        return reading_of(features or None, onsets)
    return None
