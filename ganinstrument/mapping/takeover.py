"""Soft takeover: an absolute fader must not make its target jump when the two disagree.

After a preset recall, a page change or a reconnect, a fader's physical position and its
target's value differ. Three modes (Ableton's vocabulary; Mixxx's `soft-takeover` is pickup):

- none: the control always wins; the target jumps.
- pickup: the control is ignored until it reaches the target's value, then moves it 1:1.
- scale: while away, each move of the control moves the target proportionally toward the end
  the control is heading to, so both arrive there together; once they meet, 1:1.

Everything is compared in the binding's output range normalised to [0, 1] (0 = lo, 1 = hi),
with Mixxx's constants (src/controllers/softtakeover.cpp): a threshold of 3/128 and a 50 ms
"whip" window. `decide` is pure: the caller keeps one `TakeoverState` per binding.

The rules of `decide`, first match wins (v the control's new value, c the target's current
value, p the control's previous value or None when armed, dt the time since the control last
moved the target, or None):

| # | mode   | condition                                     | result                      |
|---|--------|-----------------------------------------------|-----------------------------|
| 1 | none   | always                                        | v                           |
| 2 | any    | |v - c| <= threshold                          | v (picked up)               |
| 3 | any    | p is None (armed: first value since re-arm)   | ignored                     |
| 4 | any    | dt is not None and dt <= whip (a fast move)   | v (the move goes on)        |
| 5 | any    | c lies between p and v (inclusive): crossed   | v (picked up)               |
| 6 | pickup | otherwise                                     | ignored                     |
| 7 | scale  | v == p (no move)                              | ignored                     |
| 8 | scale  | otherwise, moving toward end e (1 up, 0 down) | c + (v - p) * (e - c) / (e - p) |

After every call p := v. When the target was moved 1:1 (rules 1, 2, 4, 5) the "last moved"
time becomes now; an ignored value keeps it; a scaled move (rule 8) clears it, so the
scaled approach never counts as a whip. Rule 8 ends where the target meets the control
(rule 2 or 5 takes over from there): the gap shrinks in proportion to the control's
distance from the end, so both reach the end together.

Re-arming (`rearm`): after a preset recall or a change from elsewhere the last-moved time is
cleared (rule 5 cannot carry a stale move across); after a page change or a reconnect the
control's previous value is forgotten too (it belonged to another page or session).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["MODES", "THRESHOLD", "WHIP_S", "TakeoverState", "decide", "rearm"]

MODES = ("none", "pickup", "scale")
THRESHOLD = 3.0 / 128.0  # Mixxx kDefaultTakeoverThreshold, in normalised units
WHIP_S = 0.050  # Mixxx kSubsequentValueOverrideTimeMsecs


class TakeoverState(NamedTuple):
    """Per binding: `prev` the control's previous normalised value (None: armed, unknown);
    `moved_at` when the control last moved the target 1:1 (None: not since re-arm)."""

    prev: float | None = None
    moved_at: float | None = None


def decide(mode: str, state: TakeoverState, value: float, current: float, now: float, *,
           threshold: float = THRESHOLD, whip_s: float = WHIP_S) -> tuple[float | None, TakeoverState]:
    """Apply the table above. `value`, `current` normalised to [0, 1]; `now` seconds.

    Returns (the normalised value to send, or None when ignored; the new state).
    """
    p = state.prev
    if mode == "none" or abs(value - current) <= threshold:
        return value, TakeoverState(value, now)
    if p is None:
        return None, TakeoverState(value, None)
    if state.moved_at is not None and now - state.moved_at <= whip_s:
        return value, TakeoverState(value, now)
    if min(p, value) <= current <= max(p, value):
        return value, TakeoverState(value, now)
    if mode == "scale":
        if value == p:
            return None, state
        end = 1.0 if value > p else 0.0
        out = current + (value - p) * (end - current) / (end - p)
        return min(max(out, 0.0), 1.0), TakeoverState(value, None)
    return None, TakeoverState(value, state.moved_at)


def rearm(state: TakeoverState, forget_position: bool = False) -> TakeoverState:
    """Re-arm after a recall / outside change (keep the position) or a page change / reconnect
    (`forget_position=True`)."""
    return TakeoverState(None if forget_position else state.prev, None)
