"""A Link session's timeline and the ghost clock it runs on.

Every peer has its own host clock (microseconds, monotonic, any origin). A session agrees on a
*ghost* clock: each peer keeps a transform host -> ghost (GhostXForm: ghost = slope * host +
intercept; the slope is 1, the intercept measured by ping/pong against a peer of the session).
The session's timeline is a straight line on the ghost clock: tempo (whole microseconds per
beat, as on the wire) through one point, (time_origin ghost us, beat_origin micro-beats).

Whoever changes the timeline (a tempo, a phase) moves its beat origin past the old one: peers
take a timeline of their session whose beat origin is greater than the one they have (`moved`).
"""

from __future__ import annotations

from dataclasses import dataclass

BPM_MIN, BPM_MAX = 20.0, 999.0  # what Link clamps a session's tempo to


def micros_per_beat(bpm: float) -> int:
    return round(60e6 / min(max(float(bpm), BPM_MIN), BPM_MAX))


@dataclass(frozen=True)
class Timeline:
    micros_per_beat: int
    beat_origin: int  # micro-beats
    time_origin: int  # ghost us

    @property
    def bpm(self) -> float:
        return 60e6 / self.micros_per_beat

    def beats_at(self, ghost_us: float) -> float:
        return self.beat_origin / 1e6 + (ghost_us - self.time_origin) / self.micros_per_beat

    def ghost_of(self, beats: float) -> float:
        return self.time_origin + (beats - self.beat_origin / 1e6) * self.micros_per_beat


def moved(old: Timeline, bpm: float, at_ghost: float, beats_at: float, now_ghost: float) -> Timeline:
    """The timeline at tempo `bpm` that passes `beats_at` at ghost time `at_ghost`, written with
    a beat origin peers take over `old`: where the old line is now, and at least a beat past
    the old origin."""
    mpb = micros_per_beat(bpm)
    origin = max(old.beats_at(now_ghost), old.beat_origin / 1e6 + 1.0)
    origin_ub = round(origin * 1e6)
    return Timeline(mpb, origin_ub, round(at_ghost + (origin_ub / 1e6 - beats_at) * mpb))


@dataclass(frozen=True)
class GhostXForm:
    intercept: int  # ghost us - host us
    slope: float = 1.0

    def ghost(self, host_us: float) -> float:
        return self.slope * host_us + self.intercept

    def host(self, ghost_us: float) -> float:
        return (ghost_us - self.intercept) / self.slope
