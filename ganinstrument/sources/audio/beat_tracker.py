"""Live, causal beat tracking on the extractor's onset strength (issue 15, part 2).

`BeatTracker.step(flux, low_flux, high_flux, broad_flux)` is called once per analysis frame of
`FeatureExtractor` (hop 256 at 48 kHz: 187.5 frames/s) with that frame's spectral flux (all
bands), the flux of its low bands (< 200 Hz: kick, bass) and high bands, and its broadband flux; `BeatTracker.advance(t0, t1)` is called once per block and
says whether the predicted beat falls in [t0, t1) seconds (and where). Nothing looks ahead: a
frame's decisions use frames up to it only, so a prefix of a stream gives the same outputs.

The method (the ideas from the papers below; the code written here, numpy only):
1. Novelty, two of them, each minus its ~1 s running mean, half-wave rectified and divided by
   a slow running level (so loudness does not matter). The tempo's: half the flux, plus the
   *broadband* flux (the median rise over the mid bands times their number, the same over the
   high bands: drums and attacks, not tones), plus LOW_WEIGHT x the low-band flux, clipped at
   NOV_CLIP (so every onset counts, loud or not). The phase's: the broadband flux (with a
   little of the flux, for music without drums), hardly clipped, so the loudest hits, kick
   and snare, decide where the beat is: on syncopated music the off-beats have more onsets
   (open hats, bass and stabs on the "&"s) and counting onsets locks to them.
2. Tempo: a running autocorrelation of the novelty (at half the frame rate, exponentially
   forgetting with a TEMPO_MEMORY_S time constant) read as a comb: for each tempo in
   60..200 BPM the mean of its peaks at 1, 2, 3 and 4 beats, times a log-normal prior (centre
   PRIOR_BPM, PRIOR_OCTAVES wide) that settles octave ambiguity as `beatgrid` does. The tempo in
   use changes only when another wins for SWITCH_S in a row (octave relatives: clearly, by
   OCTAVE_MARGIN), so one odd bar neither doubles nor halves it. Two memories: the long one
   (TEMPO_MEMORY_S) decides the octave; the short one (SHORT_MEMORY_S) is followed within NEAR of
   the tempo in use (ramps) and hears a step to another tempo first (100 -> 140 BPM: the new
   tempo 2.5 s after the step instead of 4.3 s). The tempo is reported from its first
   estimate on; the beats, once the phase is found (below).
   The octave, last, by the beat's subdivisions: each beat, the tempo novelty's peaks near
   0, 1/4, 1/2 and 3/4 of the way to the next beat go into a decaying profile. Onsets on the
   quarters (QUARTER_SHARE of those on the beat and its half) mean the beat is counted too
   slow, and it is doubled (a 174 BPM break heard at 87: with the hats lost in noise the
   snares make a half-time backbeat, and the kick on the "&" of 3 lands on its quarter);
   onsets on the half (OFFBEAT_SHARE of the beat's) keep the comb from halving the tempo (the
   half tempo would have busy quarters). Music at a slow tempo with sixteenth notes on the
   kick or hats is doubled by this too: the octave is a choice; this one is the drummer's.
3. Phase: every few frames, the recent novelty is cross-correlated with a decaying pulse train
   of the tempo's period at every phase (the last beat's age); the best phase predicts the
   next beat. A phase-locked loop moves the running prediction toward it (a jump when the
   prediction has been far off for a while), and nudges the period, which follows ramps.
4. Beats are predicted: the tracker always holds the next beat's time; a block that contains
   it reports it. Beats are never closer than 0.6 periods.
5. Confidence: the comb's strength times how much the pulse train's best phase stands out,
   smoothed. Below MIN_CONFIDENCE, no tempo is reported until there has been one; once locked,
   a beatless passage coasts on the last tempo and phase for COAST_S, with the confidence
   falling, and then beats stop (the tempo is kept, as the last known).
6. Bars: chords change on the bar line. Each beat's pitch-class profile (the log spectrum
   from 100 Hz to 5 kHz folded onto 12 classes, summed over the beat) is kept; once the beats
   after a beat are in, how much the harmony changes there (1 - cosine of the profiles of the
   HARMONY_SPAN beats before and after it: two in 4/4, one in 3/4) is added into a decaying
   histogram of beat position modulo 3 and modulo 4; the meter whose histogram has the
   clearest peak wins, and its peak is the downbeat.

References: D. P. W. Ellis, "Beat tracking by dynamic programming", JNMR 36(1), 2007 (tempo
prior); G. Percival, G. Tzanetakis, "Streamlined tempo estimation based on autocorrelation and
cross-correlation with pulses", IEEE/ACM TASLP 22(12), 2014 (comb and pulse trains);
A. M. Stark, M. E. P. Davies, M. D. Plumbley, "Real-time beat-synchronous analysis of musical
audio", DAFx 2009 (causal prediction of the next beat).
"""

from __future__ import annotations

import math

import numpy as np

MIN_BPM, MAX_BPM = 60.0, 200.0
PRIOR_BPM = 120.0
PRIOR_OCTAVES = 1.0
LOW_WEIGHT = 2.0
HIGH_WEIGHT = 0.3
TEMPO_MEMORY_S = 4.0
SWITCH_S = 0.8
OCTAVE_MARGIN = 1.15
TEMPO_MARGIN = 1.05    # another tempo (not an octave) must score this much more to take over
MIN_CONFIDENCE = 0.25
COAST_S = 12.0
DELAY_S = 0.0145       # novelty peak minus onset, compensated in the predicted beat times
PHASE_WINDOW_S = 4.0
NOISE_FLUX = 1.0       # flux above its running mean that is still ripple (a drone's beating, hiss)
NOV_CLIP = 20.0        # the tempo's novelty over its level is taken up to this (each onset counts)
PHASE_CLIP = 1000.0    # the phase's, hardly clipped (the loudest hits count most: kick and snare)
TEMPO_FLUX_SHARE = 0.5  # the tempo's novelty: this much of the flux, plus the broadband flux
PHASE_FLUX_SHARE = 0.1  # the phase's: the broadband flux, plus this much of the flux (tones alone)
MIN_LEVEL = 0.3        # the novelty's level is never taken as lower than this
COMB_WEIGHTS = np.array([2.0, 1.0, 0.75, 0.75])   # 1..4 beats: one beat counts most (174, not 87)
PERIOD_GAIN = 0.006     # the loop nudges the period by this share of each phase error (ramps)
ACQUIRE_S = 0.3        # confident this long before the first beat
HARMONY_SPAN = {3: 1, 4: 2}  # beats each side of a beat whose harmony is compared: for the meter,
POSITION_SPAN = {3: 3, 4: 2}  # and for where its bar line is
SPAN = max(*HARMONY_SPAN.values(), *POSITION_SPAN.values())
BAR_CONFIDENCE = 0.05  # the bar line's share of the histogram above the other beats' (0..1)
METER_SWITCH = {(4, 3): 1.5, (3, 4): 1.1}  # how much clearer another meter's peak must be (4/4 is the norm)
SHORT_MEMORY_S = 1.5   # the tempo's short memory: it follows ramps and hears steps first
SHORT_MIN_STRENGTH = 0.15  # the short memory's comb must peak this high to be heard (as the first tempo)
NEAR = math.log(1.06)  # the short memory's tempo within 6 % of the current one is followed
TEMPO_PULL = 0.1       # per 50 ms, the loop's period is pulled this much toward the tempo estimate near it
BAR_DECAY = 0.97       # the bar histograms forget, per beat
SUBDIVISION_DECAY = 0.9  # the beat's subdivision profile forgets, per beat
SUBDIVISION_MIN = 4    # beats at a tempo before its subdivisions are heard
QUARTER_SHARE = 0.15   # onsets on a beat's quarters (the 1/4 and 3/4 points) over those on its beat and half:
                       # above this the beat is counted too slow (a 174 break heard at 87) and doubled
OFFBEAT_SHARE = 0.08   # onsets on a beat's half over those on the beat above this keep a tempo from being halved


class _Novelty:
    """A flux minus its ~1 s running mean, half-wave rectified, over its ~4 s running level (so
    loudness does not matter; never under MIN_LEVEL), clipped at `clip`."""

    __slots__ = ("mean", "level", "mean_a", "level_a", "clip")

    def __init__(self, fps: float, clip: float):
        self.mean = self.level = 0.0
        self.mean_a = 1.0 - math.exp(-1.0 / (1.0 * fps))
        self.level_a = 1.0 - math.exp(-1.0 / (4.0 * fps))
        self.clip = clip

    def step(self, raw: float) -> float:
        self.mean += (raw - self.mean) * self.mean_a
        nov = max(0.0, raw - self.mean - NOISE_FLUX)
        self.level += (nov - self.level) * self.level_a
        return min(nov / max(self.level, MIN_LEVEL), self.clip)


def _clarity(h: np.ndarray) -> float:
    """How much a bar histogram's peak stands out: (peak - the others' mean) / total, 0..1."""
    total = float(h.sum())
    return (float(h.max()) - (total - float(h.max())) / (h.size - 1)) / total if total > 0 else 0.0


def _octave(ratio: float) -> bool:
    """Whether two periods are octave relatives (2:1, 3:2 and back): the same music counted
    another way, not another tempo."""
    return any(abs(ratio * k - 1.0) < 0.05 for k in (2.0, 0.5, 1.5, 2.0 / 3.0))


class BeatTracker:
    """Causal beat, tempo and bar tracker fed one onset-strength value per analysis frame."""

    def __init__(self, frame_rate: float, *, delay_s: float = DELAY_S, prior_bpm: float = PRIOR_BPM,
                 low_weight: float = LOW_WEIGHT, min_confidence: float = MIN_CONFIDENCE):
        self.fps = float(frame_rate)
        self.delay = float(delay_s) * self.fps                     # frames
        self.low_weight = float(low_weight)
        self.min_confidence = float(min_confidence)
        fps = self.fps
        # tempo: autocorrelation at a decimated rate
        self._dec = max(1, int(round(fps / 100.0)))
        fd = fps / self._dec
        self._fd = fd
        self._max_lag = int(math.ceil(4 * 60.0 * fd / MIN_BPM)) + 3
        self._bpms = MIN_BPM * (MAX_BPM / MIN_BPM) ** np.linspace(0.0, 1.0, 240)
        self._prior = np.exp(-0.5 * (np.log2(self._bpms / prior_bpm) / PRIOR_OCTAVES) ** 2)
        lags = np.stack([k * 60.0 * fd / self._bpms for k in (1, 2, 3, 4)])      # (4, n)
        self._lag_i = np.floor(lags).astype(int)
        self._lag_w = lags - self._lag_i
        self._acf_decay = math.exp(-1.0 / (TEMPO_MEMORY_S * fd))
        self._short_decay = math.exp(-1.0 / (SHORT_MEMORY_S * fd))
        self._lags = np.arange(self._max_lag + 1)
        self._log_bpms = np.log(self._bpms)
        self._tempo_every = max(1, int(round(0.05 * fd)))          # tempo estimate every 50 ms
        # phase: the full-rate novelty's recent past
        self._hist_len = int(math.ceil(PHASE_WINDOW_S * fps)) + int(math.ceil(60.0 * fps / MIN_BPM)) + 4
        self._phase_every = max(1, int(round(0.01 * fps)))         # every ~10 ms
        self._conf_a = 1.0 - math.exp(-self._phase_every / (0.25 * fps))
        self.reset()

    def reset(self) -> None:
        self._n = 0                                                # frames seen
        self._tempo_novelty = _Novelty(self.fps, NOV_CLIP)
        self._phase_novelty = _Novelty(self.fps, PHASE_CLIP)
        self._hist = np.zeros(self._hist_len)                      # ring, newest at _pos - 1
        self._thist = np.zeros(self._hist_len)                     # the tempo's novelty, same ring
        self._subdiv = np.zeros(4)                                 # onsets at 0, 1/4, 1/2, 3/4 of a beat
        self._subdiv_beats = 0
        self._prev_beat_at: float | None = None
        self._pos = 0
        self._dsum = 0.0
        self._dhist = np.zeros(self._max_lag + 1)                  # ring of decimated novelty
        self._dpos = 0
        self._dcount = 0
        self._acf = np.zeros(self._max_lag + 1)
        self._acf_short = np.zeros(self._max_lag + 1)
        self._period: float | None = None                         # frames per beat
        self._period_since = 0
        self._cand: float | None = None
        self._cand_frames = 0
        self._strength = 0.0
        self._conf = 0.0
        self._next: float | None = None                           # the next beat, frames
        self._last_emit: float | None = None
        self._far = 0
        self._acquire = 0
        self._evidence_at = 0                                      # frame of the last confident phase
        self._beat_index = 0
        self._pending_bar: tuple[float, int] | None = None
        self._chroma_acc = np.zeros(12)
        self._beat_chroma: list[tuple[int, np.ndarray]] = []     # (beat index, its harmony), the last few
        self._bar_hist = {3: np.zeros(3), 4: np.zeros(4)}           # which meter
        self._bar_pos = {3: np.zeros(3), 4: np.zeros(4)}            # where its bar line is
        self._meter = 4
        self._down_pos = 0
        self._bar_sure = False  # a downbeat is said only once its bar line stands out (BAR_CONFIDENCE)
        self._pt_key = None
        self._pt_idx = None
        self._pt_w = None

    # -- per analysis frame -----------------------------------------------------------------

    def step(self, flux: float, low_flux: float = 0.0, high_flux: float = 0.0, broad_flux: float | None = None,
             chroma: np.ndarray | None = None) -> None:
        if chroma is not None and chroma.shape == (12,) and np.isfinite(chroma).all():
            self._chroma_acc += chroma  # (this beat's harmony, for the bar lines)
        broad = None if broad_flux is None or not math.isfinite(broad_flux) else max(0.0, float(broad_flux))
        flux = float(flux) if math.isfinite(flux) else 0.0
        raw = flux if broad is None else TEMPO_FLUX_SHARE * flux + broad
        raw += self.low_weight * float(low_flux) - (1.0 - HIGH_WEIGHT) * float(high_flux)
        if not math.isfinite(raw) or raw < 0.0:
            raw = 0.0
        nov = self._tempo_novelty.step(raw)
        self._thist[self._pos] = nov
        self._hist[self._pos] = self._phase_novelty.step(
            raw if broad is None else broad + PHASE_FLUX_SHARE * max(0.0, flux))
        self._pos = (self._pos + 1) % self._hist_len
        self._n += 1
        self._dsum += nov
        if self._n % self._dec == 0:
            self._decimated(self._dsum)
            self._dsum = 0.0
        if self._period is not None and self._n % self._phase_every == 0:
            self._phase()
        self._bar_step()

    def _decimated(self, x: float) -> None:
        h = self._dhist
        h[self._dpos] = x
        # h[(dpos - lag) % len] for lag = 0..max_lag
        idx = (self._dpos - np.arange(self._max_lag + 1)) % h.size
        prod = x * h[idx]
        self._acf *= self._acf_decay
        self._acf += prod
        self._acf_short *= self._short_decay
        self._acf_short += prod
        self._dpos = (self._dpos + 1) % h.size
        self._dcount += 1
        if self._dcount % self._tempo_every == 0 and self._dcount * self._dec > 0.8 * self.fps:
            self._tempo()

    def _comb(self, acf: np.ndarray, decay: float) -> np.ndarray | None:
        """The comb (mean of the peaks at 1..4 beats) of a running autocorrelation, per tempo of
        `_bpms`; None while it is empty."""
        if acf[0] <= 1e-9:
            return None
        # bias correction: lag L has summed over c - L updates of the c so far (exponentially
        # weighted); lags not yet covered for a second are unknown and left out of the comb
        c = self._dcount
        lags = self._lags
        known = c - lags > 0.4 * self._fd
        norm = 1.0 - decay ** np.maximum(c - lags, 0)
        r = np.where(known, acf / np.maximum(norm, 1e-9), 0.0)
        r = r / r[0]
        r = r - np.median(r[1:][known[1:]])
        rm = r.copy()                                               # +-1 lag tolerance
        np.maximum(rm[1:], r[:-1], out=rm[1:])
        np.maximum(rm[:-1], r[1:], out=rm[:-1])
        i, w = self._lag_i, self._lag_w
        vals = rm[i] * (1.0 - w) + rm[np.minimum(i + 1, rm.size - 1)] * w
        ok = known[np.minimum(i + 1, rm.size - 1)]
        kw = COMB_WEIGHTS[:, None] * ok
        comb = (vals * kw).sum(axis=0) / np.maximum(kw.sum(axis=0), 1e-9)
        return np.where(ok[0] & ok[1], comb, 0.0)

    def _peak_period(self, score: np.ndarray, best: int) -> float:
        """The period (frames) at a peak of a score on the log-tempo grid, refined by a parabola."""
        lb = math.log(self._bpms[best])
        if 0 < best < score.size - 1:
            a, b, c = score[best - 1], score[best], score[best + 1]
            den = a - 2 * b + c
            if den < 0:
                lb += 0.5 * (a - c) / den * math.log(self._bpms[1] / self._bpms[0])
        return 60.0 * self.fps / math.exp(lb)

    def _tempo(self) -> None:
        comb = self._comb(self._acf, self._acf_decay)
        if comb is None:
            self._strength = 0.0
            return
        score = comb * self._prior
        best = int(np.argmax(score))
        self._strength = strength = float(max(0.0, comb[best]))
        if score[best] <= 0.0:
            return
        period = self._peak_period(score, best)
        if self._period is None:
            if strength > 0.15:
                self._set_period(period)
            return
        if self._quarters_busy():
            self._double()
            return
        # the short memory follows: the tempo near the current one (ramps), and other tempos (steps)
        short = self._comb(self._acf_short, self._short_decay)
        if short is not None and float(short.max()) < SHORT_MIN_STRENGTH:
            short = None  # (a beatless stretch: nothing to follow, and no step to hear)
        log_cur = math.log(60.0 * self.fps / self._period)
        if short is not None:
            s_score = short * self._prior
            near = np.abs(self._log_bpms - log_cur) < NEAR
            j = int(np.flatnonzero(near)[np.argmax(s_score[near])]) if near.any() else -1
            if j >= 0 and s_score[j] > 0.0:
                self._period += TEMPO_PULL * (self._peak_period(s_score, j) - self._period)
        ratio = period / self._period
        octave = _octave(ratio)
        if not octave and short is not None:                       # a step: heard first in the short memory
            s_best = int(np.argmax(s_score))
            s_ratio = self._peak_period(s_score, s_best) / self._period
            if abs(s_ratio - 1.0) >= 0.04 and not _octave(s_ratio):
                score, best, period, ratio = s_score, s_best, s_ratio * self._period, s_ratio
            else:
                self._cand, self._cand_frames = None, 0
                return
        if abs(ratio - 1.0) < 0.04 or (abs(ratio - 2.0) < 0.1 and self._offbeats_busy()):
            self._cand, self._cand_frames = None, 0
            return
        cur_score = float(np.interp(log_cur, self._log_bpms, score))
        margin = OCTAVE_MARGIN if octave else TEMPO_MARGIN
        if score[best] < margin * cur_score:
            self._cand, self._cand_frames = None, 0
            return
        if self._cand is not None and abs(period / self._cand - 1.0) < 0.04:
            self._cand_frames += self._tempo_every * self._dec
        else:
            self._cand, self._cand_frames = period, 0
        young = self._n - self._period_since < 3.0 * self.fps       # a fresh estimate yields sooner
        if self._cand_frames >= (0.25 if young else SWITCH_S) * self.fps:
            self._set_period(period)
            self._cand, self._cand_frames = None, 0

    def _set_period(self, period: float) -> None:
        self._period = period
        self._period_since = self._n
        self._far = 10 ** 6                                          # re-acquire the phase
        self._subdiv[:] = 0.0
        self._subdiv_beats = 0
        self._prev_beat_at = None

    def _quarters_busy(self) -> bool:
        """Whether the beat's quarters carry onsets (QUARTER_SHARE of its beat and half), with
        twice the tempo in range: the beat is counted too slow."""
        h = self._subdiv
        return (self._subdivision_heard() and 2.0 * 60.0 * self.fps / self._period <= MAX_BPM
                and h[1] + h[3] > QUARTER_SHARE * (h[0] + h[2]))

    def _offbeats_busy(self) -> bool:
        """Whether the beat's half carries onsets (OFFBEAT_SHARE of the beat's): half the tempo
        would have busy quarters, so it is not taken."""
        h = self._subdiv
        return self._subdiv_beats >= 2 and h[2] > OFFBEAT_SHARE * h[0]

    def _double(self) -> None:
        """Twice the tempo: the next beat stays a beat, the beats' halves become beats, and the
        subdivision profile is read on the new beats (their quarters not heard yet)."""
        h = self._subdiv
        self._period *= 0.5
        self._period_since = self._n
        self._subdiv = np.array([0.5 * (h[0] + h[2]), 0.0, 0.5 * (h[1] + h[3]), 0.0])
        self._prev_beat_at = None
        self._cand, self._cand_frames = None, 0

    def _pulse_indices(self, period: float):
        key = round(period * 4.0)
        if key != self._pt_key:
            p = key / 4.0
            n_ph = int(math.ceil(p))
            k_max = max(2, min(12, int((PHASE_WINDOW_S * self.fps) // p)))
            ages = np.arange(n_ph)[:, None] + p * np.arange(k_max)[None, :]
            self._pt_idx = np.round(ages).astype(int)                       # (n_ph, K)
            self._pt_w = 0.8 ** np.arange(k_max)
            self._pt_key = key
        return self._pt_idx, self._pt_w

    def _phase(self) -> None:
        period = self._period
        idx, w = self._pulse_indices(period)
        hist = self._hist
        ring = (self._pos - 1 - idx) % hist.size
        vals = hist[ring]                                                   # (n_ph, K)
        # a little temporal smoothing: neighbours of each pulse count half
        sc = vals @ w
        sc = sc + 0.5 * (np.roll(sc, 1) + np.roll(sc, -1))
        j = int(np.argmax(sc))
        mean = float(sc.mean())
        if mean <= 1e-9:
            salience = 0.0
        else:
            salience = max(0.0, min(1.0, (float(sc[j]) / mean - 1.0) / 2.0))
        # parabolic refinement of the phase
        a, b, c = sc[j - 1], sc[j], sc[(j + 1) % sc.size]
        den = a - 2 * b + c
        off = 0.5 * (a - c) / den if den < 0 else 0.0
        age = j + max(-0.5, min(0.5, off))
        conf = min(1.0, 2.0 * self._strength) * salience
        self._conf += (conf - self._conf) * self._conf_a
        now = float(self._n)
        measured = now - age + period - self.delay                          # next beat, frames
        if self._conf >= self.min_confidence:
            self._evidence_at = self._n
        if self._next is None:
            self._acquire = self._acquire + self._phase_every if (
                self._conf >= self.min_confidence and self._strength >= 0.2) else 0
            if self._acquire >= ACQUIRE_S * self.fps:
                while measured <= now - self.delay:
                    measured += period
                self._next = measured
                self._far = 0
            return
        if conf < 0.5 * self.min_confidence:
            return                                                          # coast: nothing to follow
        e = (measured - self._next + 0.5 * period) % period - 0.5 * period
        if abs(e) > period / 8.0:
            self._far += self._phase_every
        else:
            self._far = 0
        if self._far > 0.75 * self.fps:                                    # far off for 0.75 s: jump
            target = self._next + e
            self._far = 0
        else:
            g = 0.08 if abs(e) <= period / 8.0 else 0.02
            target = self._next + g * e
            self._period += PERIOD_GAIN * e
            self._period = min(max(self._period, 60.0 * self.fps / (MAX_BPM * 1.05)),
                               60.0 * self.fps / (MIN_BPM / 1.05))
        self._next = target

    # -- bars -------------------------------------------------------------------------------

    def _bar_step(self) -> None:
        """A beat's bar evidence, read a quarter period after it (its onset is in by then): how
        much the harmony changes there (chords change on the bar line), and its low-band weight
        (a kick)."""
        if self._pending_bar is None or self._period is None:
            return
        t, index = self._pending_bar
        if self._n < t + 0.25 * self._period:
            return
        self._pending_bar = None
        self._subdivisions(t)
        # the harmony of the beat that just ended (from the previous beat's read to this one)
        acc, self._chroma_acc = self._chroma_acc, np.zeros(12)
        norm = float(np.linalg.norm(acc))
        self._beat_chroma = (self._beat_chroma + [(index - 1, acc / norm if norm > 1e-9 else acc)])[-2 * SPAN - 1:]
        for hists, spans in ((self._bar_hist, HARMONY_SPAN), (self._bar_pos, POSITION_SPAN)):
            for m, h in hists.items():
                change = self._harmony_change(index, spans[m])
                if change is not None:
                    h *= BAR_DECAY
                    h[(index - spans[m]) % m] += change
        # the meter whose histogram peaks clearest (a change of meter needs a clearer peak)
        best_m, best_c = self._meter, -1.0
        for m, h in sorted(self._bar_hist.items(), key=lambda mh: mh[0] != self._meter):
            c = _clarity(h)
            if c > best_c * METER_SWITCH.get((self._meter, m), 1.0) or best_c < 0:
                best_m, best_c = m, c
        self._meter = best_m
        self._down_pos = int(np.argmax(self._bar_pos[best_m]))
        self._bar_sure = _clarity(self._bar_pos[best_m]) >= BAR_CONFIDENCE

    def _subdivisions(self, t: float) -> None:
        """Add the beat that just ended (from the previous beat, frame `_prev_beat_at`, to this one
        at `t`, both with the novelty's delay) into the subdivision profile: the tempo novelty's
        peak near 0, 1/4, 1/2 and 3/4 of the way."""
        prev, self._prev_beat_at = self._prev_beat_at, t
        if prev is None or not 0.5 * self._period < t - prev < 1.5 * self._period or self._n - prev > self._hist_len:
            return
        span = t - prev
        half = max(1, int(round(span / 16.0)))
        ring = self._thist
        at = np.round(prev + span * np.arange(4) / 4.0).astype(int)      # frames
        idx = (at[:, None] + np.arange(-half, half + 1)[None, :] - self._n + self._pos - 1) % ring.size
        self._subdiv *= SUBDIVISION_DECAY
        self._subdiv += ring[idx].max(axis=1)
        self._subdiv_beats += 1

    def _subdivision_heard(self) -> bool:
        return self._subdiv_beats >= SUBDIVISION_MIN and float(self._subdiv.sum()) > 0.0

    def _harmony_change(self, index: int, span: int) -> float | None:
        """How different the `span` beats before beat `index - span` sound from the `span` from
        it (1 - cosine of their pitch-class profiles), or None before there are enough beats."""
        beats = [v for i, v in self._beat_chroma if index - 2 * span <= i < index]
        if len(beats) < 2 * span:
            return None
        before, after = sum(beats[:span]), sum(beats[span:])
        den = float(np.linalg.norm(before) * np.linalg.norm(after))
        return 1.0 - float(before @ after) / den if den > 1e-9 else 0.0

    # -- per block --------------------------------------------------------------------------

    def advance(self, t0: float, t1: float) -> tuple[float | None, bool]:
        """The block [t0, t1) seconds has been processed: the offset (s, from t0) of a beat
        predicted inside it, or None; and whether that beat is a downbeat."""
        if self._next is None or self._period is None:
            return None, False
        end = t1 * self.fps
        if self._n - self._evidence_at > COAST_S * self.fps:      # coasted too long: silent
            while self._next < end:
                self._next += self._period
            return None, False
        nxt = self._next
        if nxt >= end:
            return None, False
        if self._last_emit is not None and nxt < self._last_emit + 0.6 * self._period:
            self._next = self._last_emit + self._period
            return None, False
        t = max(nxt, t0 * self.fps)
        self._last_emit = t
        self._next = nxt + self._period
        while self._next < end:
            self._next += self._period
        index = self._beat_index
        self._beat_index += 1
        self._pending_bar = (t + self.delay, index)
        down = self._bar_sure and (index - self._down_pos) % self._meter == 0
        return max(0.0, t / self.fps - t0), down

    # -- readings ---------------------------------------------------------------------------

    @property
    def tempo_bpm(self) -> float | None:
        if self._period is None:
            return None
        return float(60.0 * self.fps / self._period)

    @property
    def confidence(self) -> float:
        return float(min(1.0, max(0.0, self._conf))) if self._next is not None else 0.0

    def phase(self, t: float) -> float:
        """Beat phase 0..1 at `t` seconds (0 on the beat)."""
        if self._next is None or self._period is None:
            return 0.0
        return float(((t * self.fps - self._next) / self._period) % 1.0)
