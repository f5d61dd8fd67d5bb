"""The beat clock's arithmetic: tempo and phase on the show clock (modulation/beat.py steers it).

The clock maps the show clock's time t (seconds) to a beat position (a float, beats counted from
the clock's origin; beat 0 starts bar 1):

    beat(t) = beat0 + (t - t0) * bpm / 60

and every change (a new tempo, a tap, a resync, a nudge, another source) re-anchors it at the
moment it happens, so the position never jumps unless asked to (`resync`: "this is the one", a
MIDI Start). Following an outside source (`follow`), a change of source slews to the source's
phase over SLEW_BEATS rather than jumping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BPM_MIN, BPM_MAX = 20.0, 300.0  # by hand (tap, the knob)
FOLLOW_BPM_MAX = 999.0  # following a source (an Ableton Link session may be as fast)
TAP_RESET_S = 2.0  # a gap longer than this starts a new tap sequence
TAPS_KEPT = 8
SLEW_BEATS = 1.0  # a new source's phase is reached over about this many beats


@dataclass(frozen=True)
class BeatTime:
    """Where the clock is at time `t_s`: beat position, tempo, meter, and who sets the tempo."""

    t_s: float
    beat: float
    bpm: float
    beats_per_bar: int
    source: str

    @property
    def bar(self) -> float:
        return self.beat / self.beats_per_bar

    @property
    def beat_phase(self) -> float:
        return self.beat - math.floor(self.beat)

    @property
    def bar_phase(self) -> float:
        return self.bar - math.floor(self.bar)


class BeatClock:
    """Tempo and phase, set by hand (tap, tempo.bpm, resync, nudge, half/double) or following
    an outside source (`follow`). Engine thread only. Times are the show clock's seconds."""

    def __init__(self, bpm: float = 120.0, beats_per_bar: int = 4, t0: float = 0.0, beat0: float = 0.0):
        self.bpm = clamp_bpm(bpm)
        self.beats_per_bar = max(1, int(beats_per_bar))
        self._t0, self._beat0 = float(t0), float(beat0)
        self._taps: list[float] = []
        self.source = "tap"
        self.jumps = 0  # times the position was put somewhere (a tap, a resync, a Start) ...
        self.landed = 0.0  # ... and where it was put the last time

    # -- where it is -----------------------------------------------------------------------
    def beat_at(self, t: float) -> float:
        return self._beat0 + (t - self._t0) * self.bpm / 60.0

    def time_of(self, beat: float) -> float:
        """When beat position `beat` falls (at the current tempo)."""
        return self._t0 + (beat - self._beat0) * 60.0 / self.bpm

    def at(self, t: float) -> BeatTime:
        return BeatTime(t, self.beat_at(t), self.bpm, self.beats_per_bar, self.source)

    # -- by hand ---------------------------------------------------------------------------
    def set_tempo(self, t: float, bpm: float) -> None:
        """A new tempo from `t` on; the beat position at `t` stays where it is."""
        bpm = clamp_bpm(bpm)
        if bpm != self.bpm:
            self._anchor(t)
            self.bpm = bpm

    def set_meter(self, beats_per_bar: int) -> None:
        self.beats_per_bar = max(1, min(16, int(beats_per_bar)))

    def tap(self, t: float, phase: bool = True) -> float | None:
        """A tap at `t`: after two taps or more, the tempo of the last taps (their median
        interval) and this tap on a beat (unless not `phase`: a Link session's phase is
        everyone's). Returns the tempo it set, or None (the first tap)."""
        if self._taps and not 0.0 < t - self._taps[-1] <= TAP_RESET_S:
            self._taps.clear()
        self._taps = (self._taps + [t])[-TAPS_KEPT:]
        if len(self._taps) < 2:
            return None
        gaps = sorted(b - a for a, b in zip(self._taps, self._taps[1:]))
        mid = len(gaps) // 2
        gap = gaps[mid] if len(gaps) % 2 else 0.5 * (gaps[mid - 1] + gaps[mid])
        self.set_tempo(t, 60.0 / gap)
        if not phase:
            return self.bpm
        self._anchor(t)
        self._beat0 = float(round(self._beat0))  # this tap is on the beat
        self.source = "tap"
        self._jumped(self._beat0)
        return self.bpm

    def resync(self, t: float) -> None:
        """Now is the one: the nearest bar line moves to `t`."""
        self._anchor(t)
        bars = self._beat0 / self.beats_per_bar
        self._beat0 = float(round(bars) * self.beats_per_bar)
        self._jumped(self._beat0)

    def nudge(self, t: float, beats: float) -> None:
        self._anchor(t)
        self._beat0 += beats

    def scale_tempo(self, t: float, factor: float) -> None:
        self.set_tempo(t, self.bpm * factor)

    # -- following a source ----------------------------------------------------------------
    def follow(self, t: float, beat: float, bpm: float, dt: float, source: str, jump: bool = False) -> None:
        """Follow an outside clock whose position at `t` is `beat` at `bpm`: the tempo at once,
        the phase over about SLEW_BEATS (or at once: `jump`, a Start)."""
        self._anchor(t)
        self.bpm = clamp_bpm(bpm, FOLLOW_BPM_MAX)
        error = beat - self._beat0
        if jump or source != self.source and abs(error) > 4 * self.beats_per_bar:
            self._beat0 = beat  # (a Start, or a source far away: nothing to slew towards)
            if beat != self.landed:  # (held on the same position frame after frame: one jump)
                self._jumped(beat)
        else:
            beats_passed = dt * self.bpm / 60.0
            self._beat0 += error * -math.expm1(-beats_passed / SLEW_BEATS)
        self.source = source

    def _jumped(self, beat: float) -> None:
        self.jumps, self.landed = self.jumps + 1, beat

    def _anchor(self, t: float) -> None:
        self._beat0, self._t0 = self.beat_at(t), float(t)


def clamp_bpm(bpm: float, high: float = BPM_MAX) -> float:
    bpm = float(bpm)
    if not math.isfinite(bpm):
        raise ValueError(f"a tempo must be a number of BPM, got {bpm!r}")
    return min(max(bpm, BPM_MIN), high)
