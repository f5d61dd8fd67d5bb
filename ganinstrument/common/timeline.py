"""Timed things and a timeline that hands them out up to a time: recorded sessions and MIDI
files (sources.replay), recorded modulation (modulation.recorded)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

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


class HasTime(Protocol):
    @property
    def t(self) -> float: ...


T = TypeVar("T", bound=HasTime)


class Timeline(Generic[T]):
    """Hands out timed items (anything with a time `t`: Timed, a recorded reading) up to a time,
    in order: `until(t)` returns those with time <= t (within half the session's rounding of
    times, T_DIGITS: a line written at a frame's time, rounded up, is still that frame's)."""

    def __init__(self, items: Iterable[T]):
        self._items = sorted(items, key=lambda item: item.t)
        self._next = 0

    def until(self, t: float) -> list[T]:
        start = self._next
        t += T_SLACK
        while self._next < len(self._items) and self._items[self._next].t <= t:
            self._next += 1
        return self._items[start:self._next]
