"""Morphing from the current look to a preset over a few seconds.

Scalars move linearly; the base latent moves along a great circle (slerp), so a morph between
two seeds passes through plausible latents instead of the short, low-norm chord between them.
Whole-number and choice targets (a view, a class) switch at the end.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..scene.latent import slerp
from ..state.params import TargetSpec


class Morph:
    """Linear in time from `start` to `end` over `duration_s`; `base_from` -> `base_to` by slerp."""

    def __init__(self, start: Mapping[str, float], end: Mapping[str, float], specs: Mapping[str, TargetSpec],
                 duration_s: float, base_from: np.ndarray, base_to: np.ndarray):
        self.duration_s = max(float(duration_s), 1e-9)
        self.elapsed_s = 0.0
        self.end = dict(end)
        self._start = {k: float(start[k]) for k in self.end if k in start}
        self._smooth = [k for k in self._start if specs[k].kind == "continuous"]
        self._base_from, self._base_to = base_from, base_to

    @property
    def done(self) -> bool:
        return self.elapsed_s >= self.duration_s

    @property
    def fraction(self) -> float:
        return min(self.elapsed_s / self.duration_s, 1.0)

    def advance(self, dt: float) -> tuple[dict[str, float], np.ndarray]:
        """Move on by `dt` seconds; returns the continuous targets' values and the base latent."""
        if dt > 0:
            self.elapsed_s += dt
        t = self.fraction
        values = {k: (1.0 - t) * self._start[k] + t * self.end[k] for k in self._smooth}
        return values, slerp(self._base_from, self._base_to, t)
