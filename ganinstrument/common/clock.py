"""Clocks: where every time-dependent part of the instrument reads the time.

Smoothing, MIDI coalescing, takeover, onset hold and preset morphs all take a `Clock` instead of
calling `time` themselves, so tests drive them with a `FakeClock` and get exact, repeatable times.
All times are seconds as floats, from an arbitrary origin; only differences mean anything.
"""

from __future__ import annotations

import math
import numbers
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "MonotonicClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything with `now() -> float`: seconds, never decreasing."""

    def now(self) -> float:
        """The current time in seconds (arbitrary origin, monotonic)."""
        ...


class MonotonicClock:
    """The real clock: `time.perf_counter()`, monotonic and of the highest resolution available.

    perf_counter rather than time.monotonic because on Windows (the main stage platform)
    time.monotonic ticks in about 16 ms steps, coarser than a frame at 60 fps.
    """

    __slots__ = ()

    def now(self) -> float:
        """Seconds since an arbitrary origin, never decreasing."""
        return time.perf_counter()

    def __repr__(self) -> str:
        return "MonotonicClock()"


class FakeClock:
    """A clock that moves only when told to: for tests and offline rendering.

    `advance(dt_s)` and `set(t_s)` move it forward; moving it backwards raises ValueError, as
    does a non-finite time, so code under test sees the same guarantees as with the real clock.
    """

    __slots__ = ("_t",)

    def __init__(self, start: float = 0.0):
        self._t = _check_time("start", start)

    def now(self) -> float:
        """The current fake time in seconds."""
        return self._t

    def advance(self, dt: float) -> float:
        """Move forward by `dt` seconds (>= 0) and return the new time."""
        dt = _check_time("dt", dt)
        if dt < 0.0:
            raise ValueError(f"dt must be >= 0 seconds (a clock never goes back), got {dt!r}")
        self._t += dt
        return self._t

    def set(self, t: float) -> float:
        """Jump to time `t` seconds (>= now()) and return it."""
        t = _check_time("t", t)
        if t < self._t:
            raise ValueError(
                f"t must be >= now() = {self._t!r} seconds (a clock never goes back), got {t!r}"
            )
        self._t = t
        return self._t

    def __repr__(self) -> str:
        return f"FakeClock(now={self._t!r})"


def _check_time(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return value
