"""Offline beat grid: the constant tempo and phase that best fit a whole file (issue 15, part 3).

`render` knows the whole file, so it can look ahead: `find_beat_grid(samples, rate)` returns a
`BeatGrid` (BPM, the first beat's time, a confidence) or None when the music has no steady beat
(a beatless pad, silence, noise: no tempo is invented).

The method (the formulas from the papers named below, the code written here):
1. Mix to mono, replace non-finite samples by 0, normalise the peak, decimate to 22.05/24 kHz
   (an integer factor, anti-aliased) when the rate is higher.
2. A novelty curve at ~200 frames/s: a 46 ms Hann STFT, the project's log-frequency
   filterbank (`onset.log_filterbank`), log compression, and SuperFlux-style positive flux
   against the +-1 band maximum of the spectrum 10 ms before (as `FeatureExtractor` does);
   minus its 1 s moving mean, half-wave rectified.
3. Tempo: the novelty's autocorrelation, read as a comb (the mean of its peaks at 1..4 beat
   lags) for every tempo from 60 to 200 BPM, times a log-normal prior centred on PRIOR_BPM
   (an octave wide) that settles octave ambiguity toward 90..180 BPM.
4. Phase and exact period: the period within +-1.5 % on which the folded novelty (a phase
   histogram over the whole file) peaks highest, and that peak's phase; then each beat of that grid is matched to its novelty peak (within a sixth of a beat),
   and a weighted least-squares line through the matched peaks gives the constant grid's period
   and first beat (twice, the second pass on the refined grid).
5. Confidence: the autocorrelation comb at the tempo (0..1, about 0 for noise), times the share
   of beats whose peak stands out of the novelty; below MIN_CONFIDENCE the answer is None.

References: D. P. W. Ellis, "Beat tracking by dynamic programming", JNMR 36(1), 2007 (the
tempo prior and the onset envelope); S. Böck, G. Widmer, "Maximum filter vibrato suppression
for onset detection", DAFx 2013 (SuperFlux); G. Percival, G. Tzanetakis, "Streamlined tempo
estimation based on autocorrelation and cross-correlation with pulses", IEEE/ACM TASLP 22(12),
2014 (the comb over autocorrelation lags).

Conventions: the tempo is the steady quarter-note pulse in 60..200 BPM; a half-time groove
(kick on 1, snare on 3, hats on every beat at 140) is reported at its notated tempo, 140,
not 70, as DJ software shows it; a 174 BPM drum and bass break is 174, not 87. The grid has
no bar line: beat 0 (`first_beat_s`) is the first beat of the file, not necessarily a downbeat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .onset import log_filterbank

MIN_BPM, MAX_BPM = 60.0, 200.0
PRIOR_BPM = 129.0          # the centre of the tempo prior (log-normal)
PRIOR_OCTAVES = 0.5        # its width (standard deviation, in octaves)
FRAME_RATE = 200.0         # novelty frames per second (about)
MIN_SECONDS = 4.0          # shorter files have no grid
MIN_CONFIDENCE = 0.1       # below this, no steady beat
ANALYSIS_RATE = 22050.0    # higher rates are decimated by an integer factor to near this
SILENCE_PEAK = 1e-6        # a file whose peak is below this (-120 dBFS) is silence
NOVELTY_DELAY_S = -0.006   # novelty peak minus onset: -9.5 ms on sharp synthetic hits, -1..-4 ms on FluidSynth (benchmarks/beatgrid_eval.py)


@dataclass(frozen=True)
class BeatGrid:
    """A constant-tempo beat grid: beats at `first_beat_s + k * 60 / bpm` for k = 0, 1, ...

    `first_beat_s` is in [0, 60 / bpm); `confidence` 0..1 (how clearly the file pulses on it).
    """

    bpm: float
    first_beat_s: float
    confidence: float

    @property
    def period_s(self) -> float:
        return 60.0 / self.bpm

    def beats(self, duration_s: float) -> np.ndarray:
        """The grid's beat times in [0, duration_s), seconds."""
        n = max(0, int(math.ceil((duration_s - self.first_beat_s) / self.period_s)))
        t = self.first_beat_s + np.arange(n) * self.period_s
        return t[t < duration_s]


# -- input ------------------------------------------------------------------------------------


def _mono(samples: np.ndarray, sample_rate: float) -> np.ndarray:
    """[frames] or [frames, channels] -> float64 mono, non-finite samples as 0."""
    x = np.asarray(samples)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"samples must be a real numeric array, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"samples must be [frames] or [frames, channels], got shape {np.shape(samples)}")
    mono = np.zeros(x.shape[0], dtype=np.float64)
    for c in range(x.shape[1]):  # one channel at a time: no float64 copy of the whole file
        ch = x[:, c].astype(np.float64) / x.shape[1]
        ch[~np.isfinite(ch)] = 0.0
        mono += ch
    mono[~np.isfinite(mono)] = 0.0  # (two channels near the float64 limit)
    return mono


def _decimate(mono: np.ndarray, sample_rate: float) -> tuple[np.ndarray, float]:
    q = int(sample_rate // ANALYSIS_RATE)
    if q < 2 or len(mono) < 64 * q:
        return mono, sample_rate
    from scipy.signal import resample_poly

    return resample_poly(mono, 1, q), sample_rate / q


# -- novelty ----------------------------------------------------------------------------------


def novelty_curve(mono: np.ndarray, sample_rate: float) -> tuple[np.ndarray, float]:
    """SuperFlux-style spectral flux of a mono signal (peak ~1): `(novelty, frames_per_s)`;
    frame i is centred on i / frames_per_s seconds."""
    n_fft = 1 << max(6, round(math.log2(0.046 * sample_rate)))
    hop = max(1, round(sample_rate / FRAME_RATE))
    fps = sample_rate / hop
    half = n_fft // 2
    padded = np.concatenate([np.zeros(half), mono.astype(np.float32), np.zeros(half)]).astype(np.float32)
    n_frames = 1 + (len(padded) - n_fft) // hop
    if n_frames < 2:
        return np.zeros(max(0, n_frames)), fps
    window = np.hanning(n_fft).astype(np.float32)
    scale = 2.0 / float(window.sum())
    fb, centres = log_filterbank(n_fft=n_fft, sample_rate=sample_rate, bands_per_octave=12,
                                 fmin_hz=30.0, fmax_hz=min(16000.0, 0.45 * sample_rate))
    # bands weighted as a mel scale spaces them (1 / (1 + f / 700)): the kick and the snare's
    # body count more than the hats, whose eighths would otherwise double the tempo
    weights = 1.0 / (1.0 + centres / 700.0)
    fbt = np.ascontiguousarray(fb.T, dtype=np.float32)
    view = np.lib.stride_tricks.sliding_window_view(padded, n_fft)
    logs = np.empty((n_frames, fbt.shape[1]), dtype=np.float32)
    chunk = 2048
    for s in range(0, n_frames, chunk):
        frames = view[s * hop:(s + min(chunk, n_frames - s) - 1) * hop + 1:hop] * window
        mag = np.abs(np.fft.rfft(frames, axis=1)).astype(np.float32) * scale
        logs[s:s + len(frames)] = np.log10(1.0 + 1000.0 * (mag @ fbt))
    lag = max(1, round(0.010 * fps))
    ref = logs[:-lag]
    ref = np.maximum(ref, np.maximum(np.pad(ref[:, 1:], ((0, 0), (0, 1))), np.pad(ref[:, :-1], ((0, 0), (1, 0)))))
    flux = np.zeros(n_frames, dtype=np.float64)
    flux[lag:] = np.maximum(logs[lag:] - ref, 0.0) @ weights
    return flux, fps


def _moving_mean(x: np.ndarray, n: int) -> np.ndarray:
    n = max(1, int(n) | 1)
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(len(x))
    lo = np.clip(i - n // 2, 0, len(x))
    hi = np.clip(i + n // 2 + 1, 0, len(x))
    return (c[hi] - c[lo]) / np.maximum(1, hi - lo)


# -- tempo ------------------------------------------------------------------------------------


def _autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    x = x - x.mean()
    n = 1 << int(math.ceil(math.log2(2 * len(x))))
    f = np.fft.rfft(x, n)
    r = np.fft.irfft(f * np.conj(f), n)[:max_lag + 1]
    return r / r[0] if r[0] > 0 else np.zeros(max_lag + 1)


def tempo_scores(acf: np.ndarray, fps: float, bpms: np.ndarray) -> np.ndarray:
    """For each tempo, the mean of the autocorrelation's peak near 1, 2, 3 and 4 beats."""
    # the largest value within +-tolerance of each lag, by a running maximum over +-w frames
    score = np.zeros(len(bpms))
    for k in (1, 2, 3, 4):
        lags = k * 60.0 * fps / bpms
        w = np.maximum(1, np.round(0.01 * lags)).astype(int)
        best = np.full(len(bpms), -1.0)
        for d in range(-int(w.max()), int(w.max()) + 1):
            idx = np.clip(np.round(lags).astype(int) + d, 0, len(acf) - 1)
            ok = np.abs(d) <= w
            best = np.where(ok, np.maximum(best, acf[idx]), best)
        score += best
    return score / 4.0


def tempo_prior(bpm: np.ndarray | float) -> np.ndarray | float:
    return np.exp(-0.5 * (np.log2(np.asarray(bpm) / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)


# -- phase and grid ---------------------------------------------------------------------------


def _fold(nov: np.ndarray, period: float) -> tuple[float, float]:
    """The novelty folded on `period` frames (a phase histogram of one-frame bins, lightly
    smoothed): (the phase of its peak in frames, 0..period; the peak's height)."""
    bins = max(4, int(round(period)))
    i = np.arange(len(nov))
    b = np.floor((i / period % 1.0) * bins).astype(int) % bins
    hist = np.bincount(b, weights=nov, minlength=bins) / np.maximum(1, np.bincount(b, minlength=bins))
    sm = hist + 0.5 * (np.roll(hist, 1) + np.roll(hist, -1))
    j = int(np.argmax(sm))
    return (j + 0.5) * period / bins, float(sm[j])


def _refine_period(nov: np.ndarray, period: float) -> float:
    """The period near `period` (+-1.5 %) on which the folded novelty peaks highest: the
    constant grid that lines up the most onset strength over the whole file."""
    for span, steps in ((0.015, 61), (0.0006, 25)):
        cands = period * (1.0 + np.linspace(-span, span, steps))
        heights = [_fold(nov, p)[1] for p in cands]
        period = float(cands[int(np.argmax(heights))])
    return period


def _peaks_on_grid(nov: np.ndarray, t0: float, period: float, reach: float):
    """For each grid beat t0 + k * period inside the curve: the novelty peak within +-reach
    frames (parabolic sub-frame position) and its height."""
    ks = np.arange(int(math.floor(-t0 / period)), int(math.ceil((len(nov) - 1 - t0) / period)) + 1)
    centres = t0 + ks * period
    keep = (centres >= reach) & (centres <= len(nov) - 1 - reach)
    ks, centres = ks[keep], centres[keep]
    if len(ks) == 0:
        return ks, centres, centres
    r = int(math.ceil(reach))
    offs = np.arange(-r, r + 1)
    idx = np.clip(np.round(centres).astype(int)[:, None] + offs[None, :], 0, len(nov) - 1)
    win = nov[idx]
    j = np.argmax(win, axis=1)
    pos = idx[np.arange(len(idx)), j].astype(np.float64)
    h = win[np.arange(len(idx)), j]
    inner = (j > 0) & (j < len(offs) - 1)
    a = np.where(inner, win[np.arange(len(idx)), np.clip(j - 1, 0, None)], 0.0)
    c = np.where(inner, win[np.arange(len(idx)), np.clip(j + 1, None, len(offs) - 1)], 0.0)
    den = a - 2 * h + c
    shift = np.where(inner & (den < 0), 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
    return ks, pos + np.clip(shift, -0.5, 0.5), h


def _fit_grid(nov: np.ndarray, t0: float, period: float) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Weighted least squares of matched peak positions on beat index: (t0, period, heights, residuals)."""
    heights = residuals = np.zeros(0)
    for reach in (period / 6.0, period / 10.0):
        ks, pos, h = _peaks_on_grid(nov, t0, period, max(1.0, reach))
        if len(ks) < 4:
            break
        w = np.maximum(h, 0.0)
        if w.sum() <= 0:
            break
        wk = (w * ks).sum() / w.sum()
        wp = (w * pos).sum() / w.sum()
        var = (w * (ks - wk) ** 2).sum()
        if var <= 0:
            break
        p = (w * (ks - wk) * (pos - wp)).sum() / var
        if not (0.9 * period < p < 1.1 * period):
            break
        period, t0 = p, wp - p * wk
        heights, residuals = h, pos - (t0 + p * ks)
    return t0, period, heights, residuals


# -- the whole ---------------------------------------------------------------------------------


def find_beat_grid(samples: np.ndarray, sample_rate: int) -> BeatGrid | None:
    """The constant beat grid of a whole file, or None when it has no steady beat.

    `samples`: [frames] or [frames, channels], any real dtype (ints as they are, floats at any
    scale; NaN and inf are read as 0). `sample_rate`: Hz. A wrong shape, dtype or sample
    rate is a ValueError naming it; nothing in the audio itself raises.
    """
    rate = float(sample_rate)
    if not (math.isfinite(rate) and 4000.0 <= rate <= 768000.0):
        raise ValueError(f"sample_rate must be 4000..768000 Hz, got {sample_rate!r}")
    mono = _mono(samples, rate)
    if len(mono) < MIN_SECONDS * rate:
        return None
    peak = float(np.max(np.abs(mono)))
    if not peak >= SILENCE_PEAK:
        return None
    mono, rate = _decimate(mono / peak, rate)
    flux, fps = novelty_curve(mono, rate)
    nov = np.maximum(flux - _moving_mean(flux, round(fps)), 0.0)
    if not np.any(nov > 0):
        return None
    nov /= float(np.max(nov))

    max_lag = int(math.ceil(4 * 60.0 * fps / MIN_BPM * 1.02)) + 2
    if len(nov) <= max_lag // 2:
        return None
    acf = _autocorrelation(nov, min(max_lag, len(nov) - 1))
    if len(acf) <= max_lag:
        acf = np.concatenate([acf, np.zeros(max_lag + 1 - len(acf))])
    bpms = MIN_BPM * (MAX_BPM / MIN_BPM) ** np.linspace(0.0, 1.0, 600)
    scores = tempo_scores(acf, fps, bpms)
    best = int(np.argmax(scores * tempo_prior(bpms)))
    bpm0, strength = float(bpms[best]), float(scores[best])
    if strength <= 0:
        return None

    # the exact period: the folded novelty's sharpest, then the fit through the beats' peaks
    period = _refine_period(nov, 60.0 * fps / bpm0)
    t0 = _fold(nov, period)[0]
    t0, period, heights, residuals = _fit_grid(nov, t0, period)
    if len(heights) < 4:
        return None
    # a beat "stands out" when its peak is well above the curve's typical level
    typical = float(np.median(nov)) + float(np.mean(nov))
    clear = float(np.mean((heights > 2.0 * typical) & (np.abs(residuals) < period / 12.0)))
    confidence = float(np.clip(strength, 0.0, 1.0) * clear)
    if not confidence >= MIN_CONFIDENCE:
        return None
    bpm = 60.0 * fps / period
    if not (0.9 * MIN_BPM <= bpm <= 1.1 * MAX_BPM):
        return None
    period_s = period / fps
    first = (t0 / fps - NOVELTY_DELAY_S) % period_s
    if first >= period_s:  # (float rounding)
        first = 0.0
    return BeatGrid(bpm=float(bpm), first_beat_s=float(first), confidence=round(confidence, 4))
