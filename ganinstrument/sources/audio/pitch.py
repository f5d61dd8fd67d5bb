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
        self.diff = np.zeros(self.tau_max + 1, dtype=np.float64)          # last d (d[0] = 0)

    def difference(self, history: np.ndarray) -> float:
        """Compute d (`diff`) and d' (`cmnd`) of the newest `needed` samples of `history`
        (float64, oldest first) for every period; returns the energy of the newest `window`."""
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
        self.diff[1:] = d
        csum = np.cumsum(d)
        cmnd = self.cmnd
        cmnd[0] = 1.0
        np.divide(d * self._tau, csum, out=cmnd[1:], where=csum > 1e-12)
        cmnd[1:][csum <= 1e-12] = 1.0
        return e_a

    def estimate(self, history: np.ndarray) -> tuple[float, float, float]:
        """`history`: the newest `needed` samples (float64, oldest first).

        Returns `(f0_hz, aperiodicity, window_rms)`: d' at the chosen period (0 = perfectly
        periodic, ~1 = noise) and the RMS of the newest `window` samples.
        """
        e_a = self.difference(history)
        cmnd, w, tmax = self.cmnd, self.window, self.tau_max
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


def _parabola(c0, c1, c2):
    """Offset (-0.5..0.5) and value of the vertex of the parabola through 3 equally spaced points."""
    den = c0 - 2.0 * c1 + c2
    shift = np.where(den > 1e-12, 0.5 * (c0 - c2) / np.where(den > 1e-12, den, 1.0), 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    return shift, c1 - 0.25 * (c0 - c2) * shift


def dips(cmnd: np.ndarray, lo: int, hi: int, limit: float = 1.0,
         diff: np.ndarray | None = None, within: float = 0.3,
         most: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The local minima of d' between periods `lo` and `hi` (exclusive) below `limit` and
    within `within` of the deepest, at most the `most` shortest (noise has hundreds), in
    order of period: (refined periods (K,), d' at each (K,)).

    The period is refined by a parabola through the minimum and its two neighbours: on d'
    itself, or, given `diff` (d), on d's own minimum next to it, as YIN's step 5 does. d'
    multiplies d by tau, which tilts a broad dip (a low note, or any note under noise whose
    autocorrelation falls with the lag, like pink noise) toward shorter periods: at 6 dB
    pink-noise SNR a 65 Hz tone read from d' came out up to a semitone sharp."""
    seg = cmnd[lo - 1:hi + 1]                                    # one neighbour each side
    mid = seg[1:-1]
    k = np.flatnonzero((mid < seg[:-2]) & (mid <= seg[2:]) & (mid < limit))
    if k.size:
        k = k[mid[k] <= mid[k].min() + within][:most]
    shift, value = _parabola(seg[k], seg[k + 1], seg[k + 2])
    value = np.clip(value, 0.0, 1.0)
    if diff is None or not k.size:
        return lo + k + shift, value
    tau = lo + k
    for _ in range(3):                       # walk down d to its own minimum, at most 3 steps
        left, right = diff[np.maximum(tau - 1, lo)], diff[np.minimum(tau + 1, hi - 1)]
        here = diff[tau]
        tau = np.where((left < here) & (left <= right) & (tau > lo), tau - 1,
                       np.where((right < here) & (tau < hi - 1), tau + 1, tau))
    inner = (tau > lo) & (tau < hi - 1)
    t = np.clip(tau, lo + 1, hi - 2)
    d_shift, _ = _parabola(diff[t - 1], diff[t], diff[t + 1])
    return np.where(inner, t + d_shift, tau).astype(np.float64), value


class PitchTracker:
    """Causal probabilistic f0 tracking over YIN's dips: pYIN's idea of scoring every dip,
    with an online forward filter in place of pYIN's offline Viterbi pass.

    pYIN (M. Mauch, S. Dixon, ICASSP 2014) does not pick one dip of d' with one threshold:
    it averages over a prior on the threshold, so each dip gets the probability of being
    the first one under a threshold drawn from that prior. Here the threshold is
    max(a, min d' + m): `a` from a Beta prior with mean `threshold_mean` (YIN's absolute
    threshold) and `m` exponential with mean `margin` (how much shallower than the deepest
    dip an earlier dip may be and still win). The relative part keeps a note's own period
    ahead of a deeper subharmonic when noise, or the last note still ringing, lifts every
    dip above any absolute threshold. How likely the frame is voiced at all comes from the
    deepest dip: 1/2 at d' = `voicing_threshold`, logistic with width `voicing_width`.

    Those are the observations of a hidden Markov model whose states are pitch bins
    (`bins_per_semitone` per semitone between fmin and fmax) and one unvoiced state. Each
    frame the state distribution is predicted (a pitch drifts by up to `drift_cents` per
    frame, jumps anywhere at `jumps_per_s`, a voice starts or stops at
    `voicing_changes_per_s`), multiplied by the observations (`unseen`: the weight of a
    bin without a dip) and normalised; it depends on the past only. A stray dip in one noisy
    frame cannot pull the track away from the note the frames before established, while a
    new note takes over within a frame or two once its dip is there.

    `update(periods, values)` takes `dips()`' output for one frame and returns
    `(f0_hz or None, P(voiced))`: the pitch of the most likely bin (refined: the dip in
    it) while P(voiced) > 1/2.
    """

    def __init__(self, *, sample_rate: float, fmin_hz: float, fmax_hz: float, frame_s: float,
                 bins_per_semitone: int = 5, threshold_mean: float = 0.15, margin: float = 0.1,
                 voicing_threshold: float = 0.85, voicing_width: float = 0.05,
                 jumps_per_s: float = 60.0, voicing_changes_per_s: float = 30.0,
                 drift_cents: float = 40.0, unseen: float = 0.01):
        from scipy.special import betainc

        if not 0.0 < threshold_mean < 1.0 or margin <= 0.0 or voicing_width <= 0.0:
            raise ValueError("threshold_mean must be in 0..1, margin and voicing_width > 0")
        self._betainc = betainc
        self.sample_rate = float(sample_rate)
        self.bins_per_semitone = int(bins_per_semitone)
        self._note_lo = 69.0 + 12.0 * math.log2(fmin_hz / 440.0)
        note_hi = 69.0 + 12.0 * math.log2(fmax_hz / 440.0)
        self.n_bins = int(math.ceil((note_hi - self._note_lo) * self.bins_per_semitone)) + 1
        self._beta_a = 2.0
        self._beta_b = self._beta_a * (1.0 - threshold_mean) / threshold_mean
        self.margin = float(margin)
        self.voicing_threshold = float(voicing_threshold)
        self.voicing_width = float(voicing_width)
        self._p_jump = 1.0 - math.exp(-jumps_per_s * frame_s)
        self._p_switch = 1.0 - math.exp(-voicing_changes_per_s * frame_s)
        width = max(1, round(drift_cents * self.bins_per_semitone / 100.0))
        tri = width + 1.0 - np.abs(np.arange(-width, width + 1, dtype=np.float64))
        self._kernel = tri / tri.sum()
        self.unseen = float(unseen)
        self.reset()

    def reset(self) -> None:
        self.voiced = np.full(self.n_bins, 0.5 / self.n_bins)      # P(voiced, pitch in bin b)
        self.unvoiced = 0.5

    def bin_of(self, hz: np.ndarray) -> np.ndarray:
        note = 69.0 + 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / 440.0)
        return np.clip(np.rint((note - self._note_lo) * self.bins_per_semitone), 0,
                       self.n_bins - 1).astype(np.intp)

    def hz_of(self, b: int) -> float:
        return 440.0 * 2.0 ** ((self._note_lo + b / self.bins_per_semitone - 69.0) / 12.0)

    def dip_probabilities(self, values: np.ndarray) -> np.ndarray:
        """P(dip i is the first under the threshold), dips in order of period; sums to 1."""
        if not values.size:
            return values
        cmin = float(values.min())

        def threshold_cdf(x):
            relative = 1.0 - np.exp(-np.maximum(x - cmin, 0.0) / self.margin)
            return self._betainc(self._beta_a, self._beta_b, np.clip(x, 0.0, 1.0)) * relative

        earlier = np.minimum.accumulate(np.concatenate(([1.0], values[:-1])))
        p = np.maximum(threshold_cdf(earlier) - threshold_cdf(values), 0.0)
        total = float(p.sum())
        if total > 1e-12:
            return p / total
        return (values == cmin).astype(np.float64) / float(np.count_nonzero(values == cmin))

    def voicing(self, values: np.ndarray) -> float:
        """P(voiced) from the deepest dip alone."""
        if not values.size:
            return 0.0
        z = (float(values.min()) - self.voicing_threshold) / self.voicing_width
        return 1.0 / (1.0 + math.exp(min(z, 700.0)))

    def update(self, periods: np.ndarray, values: np.ndarray) -> tuple[float | None, float]:
        hz = self.sample_rate / periods if periods.size else np.zeros(0)
        bins = self.bin_of(hz)
        voiced_evidence = self.voicing(values)
        obs = np.full(self.n_bins, self.unseen)
        np.add.at(obs, bins, self.dip_probabilities(values) * voiced_evidence)
        obs_unvoiced = self.unseen + 1.0 - voiced_evidence

        v, u = self.voiced, self.unvoiced
        total_v = float(v.sum())
        moved = np.convolve(v, self._kernel, mode="same")
        stay = 1.0 - self._p_switch
        pred_v = (stay * ((1.0 - self._p_jump) * moved + self._p_jump * total_v / self.n_bins)
                  + self._p_switch * u / self.n_bins)
        pred_u = self._p_switch * total_v + stay * u
        v = pred_v * obs
        u = pred_u * obs_unvoiced
        norm = float(v.sum()) + u
        self.voiced, self.unvoiced = v / norm, u / norm
        p_voiced = 1.0 - self.unvoiced
        if p_voiced <= 0.5:
            return None, p_voiced
        best = int(np.argmax(self.voiced))
        if bins.size:
            near = np.abs(bins - best)
            i = int(np.argmin(near))
            if near[i] <= 1:
                return float(hz[i]), p_voiced
        return self.hz_of(best), p_voiced
