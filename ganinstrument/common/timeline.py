"""Timed things and a timeline that hands them out up to a time: recorded sessions and MIDI
files (sources.replay), recorded modulation (modulation.recorded)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .events import ControlEvent, ParamUpdate

T_DIGITS = 6  # a session's times are written to the microsecond
T_SLACK = 0.5 * 10.0 ** -T_DIGITS


@dataclass(frozen=True)
class Timed:
    """Something that happened at `t` seconds: a ControlEvent, a ParamUpdate, a modulation
    source's reading (a dict: source, values, events, silent) or (schema 1) a features dict."""

    t: float
    event: ControlEvent | None = None
    update: ParamUpdate | None = None
    features: dict | None = None
    modulation: dict | None = None


class Timeline:
    """Hands out timed items up to a time, in order: `until(t)` returns those with time <= t
    (within half the session's rounding of times, T_DIGITS: a line written at a frame's time,
    rounded up, is still that frame's)."""

    def __init__(self, items: Iterable[Timed]):
        self._items = sorted(items, key=lambda item: item.t)
        self._next = 0

    def until(self, t: float) -> list[Timed]:
        start = self._next
        t += T_SLACK
        while self._next < len(self._items) and self._items[self._next].t <= t:
            self._next += 1
        return self._items[start:self._next]

    def __iter__(self) -> Iterator[Timed]:
        return iter(self._items)

    @property
    def end_s(self) -> float:
        return self._items[-1].t if self._items else 0.0
