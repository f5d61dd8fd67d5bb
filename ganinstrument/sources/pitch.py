"""Causal YIN: fundamental frequency of the newest samples, with a confidence.

YIN (A. de Cheveigné, H. Kawahara, JASA 2002) compares the signal with itself delayed by
each candidate period tau. Here the comparison window is the newest `window` samples:

    d(tau) = sum over the newest `window` samples j of (x[j] - x[j - tau])**2

so a short period (a high note) needs only `window + tau` samples of history and is
reported with little delay, while a long period (a bass note at 40 Hz) reaches further back
into the history buffer. d is computed for all taus at once with one FFT cross-correlation
and running energy sums, then normalised by its cumulative mean (d'), and the first dip
below `threshold` (else the global minimum) is refined by parabolic interpolation.
"""

from __future__ import annotations

import math

import numpy as np


class CausalYin:
    """f0 estimator over a history buffer the caller keeps.

    `sample_rate` Hz; `fmin_hz`, `fmax_hz` the search range; `window` the comparison length
    in samples; `threshold` YIN's absolute threshold on d'; `margin`: without a dip under
    the threshold, the first dip within `margin` of the global minimum wins. `needed` is how many of the
    newest samples `estimate` reads (window + the longest period).
    """

    def __init__(self, *, sample_rate: float, fmin_hz: float = 38.0, fmax_hz: float = 2000.0,
                 window: int = 1024, threshold: float = 0.15, margin: float = 0.1):
        self.sample_rate = float(sample_rate)
        self.tau_min = max(2, int(math.floor(sample_rate / fmax_hz)))
        self.tau_max = int(math.ceil(sample_rate / fmin_hz))
        self.window = int(window)
        self.threshold = float(threshold)
        self.margin = float(margin)
        self.needed = self.window + self.tau_max
        self.n_fft = 1 << (self.needed - 1).bit_length()
        self._tau = np.arange(1, self.tau_max + 1, dtype=np.float64)       # (tau_max,)
        self.cmnd = np.ones(self.tau_max + 1, dtype=np.float64)           # last d', for tests

    def estimate(self, history: np.ndarray) -> tuple[float, float, float]:
        """`history`: the newest `needed` samples (float64, oldest first).

        Returns `(f0_hz, aperiodicity, window_rms)`: d' at the chosen period (0 = perfectly
        periodic, ~1 = noise) and the RMS of the newest `window` samples.
        """
        y = history[-self.needed:]                                       # (W + tau_max,)
        w, tmax = self.window, self.tau_max
        a = y[tmax:]                                                      # newest W samples
        spec_y = np.fft.rfft(y, self.n_fft)
        spec_a = np.fft.rfft(a, self.n_fft)
        corr = np.fft.irfft(spec_y * np.conj(spec_a), self.n_fft)         # corr[k] = sum a[i] y[i+k]
        r = corr[tmax - 1::-1][:tmax]                                     # r(tau) = corr[tmax - tau]
        sq = np.concatenate(([0.0], np.cumsum(y * y)))
        e_a = sq[-1] - sq[tmax]
        starts = tmax - np.arange(1, tmax + 1)                            # window start of x[j - tau]
        e_y = sq[starts + w] - sq[starts]
        d = np.maximum(e_a + e_y - 2.0 * r, 0.0)                          # d(tau), tau = 1..tmax
        csum = np.cumsum(d)
        cmnd = self.cmnd
        cmnd[0] = 1.0
        np.divide(d * self._tau, csum, out=cmnd[1:], where=csum > 1e-12)
        cmnd[1:][csum <= 1e-12] = 1.0
        rms = math.sqrt(max(e_a, 0.0) / w)
        lo = self.tau_min
        seg = cmnd[lo:tmax]
        # the first dip under the threshold; without one, the first dip close to the global
        # minimum (the global minimum itself is often a subharmonic while notes overlap)
        below = np.flatnonzero(seg < self.threshold)
        if not below.size and self.margin > 0.0:
            below = np.flatnonzero(seg <= seg.min() + self.margin)
        if below.size:
            tau = lo + int(below[0])
            while tau + 1 < tmax and cmnd[tau + 1] < cmnd[tau]:
                tau += 1
        else:
            tau = lo + int(np.argmin(seg))
        aper = float(cmnd[tau])
        shift = 0.0
        if lo < tau < tmax - 1:
            c0, c1, c2 = cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]
            den = c0 - 2.0 * c1 + c2
            if den > 1e-12:
                shift = 0.5 * (c0 - c2) / den
                aper = float(c1 - 0.25 * (c0 - c2) * shift)
        return self.sample_rate / (tau + shift), min(1.0, max(0.0, aper)), rms
