"""Envelopes: signals `env.<name>` that a mapping declares (mapping.schema.EnvelopeDef) and the
modulation computes each frame from the events it is fed (a beat, a downbeat, every N-th bar,
an onset): on a trigger the level rises from where it is to 1 over the attack, then falls to 0
over the decay (both straight lines; times in seconds, or in beats at the tempo of the moment
it fires). A trigger during the decay starts a new attack from the level it has reached. Its
action `env.<name>` (a pad) fires it by hand (Modulation.fire).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from ..mapping.schema import EnvelopeDef
from .source import Event

DEFAULT_BPM = 120.0  # (beats before any beat clock has said a tempo)


class _Envelope:
    __slots__ = ("d", "level", "start", "attack_s", "decay_s", "t", "active")

    def __init__(self, d: EnvelopeDef):
        self.d = d
        self.level = self.start = 0.0
        self.attack_s = self.decay_s = 0.0
        self.t = 0.0  # seconds since it fired
        self.active = False

    def fire(self, bpm: float) -> None:
        beat_s = 60.0 / bpm
        d = self.d
        self.attack_s = d.attack_s if d.attack_beats is None else d.attack_beats * beat_s
        self.decay_s = d.decay_s if d.decay_beats is None else d.decay_beats * beat_s
        self.start, self.t, self.active = self.level, 0.0, True
        if self.attack_s <= 0.0:
            self.level = 1.0

    def step(self, dt: float) -> float:
        if not self.active:
            return self.level
        self.t += dt
        if self.t < self.attack_s:
            self.level = self.start + (1.0 - self.start) * self.t / self.attack_s
        elif self.decay_s > 0.0 and self.t < self.attack_s + self.decay_s:
            self.level = 1.0 - (self.t - self.attack_s) / self.decay_s
        else:
            self.level, self.active = 0.0, False
        return self.level


class Envelopes:
    """A mapping's envelopes, stepped once a frame by the modulation."""

    def __init__(self, defs: Iterable[EnvelopeDef]):
        self._envelopes = [_Envelope(d) for d in defs]

    def step(self, fired: Mapping[str, list[Event]], values: Mapping[str, float], dt: float) -> dict[str, float]:
        """This frame's level of each envelope (`env.<name>`), given the frame's events by name
        and the values known (the beat clock's `tempo_bpm` and `bars`)."""
        bpm = values.get("tempo_bpm") or DEFAULT_BPM
        bpm = bpm if math.isfinite(bpm) and bpm > 0 else DEFAULT_BPM
        out = {}
        for env in self._envelopes:
            d = env.d
            automatic = fired.get(d.trigger) and (d.every_bars is None or _bar_number(values) % d.every_bars == 0)
            if automatic or fired.get(f"env.{d.name}"):  # (its trigger, or its action by hand)
                env.fire(bpm)
                out[f"env.{d.name}"] = env.step(0.0)
            else:
                out[f"env.{d.name}"] = env.step(dt)
        return out


def _bar_number(values: Mapping[str, float]) -> int:
    """The bar just begun (0: the first), from the beat clock's position."""
    bars = values.get("bars")
    return int(round(bars)) if bars is not None and math.isfinite(bars) else 0
