"""Streaming audio features: onsets, pitch, loudness and three bands, block by block.

`FeatureExtractor.process(block)` is the only entry point, live and offline alike
(`analyse_file` feeds a file through it), so what a rendered video sees is what the stage
saw. It is causal: the outputs for a block depend on the samples up to the end of that
block only, so a prefix of a stream gives exactly the outputs of the full stream up to that
point. Analysis runs on a fixed hop (`hop_size` samples), independent of how the stream is
cut into blocks: 17-sample blocks and 256-sample blocks give the same frames.

Per analysis frame (hop 256 at 48 kHz: every 5.3 ms):
- onsets: a 2048-sample spectrum (window scaled with the sample rate; asymmetric, weighted
  toward the newest samples) -> log-frequency filterbank (36 bands per octave: the
  +-1 band max filter then hides a third of a semitone of vibrato, not a semitone step) -> log
  compression -> SuperFlux-style flux (positive difference to the past 27 ms' maximum,
  max-filtered over +-1 band) -> `OnsetPicker` (median threshold, past-maximum test, 50 ms
  refractory, -60 dBFS gate). The same on the low (< 200 Hz), mid and high (> 5 kHz) bands
  alone gives `onset_low`, `onset_mid` and `onset_high` (kick / snare, keys / hats).
- pitch: `CausalYin` comparing the newest 16 ms with the past, periods down to 38 Hz, on a
  lightly low-passed copy of the signal; every dip of its d' scored and tracked over time by
  `PitchTracker` (pYIN-style dip probabilities, a causal forward filter over pitch bins).
- loudness: RMS of the newest ~21 ms in dBFS, and the RMS of the low/mid/high bands of the
  spectrum through attack/release followers.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .beat_tracker import BeatTracker
from .onset import LaggedFlux, OnsetPicker, fast_attack_window, log_filterbank
from .pitch import CausalYin, PitchTracker, dips

SILENCE_DB = -120.0
CHROMA_HZ = (100.0, 5000.0)  # the bands whose pitch classes tell the beat tracker the harmony
STRENGTH_HALF = 10.0     # flux that maps to onset_strength 0.5
_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Features:
    """What the extractor knows at the end of one block.

    `time_s`: end of this block, seconds since the first sample. `onset`: an onset fired in
    this block (at `onset_time_s`, the end of the analysis frame that fired, <= `time_s`).
    `onset_strength`: the spectral flux mapped to 0..1 as flux / (flux + 10), the largest
    value of the frames in this block: 0 in silence and steady sounds, about 0.1 for the
    softest attacks that fire, 0.7..0.9 for drum hits. `onset_low` / `onset_mid` /
    `onset_high`: onsets of the low (kick, bass), mid and high (hats, cymbals) bands
    alone. `pitch_hz`: f0 in Hz, None when unvoiced; `pitch_note` the MIDI note number as a
    float (69.0 = A4 = 440 Hz); `pitch_class` 0..11 (0 = C) of the nearest note;
    `pitch_confidence` 0..1, the tracker's probability that a pitch is present (also
    reported when unvoiced; `pitch_hz` is set while it is over 0.5).
    `rms_db`: RMS level of the newest ~21 ms (at least one hop) in dBFS (20 log10 rms; a
    full-scale sine is -3.01 dB; silence -120). `bands`: (low, mid, high) RMS amplitudes
    (full scale 1.0; a sine of amplitude A gives A / sqrt(2) in its band) after the
    attack/release followers.
    The beat (`beat_tracker.BeatTracker`, fed each frame's fluxes and harmony): `beat` a beat
    is predicted inside this block, at `beat_offset_s` seconds from the block's start (None without a beat);
    `downbeat` that beat starts a bar; `tempo_bpm` None until the tracker's first estimate (it
    may come before the first beat), then its tempo (kept, as the last known, through beatless passages); `beat_phase` 0..1 at the
    block's end (0 on the beat: the next beat is (1 - phase) * 60 / tempo_bpm s away);
    `beat_confidence` 0..1 (falls while coasting; follow the tracker above ~0.5).
    """

    time_s: float
    onset: bool
    onset_strength: float
    pitch_hz: float | None
    pitch_confidence: float
    rms_db: float
    bands: tuple[float, float, float]
    pitch_note: float | None = None
    pitch_class: int | None = None
    onset_low: bool = False
    onset_mid: bool = False
    onset_high: bool = False
    onset_time_s: float | None = None
    beat: bool = False
    downbeat: bool = False
    tempo_bpm: float | None = None
    beat_phase: float = 0.0
    beat_offset_s: float | None = None
    beat_confidence: float = 0.0


class FeatureExtractor:
    """Causal onset, pitch, loudness and band features of a mono stream.

    Parameters (keyword-only after the first two):
    - `sample_rate`: Hz, 8000..192000 (tuned for 22050..96000).
    - `block_size`: the nominal samples per `process` call; picks the default hop. Blocks of
      any other length (0, 17, 100000) are accepted too: samples are buffered internally.
    - `hop_size`: samples per analysis frame; default `block_size` clamped to 64..1024 and
      scaled so that one frame covers 2.5..22 ms.
    - `sensitivity`: 0..1, more onsets when higher (default 0.5); settable live.
    - `silence_db`: no onset and no pitch below this block level (dBFS).
    - `refractory_ms`: the shortest time between two onsets.
    - `fmin_hz`, `fmax_hz`: the pitch search range. `voicing_threshold`: the YIN
      aperiodicity (deepest d') at which a frame counts as even odds voiced; lower reports
      pitch in fewer noisy frames (0.85: 7% of pink-noise rests voiced on the dev split).
    - `band_edges_hz`: (low/mid, mid/high) crossover frequencies.
    - `attack_ms`, `release_ms`: the band followers' time constants.
    - tuning (defaults chosen on the benchmark's dev split, see benchmarks/audio_features.py):
      `onset_delta` and `onset_multiplier`, the threshold's offset (at sensitivity 0.5) and
      median factor; `slow_delta`, the offset of the second detector, on the flux against
      16..53 ms back (onset.LaggedFlux: a note that swells over 30..60 ms, a flute or strings or
      anything in heavy noise, shows its whole rise there; an onset fires when either fires);
      `lag_ms`, how far back the flux's reference reaches; `window_fall`,
      the share of the onset window after its peak; `log_mul`, the log compression's gain
      (log10(1 + log_mul * magnitude), a full-scale sine's peak = 1); `yin_window_ms`, see
      `CausalYin`; `pitch_margin`, `pitch_jumps_per_s`, see `PitchTracker` (`margin`,
      `jumps_per_s`); `bands_per_octave` of the onset
      filterbank (12 in SuperFlux; 36 here found legato semitone steps: flute F 0.73 -> 0.79
      on the dev split).

    Not thread-safe: one thread (the features worker) owns an extractor; `sensitivity` may
    be assigned from another thread (a float store).
    """

    def __init__(self, sample_rate: float, block_size: int, *, hop_size: int | None = None,
                 sensitivity: float = 0.5, silence_db: float = -60.0,
                 refractory_ms: float = 50.0, fmin_hz: float = 38.0, fmax_hz: float = 2000.0,
                 voicing_threshold: float = 0.85,
                 band_edges_hz: tuple[float, float] = (200.0, 4000.0),
                 attack_ms: float = 5.0, release_ms: float = 150.0,
                 onset_delta: float = 1.0, slow_delta: float = 1.2, onset_multiplier: float = 2.0, lag_ms: float = 27.0,
                 window_fall: float = 0.15, log_mul: float = 1000.0,
                 yin_window_ms: float = 16.0, pitch_margin: float = 0.1,
                 pitch_jumps_per_s: float = 60.0, bands_per_octave: int = 36):
        sample_rate = float(sample_rate)
        if not (math.isfinite(sample_rate) and 8000 <= sample_rate <= 192000):
            raise ValueError(f"sample_rate must be in range 8000..192000 Hz, got {sample_rate}")
        if int(block_size) != block_size or block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        self.sample_rate = sample_rate
        self.block_size = int(block_size)
        if hop_size is None:
            hop_size = min(max(self.block_size, 64), 1024)
            hop_size = min(max(hop_size, round(0.0025 * sample_rate)), round(0.022 * sample_rate))
        if int(hop_size) != hop_size or hop_size < 1:
            raise ValueError(f"hop_size must be a positive integer, got {hop_size!r}")
        self.hop_size = int(hop_size)
        self.silence_db = float(silence_db)
        self._delta0 = float(onset_delta)

        # spectrum: 2048 points at 44.1/48 kHz, scaled with the rate
        self.n_fft = 1 << round(math.log2(sample_rate * 2048 / 48000))
        self._window = fast_attack_window(self.n_fft, fall=max(1, round(window_fall * self.n_fft)))
        self._spec_scale = 2.0 / self._window.sum()            # a full-scale sine's peak -> 1
        fb, centres = log_filterbank(n_fft=self.n_fft, sample_rate=sample_rate,
                                     bands_per_octave=bands_per_octave)
        self._fb = fb.T.astype(np.float64)                      # (n_bins, n_bands)
        self._low_bands = centres < 200.0
        self._high_bands = centres > 5000.0
        self._mid_bands = ~(self._low_bands | self._high_bands)
        # pitch classes of the bands in CHROMA_HZ (the beat tracker's bar lines: chords
        # change there): a band's log magnitude counts for the nearest note's class
        pitched = (centres >= CHROMA_HZ[0]) & (centres <= CHROMA_HZ[1])
        classes = np.round(12.0 * np.log2(np.maximum(centres, 1.0) / 440.0) + 69.0).astype(int) % 12
        self._chroma_map = np.zeros((centres.size, 12))
        self._chroma_map[np.flatnonzero(pitched), classes[pitched]] = 1.0
        self._log_mul = float(log_mul)
        bins_hz = np.fft.rfftfreq(self.n_fft, 1.0 / sample_rate)
        lo, hi = band_edges_hz
        self._band_masks = (bins_hz < lo, (bins_hz >= lo) & (bins_hz < hi), bins_hz >= hi)
        self._band_scale = 2.0 / (self.n_fft * float(np.sum(self._window ** 2)))

        frame_s = self.hop_size / sample_rate
        self._lag = max(1, round(lag_ms / 1000.0 / frame_s))
        n_bands = fb.shape[0]
        self._past = np.zeros((self._lag, n_bands))             # ring of past log spectra
        self._past_pos = 0

        def picker(delta_scale: float) -> OnsetPicker:
            return OnsetPicker(median_frames=max(1, round(0.1 / frame_s)),
                               max_frames=max(1, round(0.03 / frame_s)),
                               refractory_frames=max(1, round(refractory_ms / 1000.0 / frame_s)),
                               multiplier=onset_multiplier, delta=self._delta0 * delta_scale)

        self._pickers = tuple(picker(1.0 if m is None else max(0.15, m.sum() / n_bands))
                              for m in (None, self._low_bands, self._mid_bands, self._high_bands))
        # soft attacks: flux against the spectrum 16..53 ms ago, picked on its own
        self._slow = LaggedFlux(n_bands, near=max(1, round(0.016 / frame_s)),
                                far=max(2, round(0.053 / frame_s)))
        self._pickers += (picker(slow_delta / self._delta0),)
        self._refractory = self._pickers[0].refractory_frames
        self._base_deltas = tuple(p.delta for p in self._pickers)
        self.sensitivity = sensitivity

        self._yin = CausalYin(sample_rate=sample_rate, fmin_hz=fmin_hz, fmax_hz=fmax_hz,
                              window=round(yin_window_ms / 1000.0 * sample_rate))
        self._tracker = PitchTracker(sample_rate=sample_rate, fmin_hz=fmin_hz, fmax_hz=fmax_hz,
                                     frame_s=frame_s, margin=pitch_margin,
                                     voicing_threshold=voicing_threshold,
                                     jumps_per_s=pitch_jumps_per_s)
        self._rms_len = max(self.hop_size, self.n_fft // 2)    # ~21 ms: steady on a bass note
        # YIN reads a box-smoothed copy (4 taps at 48 kHz: -3 dB near 5 kHz): the hiss above
        # the harmonics that matter only blurs d'; +0.05 RPA at 6 dB SNR, clean unchanged
        taps = max(1, round(4 * sample_rate / 48000))
        self._smooth = np.full(taps, 1.0 / taps)
        self._buf = np.zeros(max(self.n_fft, self._yin.needed + taps), dtype=np.float64)

        self._beats = BeatTracker(1.0 / frame_s)
        self._flux = (0.0, 0.0, 0.0, 0.0)  # the newest frame's fluxes (all, low, high, broadband) ...
        self._chroma = np.zeros(12)  # ... and pitch classes, for the beat tracker

        self._att = 1.0 - math.exp(-frame_s / (attack_ms / 1000.0))
        self._rel = 1.0 - math.exp(-frame_s / (release_ms / 1000.0))
        self.reset()

    # -- live controls ----------------------------------------------------------------------

    @property
    def sensitivity(self) -> float:
        """Onset sensitivity 0..1: each 0.25 step above 0.5 halves the threshold's offset."""
        return self._sensitivity

    @sensitivity.setter
    def sensitivity(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"sensitivity must be in range 0..1, got {value}")
        self._sensitivity = value
        scale = 16.0 ** (0.5 - value)
        for p, base in zip(self._pickers, self._base_deltas):
            p.delta = base * scale

    # -- state ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything heard; the next block starts at time 0."""
        self._buf[:] = 0.0
        self._past[:] = 0.0
        self._samples = 0
        self._pending = 0
        self.sanitised_blocks = 0        # blocks that had NaN/inf or > 4.0 samples
        for p in self._pickers:
            p.reset()
        self._slow.reset()
        self._since_onset = 1 << 30
        self._bands = np.zeros(3)
        self._rms_db = SILENCE_DB
        self._pitch: tuple[float | None, float] = (None, 0.0)
        self._strength = 0.0
        self._tracker.reset()
        self._beats.reset()

    # -- processing -------------------------------------------------------------------------

    def process(self, block: np.ndarray) -> Features:
        """Analyse the next block of samples, shape (n,) float (any n >= 0; 2-D input with
        one channel is flattened). NaN/inf become 0 and samples are clipped to +-4.0
        (counted in `sanitised_blocks`); nothing raises on bad values."""
        x = np.asarray(block, dtype=np.float64).reshape(-1)
        if x.size and not (np.isfinite(x).all() and np.abs(x).max() <= 4.0):
            x = np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), -4.0, 4.0)
            self.sanitised_blocks += 1
        onset = low = mid = high = False
        strength = -1.0
        onset_time = None
        t0 = self._samples / self.sample_rate
        pos = 0
        while pos < x.size:
            take = min(x.size - pos, self.hop_size - self._pending)
            buf = self._buf
            buf[:-take] = buf[take:]
            buf[-take:] = x[pos:pos + take]
            pos += take
            self._pending += take
            self._samples += take
            if self._pending == self.hop_size:
                self._pending = 0
                f_on, f_low, f_mid, f_high = self._frame()
                self._beats.step(*self._flux, chroma=self._chroma)
                strength = max(strength, self._strength)
                if f_on:
                    onset = True
                    onset_time = self._samples / self.sample_rate
                low |= f_low
                mid |= f_mid
                high |= f_high
        if strength < 0.0:                                           # no frame ended here
            strength = self._strength
        f0, conf = self._pitch
        note = pclass = None
        if f0 is not None:
            note = 69.0 + 12.0 * math.log2(f0 / 440.0)
            pclass = int(round(note)) % 12
        b = self._bands
        t1 = self._samples / self.sample_rate
        beats = self._beats
        beat_offset, downbeat = beats.advance(t0, t1) if x.size else (None, False)
        return Features(time_s=t1, onset=onset,
                        onset_strength=strength, pitch_hz=f0, pitch_confidence=conf,
                        rms_db=self._rms_db, bands=(float(b[0]), float(b[1]), float(b[2])),
                        pitch_note=note, pitch_class=pclass, onset_low=low, onset_mid=mid,
                        onset_high=high,
                        onset_time_s=onset_time, beat=beat_offset is not None,
                        downbeat=downbeat, tempo_bpm=beats.tempo_bpm, beat_phase=beats.phase(t1),
                        beat_offset_s=beat_offset, beat_confidence=beats.confidence)

    def _frame(self) -> tuple[bool, bool, bool, bool]:
        """One analysis frame on the newest samples; updates the latest values."""
        buf = self._buf
        recent = buf[-self._rms_len:]
        ms = float(np.dot(recent, recent)) / self._rms_len
        self._rms_db = max(SILENCE_DB, 10.0 * math.log10(ms + _EPS))
        gate = self._rms_db > self.silence_db

        frame = buf[-self.n_fft:] * self._window
        mag = np.abs(np.fft.rfft(frame))                            # (n_bins,)
        power = mag * mag
        levels = [0.0, 0.0, 0.0]
        for i, mask in enumerate(self._band_masks):
            level = levels[i] = math.sqrt(float(power[mask].sum()) * self._band_scale)
            k = self._att if level > self._bands[i] else self._rel
            self._bands[i] += (level - self._bands[i]) * k

        spec = np.log10(1.0 + self._log_mul * self._spec_scale * (mag @ self._fb))   # (n_bands,)
        self._chroma = spec @ self._chroma_map
        # reference: each band's maximum over the past `lag` frames (SuperFlux takes the one
        # frame `lag` ago; the maximum also absorbs the frame-to-frame ripple a periodic low
        # tone leaves in a window with a short fall), then max-filtered over +-1 band
        ref = self._past.max(axis=0)
        ref_max = ref.copy()
        np.maximum(ref_max[1:], ref[:-1], out=ref_max[1:])          # max filter over +-1 band
        np.maximum(ref_max[:-1], ref[1:], out=ref_max[:-1])
        diff = np.maximum(spec - ref_max, 0.0)
        self._past[self._past_pos] = spec
        self._past_pos = (self._past_pos + 1) % self._lag
        odf = float(diff.sum())
        odf_low = float(diff[self._low_bands].sum())
        odf_mid = float(diff[self._mid_bands].sum())
        odf_high = float(diff[self._high_bands].sum())
        self._strength = odf / (odf + STRENGTH_HALF)
        # the beat tracker's input; broadband: the median rise of the mid and the high bands (a
        # hit raises most bands, a tone a few), times their number, to compare with the sums
        mid_diff, high_diff = diff[self._mid_bands], diff[self._high_bands]
        broad = 0.0
        for part in (mid_diff, high_diff):
            if part.size:
                broad += part.size * float(np.partition(part, part.size // 2)[part.size // 2])
        self._flux = (odf, odf_low, odf_high, broad)
        p_all, p_low, p_mid, p_high, p_slow = self._pickers
        fast = p_all.step(odf, gate_open=gate)
        slow = p_slow.step(float(self._slow.step(spec).sum()), gate_open=gate)
        fired = (fast or slow) and self._since_onset >= self._refractory
        self._since_onset = 0 if fired else self._since_onset + 1
        # each band's own level gates it: a loud kick's spectral leakage is no hat
        floor = 10.0 ** (self.silence_db / 20.0)
        fired_low = p_low.step(odf_low, gate_open=gate and levels[0] > floor)
        fired_mid = p_mid.step(odf_mid, gate_open=gate and levels[1] > floor)
        fired_high = p_high.step(odf_high, gate_open=gate and levels[2] > floor)

        yin = self._yin
        win = buf[-yin.window:]
        if 10.0 * math.log10(float(np.dot(win, win)) / win.size + _EPS) > self.silence_db:
            yin.difference(np.convolve(buf[-(yin.needed + self._smooth.size - 1):], self._smooth, "valid"))
            f0, confidence = self._tracker.update(*dips(yin.cmnd, yin.tau_min, yin.tau_max, diff=yin.diff))
        else:                                                       # silence: evidence of no pitch
            f0, confidence = self._tracker.update(np.zeros(0), np.zeros(0))
            f0 = None
        self._pitch = (f0, confidence)
        # plain bools: a level compared with numpy is numpy's bool, which JSON (sessions) refuses
        return bool(fired), bool(fired_low), bool(fired_mid), bool(fired_high)


def analyse_file(path: str | os.PathLike, *, block_size: int = 256,
                 sample_rate: float | None = None, **extractor_kwargs) -> list[Features]:
    """Run a `FeatureExtractor` over an audio file, block by block, as live.

    Reads what `audiofile.read_audio` reads (libsndfile, else FFmpeg); channels are averaged to mono. The
    extractor runs at the file's own rate unless `sample_rate` is given or the file's rate
    is outside 22050..96000 (then 48000): the signal is resampled with
    `scipy.signal.resample_poly` (polyphase FIR, Kaiser window, exact rational ratio).
    Returns one `Features` per block (the last block may be short). Deterministic.
    """
    from .file import read_audio

    data, rate = read_audio(path, sample_rate=sample_rate, dtype="float64")
    x = data.mean(axis=1)                                           # (n,) mono
    fx = FeatureExtractor(rate, block_size, **extractor_kwargs)
    x32 = x.astype(np.float32)
    return [fx.process(x32[i:i + block_size]) for i in range(0, x32.size, block_size)]
