"""Causal onset detection: SuperFlux-style spectral flux with an adaptive threshold.

The pieces `FeatureExtractor` combines: a log-frequency triangular filterbank, an
analysis window that weights the newest samples (a short fall, a long rise), and
`OnsetPicker`, the causal peak picker (adaptive threshold, local-max test over the past,
refractory period, silence gate). Nothing here looks ahead: a decision about frame t uses
frames <= t only, so it is final when it is made.

References for the method (the formulas, not code): S. Böck, G. Widmer, "Maximum filter
vibrato suppression for onset detection", DAFx 2013 (SuperFlux); S. Böck, F. Krebs,
M. Schedl, "Evaluating the online capabilities of onset detection methods", ISMIR 2012.
"""

from __future__ import annotations

import math

import numpy as np


def log_filterbank(*, n_fft: int, sample_rate: float, bands_per_octave: int = 12,
                   fmin_hz: float = 30.0, fmax_hz: float = 17000.0) -> tuple[np.ndarray, np.ndarray]:
    """Triangular filters on a log-frequency axis, for an rfft of `n_fft` points.

    Returns `(fb, centres_hz)`: `fb` float32 (n_bands, n_fft // 2 + 1) with unit-height
    triangles, `centres_hz` (n_bands,). Filters narrower than the bin spacing collapse onto
    single bins; duplicates are dropped, so low bands are fewer than `bands_per_octave` asks
    (SuperFlux does the same). `fmax_hz` is capped at 0.95 x Nyquist.
    """
    n_bins = n_fft // 2 + 1
    fmax_hz = min(fmax_hz, 0.95 * sample_rate / 2)
    n_edges = int(math.floor(bands_per_octave * math.log2(fmax_hz / fmin_hz))) + 1
    edges_hz = fmin_hz * 2.0 ** (np.arange(n_edges) / bands_per_octave)
    edge_bins = np.unique(np.round(edges_hz * n_fft / sample_rate).astype(int))
    edge_bins = edge_bins[(edge_bins > 0) & (edge_bins < n_bins)]
    rows, centres = [], []
    for lo, mid, hi in zip(edge_bins[:-2], edge_bins[1:-1], edge_bins[2:]):
        row = np.zeros(n_bins, dtype=np.float32)
        row[lo:mid + 1] = np.linspace(0.0, 1.0, mid - lo + 1)
        row[mid:hi + 1] = np.linspace(1.0, 0.0, hi - mid + 1)
        rows.append(row)
        centres.append(mid * sample_rate / n_fft)
    return np.stack(rows), np.asarray(centres)


def fast_attack_window(n: int, *, fall: int) -> np.ndarray:
    """An asymmetric window of `n` samples: a sine-squared rise over `n - fall` samples and a
    sine-squared fall over the newest `fall`. Shape (n,) float64.

    A symmetric Hann window gives the newest samples almost no weight, so an onset shows in
    the spectrum only once it is ~n/4 old; this window's peak sits `fall` samples from the
    end, which cuts detection delay while the long rise keeps the frequency resolution.
    `fall = n // 2` is the Hann window.
    """
    if not 1 <= fall <= n - 1:
        raise ValueError(f"fall must be in range 1..{n - 1}, got {fall}")
    rise = n - fall
    up = np.sin(0.5 * np.pi * (np.arange(rise) + 0.5) / rise) ** 2
    down = np.cos(0.5 * np.pi * (np.arange(fall) + 0.5) / fall) ** 2
    return np.concatenate([up, down])


class OnsetPicker:
    """Causal peak picking on an onset detection function (ODF), one value per frame.

    Fires on frame t when all hold: odf[t] > multiplier * median(odf over the past
    `median_frames`) + delta; odf[t] >= max(odf over the past `max_frames`); at least
    `refractory_frames` since the last firing; and the caller's silence gate is open.
    `delta` is read on every call, so it can change live.
    """

    def __init__(self, *, median_frames: int, max_frames: int, refractory_frames: int,
                 multiplier: float, delta: float):
        self.median_frames = max(1, median_frames)
        self.max_frames = max(1, max_frames)
        # past ODF values, oldest first; shifted in place (a few dozen floats)
        self.history = np.zeros(max(self.median_frames, self.max_frames), dtype=np.float64)
        self.refractory_frames = refractory_frames
        self.multiplier = multiplier
        self.delta = delta
        self._since = 1 << 30

    def reset(self) -> None:
        """Forget the past ODF values and the last firing."""
        self.history[:] = 0.0
        self._since = 1 << 30

    def threshold(self) -> float:
        """The threshold the next frame has to exceed."""
        med = float(np.median(self.history[-self.median_frames:]))
        return self.multiplier * med + self.delta

    def step(self, odf: float, *, gate_open: bool = True) -> bool:
        """Add this frame's ODF value; return whether an onset fires on it."""
        h = self.history
        fire = (gate_open and odf > self.threshold() and odf >= h[-self.max_frames:].max()
                and self._since >= self.refractory_frames)
        h[:-1] = h[1:]
        h[-1] = odf
        self._since = 0 if fire else self._since + 1
        return fire


class LaggedFlux:
    """Spectral flux against an older reference: for slow and soft attacks.

    SuperFlux compares each band with its maximum over the last few frames, so a note that
    swells over 30..60 ms (flute, bowed strings, anything in heavy noise) shows only one
    frame's rise at a time and may never cross the threshold. This compares the newest log
    spectrum with the band's maximum over frames t - `far` .. t - `near` (max-filtered over
    +-1 band), so the rise of the last `near` frames counts in full. It is a second detection
    function, picked by its own `OnsetPicker` beside the fast one (an onset fires when either
    fires); sharp attacks still fire on the fast one first. Causal: frame t uses frames <= t.
    """

    def __init__(self, n_bands: int, *, near: int, far: int):
        if not 1 <= near <= far:
            raise ValueError(f"need 1 <= near <= far, got near={near}, far={far}")
        self.near, self.far = int(near), int(far)
        self._ring = np.zeros((self.far, int(n_bands)))        # past log spectra, by frame % far
        self._pos = 0                                            # the slot of frame t - far

    def reset(self) -> None:
        """Forget the past spectra."""
        self._ring[:] = 0.0
        self._pos = 0

    def step(self, spec: np.ndarray) -> np.ndarray:
        """Add this frame's log spectrum (n_bands,); return the positive differences (n_bands,)."""
        far, near = self.far, self.near
        # slots of frames t-far .. t-near: far - near + 1 slots from the oldest on
        idx = (self._pos + np.arange(far - near + 1)) % far
        ref = self._ring[idx].max(axis=0)
        ref_max = ref.copy()
        np.maximum(ref_max[1:], ref[:-1], out=ref_max[1:])
        np.maximum(ref_max[:-1], ref[1:], out=ref_max[:-1])
        diff = np.maximum(spec - ref_max, 0.0)
        self._ring[self._pos] = spec                             # frame t replaces frame t - far
        self._pos = (self._pos + 1) % far
        return diff
