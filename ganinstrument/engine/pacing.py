"""When the next frame starts: live, on a schedule of slots against the real clock; offline,
at once, with the clock moved exactly one frame on.

The engine calls `start()` before its first frame, `drew(seconds)` after each frame the network
drew (what it cost), `stamp(now, index)` for the time an outgoing frame carries, and `wait()`
between frames.
"""

from __future__ import annotations

import threading
from typing import Protocol

from ..common.clock import Clock, FakeClock


class Pacing(Protocol):
    def start(self) -> None: ...

    def drew(self, seconds: float) -> None: ...

    def stamp(self, now: float, index: int) -> float: ...

    def wait(self) -> None: ...


class LivePacing:
    """Slots 1/fps apart on the real clock (`fps` None or 0: no waiting at all).

    A frame starts a render's length *before* its slot (late latching): input is taken as late
    as possible, so a control moved anywhere in a period is out by that period's slot. The
    render's length is an estimate leaning to the slow side, from the frames the network drew
    (frames where nothing moved cost nothing and say nothing about the next fader move).
    Oversleeping is made up on the next frame; after a stall longer than a frame, the schedule
    starts afresh. `stop`: set to end a wait at once (the engine stopping). Frames are stamped
    with the clock: a held picture keeps time moving in a recording, and the live audio input is
    stamped on the same clock.
    """

    def __init__(self, clock: Clock, fps: float | None, stop: threading.Event):
        self.clock, self.fps, self.stop = clock, fps, stop
        self.render_s = 0.0  # estimated seconds a drawn frame takes
        self._next_t = 0.0

    def start(self) -> None:
        self._next_t = self.clock.now()

    def drew(self, seconds: float) -> None:
        self.render_s = max(seconds, 0.9 * self.render_s + 0.1 * seconds)

    def stamp(self, now: float, index: int) -> float:
        return now

    def wait(self) -> None:
        if not self.fps:
            return
        period = 1.0 / self.fps
        self._next_t += period
        lead = min(self.render_s, 0.8 * period)
        left = self._next_t - lead - self.clock.now()
        if left > 0:
            self.stop.wait(left)
        elif left < -period:
            self._next_t = self.clock.now()


class OfflinePacing:
    """The clock (render's FakeClock) moves exactly 1/fps a frame, counted from the first so
    times never drift by a sum of roundings; nothing waits; frame i is stamped i / fps."""

    def __init__(self, clock: FakeClock, fps: float):
        if not isinstance(clock, FakeClock) or not fps or fps <= 0:
            raise ValueError("offline pacing needs a FakeClock (which it moves) and an fps")
        self.clock, self.fps = clock, float(fps)
        self._origin = 0.0
        self._ticks = 0

    def start(self) -> None:
        self._origin, self._ticks = self.clock.now(), 0

    def drew(self, seconds: float) -> None:
        pass

    def stamp(self, now: float, index: int) -> float:
        return index / self.fps

    def wait(self) -> None:
        self._ticks += 1
        self.clock.set(self._origin + self._ticks / self.fps)
