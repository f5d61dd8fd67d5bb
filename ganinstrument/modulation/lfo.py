"""LFOs as a modulation source, phase-locked to the beat clock (issue 15).

A mapping declares them (its `lfos:` section: mapping.schema.LfoDef; its signals `lfo.<name>`:
Mapping.signals()) and routes them like any signal. Each gives a value in 0 .. 1 per frame:

    cycle position  c = beats / rate_beats + phase      (rate in beats, bars: locked to the clock)
                    c = t * hz + phase                  (rate in Hz: free-running on the show clock)
    sine            0.5 + 0.5 cos(2 pi c)                 1 on the cycle's start
    triangle        1 - 2 |frac(c + 0.5) - 0.5|            1 on the start, 0 half way
    saw_up          frac(c)                               rises from 0 on the start
    saw_down        1 - frac(c)                           falls from 1 on the start
    square          1 while frac(c) < width, else 0
    sample_hold     a random value per cycle (seeded by the LFO's name: the same every run)
    smooth_random   from one cycle's random value to the next's, eased (cosine)

so a one-bar sine peaks exactly on the downbeat, and a render of the same beat grid gives the
same values frame for frame.

Each LFO's targets `lfo.<name>.depth` (0 .. 1, scales the value) and `lfo.<name>.rate` (a
multiple of its rate, 0.25 .. 4) can be played: while the rate is 1 (within RELOCK) the LFO
is locked to the clock as written; otherwise its cycle runs on at that speed from where it was (no jump when the
knob turns), and it locks again when the rate comes back to 1.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping

from ..common.clock import Clock
from ..mapping.schema import LfoDef
from .beat_clock import BeatClock
from .source import Reading

SOURCE = "lfo"
RELOCK = 0.03  # a rate this close to 1 is 1: the LFO locks to the beat again


def _random(seed: int, cycle: int) -> float:
    """A value in [0, 1) for (seed, cycle), the same on every machine and run (splitmix64)."""
    z = (seed * 0x9E3779B97F4A7C15 + cycle * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


def shape_value(shape: str, c: float, width: float = 0.5, seed: int = 0) -> float:
    """The LFO `shape` at cycle position `c` (cycles; the whole part counts cycles), in 0 .. 1."""
    cycle = math.floor(c)
    p = c - cycle
    if shape == "sine":
        return 0.5 + 0.5 * math.cos(2.0 * math.pi * p)
    if shape == "triangle":
        return 1.0 - 2.0 * abs(((p + 0.5) % 1.0) - 0.5)
    if shape == "saw_up":
        return p
    if shape == "saw_down":
        return 1.0 - p
    if shape == "square":
        return 1.0 if p < width else 0.0
    if shape == "sample_hold":
        return _random(seed, cycle)
    if shape == "smooth_random":
        a, b = _random(seed, cycle), _random(seed, cycle + 1)
        return a + (b - a) * (0.5 - 0.5 * math.cos(math.pi * p))
    raise ValueError(f"unknown LFO shape {shape!r}")


class LfoSource:
    """A mapping's LFOs, read each frame at the show clock's time against the beat clock."""

    name = SOURCE
    messages: tuple[str, ...] = ()

    def __init__(self, lfos: Iterable[LfoDef], clock: Clock, beat: BeatClock,
                 values: Callable[[], Mapping[str, float]] | None = None):
        self.lfos = tuple(lfos)
        self.clock, self.beat = clock, beat
        self.values = values  # () -> the targets' values (each LFO's rate and depth); None: 1 and 1
        self._seeds = {d.name: zlib.crc32(d.name.encode("utf-8")) for d in self.lfos}
        self._free: dict[str, tuple[float, float]] = {}  # name -> (cycle, locked position) while rate != 1

    def position(self, d: LfoDef, t: float) -> float:
        """LFO `d`'s cycle position at time `t`."""
        if d.rate_hz is not None:
            return t * d.rate_hz + d.phase
        beats = d.rate_beats if d.rate_bars is None else d.rate_bars * self.beat.beats_per_bar
        return self.beat.beat_at(t) / beats + d.phase

    def read(self, t: float | None = None) -> Reading:
        t = self.clock.now() if t is None else t
        values = self.values() if self.values is not None else {}
        out = {}
        for d in self.lfos:
            locked = self.position(d, t)
            rate = values.get(f"lfo.{d.name}.rate", 1.0)
            if abs(rate - 1.0) < RELOCK:  # (a knob cannot stop on exactly 1: near it is 1)
                self._free.pop(d.name, None)
                c = locked
            else:  # runs on at `rate` times its speed from where it was
                c0, locked0 = self._free.get(d.name, (locked, locked))
                c = c0 + (locked - locked0) * rate
                self._free[d.name] = (c, locked)
            depth = values.get(f"lfo.{d.name}.depth", 1.0)
            out[f"lfo.{d.name}"] = depth * shape_value(d.shape, c, d.width, self._seeds[d.name])
        return Reading(out)

    def hud_lines(self) -> dict[str, str]:
        return {}

    def stop(self, timeout_s: float = 2.0) -> bool:
        return True
