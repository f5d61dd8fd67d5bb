"""Quantized actions: an action whose binding says `quantize: beat | bar | ...` waits for the
beat clock's next boundary of that grid and fires in the first frame at or after it.

The boundary is taken from the beat position of the frame the action arrived in (the beat
clock's reading, live or recorded, so a render fires it in the same frame), and taken again if
the beat jumps back (a MIDI Start, a resync). Without a beat clock the action fires at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..common.events import ParamUpdate
from ..mapping.schema import QUANTIZE_BARS, QUANTIZE_GRIDS

MAX_PENDING = 64  # actions waiting at once; beyond that the oldest are dropped (a pad drummed on)
MAX_AGE_S = 0.25  # a press is at most this much older than the frame that took it (else: the frame's)


@dataclass
class _Waiting:
    update: ParamUpdate
    boundary: float | None = None  # the beat it fires on, once the frame's beat is known
    armed_at: float = 0.0  # the beat when the boundary was set


class Quantizer:
    def __init__(self) -> None:
        self._waiting: list[_Waiting] = []
        self.dropped = 0

    def hold(self, update: ParamUpdate) -> None:
        self._waiting.append(_Waiting(update))
        if len(self._waiting) > MAX_PENDING:
            del self._waiting[0]
            self.dropped += 1

    def due(self, beats: float | None, beats_per_bar: float, now: float = 0.0,
            bpm: float | None = None) -> list[ParamUpdate]:
        """The actions whose boundary this frame's beat position `beats` (at time `now`, at
        `bpm`) has reached (all of them when there is no beat clock: None), oldest first. The
        boundary is the next one after the press (`time_s`): a press just before a line that the
        frame took just after it fires now, not a whole step later."""
        if beats is None or not math.isfinite(beats):
            out, self._waiting = [w.update for w in self._waiting], []
            return out
        out, kept = [], []
        for w in self._waiting:
            if w.boundary is None or beats < w.armed_at - 1e-9:  # (new, or the beat jumped back:
                grid = _grid_beats(w.update.quantize, beats_per_bar)  # a Start, a resync)
                pressed = beats
                if w.boundary is None and w.update.time_s is not None and bpm:
                    age = now - w.update.time_s
                    pressed -= min(max(age, 0.0), MAX_AGE_S) * bpm / 60.0 if math.isfinite(age) else 0.0
                w.boundary, w.armed_at = math.ceil(pressed / grid - 1e-9) * grid, beats
            (out if beats >= w.boundary - 1e-9 else kept).append(w)
        self._waiting = kept
        return [w.update for w in out]

    def pending(self) -> list[str]:
        """What waits, for the HUD: "seed.next @ beat 12"."""
        return [f"{w.update.target}{f' {w.update.value:g}' if w.update.value else ''} @ "
                + (f"next {w.update.quantize}" if w.boundary is None else f"beat {w.boundary:g}") for w in self._waiting]


def _grid_beats(quantize: str | None, beats_per_bar: float) -> float:
    grid = QUANTIZE_GRIDS.get(quantize or "beat", 1.0)
    if grid is None:
        grid = QUANTIZE_BARS[quantize] * max(1.0, beats_per_bar)
    return grid
