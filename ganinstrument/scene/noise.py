"""Smooth random patterns for the z-group console's "Perlin" button.

One-dimensional Perlin (gradient) noise, a few octaves, sampled across the group index, so that
neighbouring faders get close values and the bank as a whole forms a gentle wave.
"""

from __future__ import annotations

import numpy as np

__all__ = ["perlin_1d", "perlin_pattern"]


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)  # 6t^5 - 15t^4 + 10t^3: C2 at lattice points


def perlin_1d(x: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Gradient noise at positions `x` (>= 0) from one gradient per integer lattice point.

    `gradients[i]` is the slope at lattice point i (values in [-1, 1]); `gradients` must cover
    floor(max(x)) + 1. The result is 0 at every lattice point and lies within [-0.5, 0.5].
    """
    x = np.asarray(x, dtype=np.float64)
    i0 = np.floor(x).astype(np.int64)
    t = x - i0
    g0, g1 = gradients[i0], gradients[i0 + 1]
    return g0 * t + _fade(t) * (g1 * (t - 1.0) - g0 * t)


def perlin_pattern(n: int, rng: np.random.Generator, *, octaves: int = 3) -> np.ndarray:
    """`n` smooth values in [-1, 1]: octaves of 1-D Perlin noise across indices 0..n-1.

    The first octave spans the n indices with 1.5 lattice cells (one or two gentle waves across
    the bank); each further octave doubles the cells and halves the amplitude, and octaves with
    fewer than 4 indices per cell are left out, so neighbours stay close however many groups
    there are. The phase and gradients are random, so every call gives a new pattern.
    """
    if n <= 0:
        return np.zeros(0)
    out = np.zeros(n)
    total = 0.0
    for octave in range(octaves):
        cells = 1.5 * 2**octave
        if octave > 0 and n / cells < 4:
            break
        x = rng.uniform(0.0, 1.0) + np.arange(n) * (cells / n)  # [n] lattice coordinates
        gradients = rng.uniform(-1.0, 1.0, size=int(np.floor(x[-1])) + 2)
        amplitude = 0.5**octave
        out += amplitude * perlin_1d(x, gradients)
        total += amplitude
    return np.clip(out * (2.0 / total), -1.0, 1.0)  # perlin_1d is within +-0.5
