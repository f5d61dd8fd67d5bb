"""The pitch tracker on its own (hand-made dips) and inside the extractor (signals whose
pitch changes, or that a frame-by-frame YIN gets wrong)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ganinstrument.sources.audio.features import FeatureExtractor
from ganinstrument.sources.audio.pitch import CausalYin, PitchTracker, dips

SR = 48000
HOP = 256


def tracker(**kw) -> PitchTracker:
    return PitchTracker(sample_rate=SR, fmin_hz=38.0, fmax_hz=2000.0, frame_s=HOP / SR, **kw)


def frame(*pairs):
    """Dips as (hz, d') pairs -> (periods, values) in order of period, as dips() gives."""
    pairs = sorted(pairs, key=lambda p: -p[0])
    return (np.array([SR / hz for hz, _ in pairs]), np.array([v for _, v in pairs]))


def cents(a, b):
    return 1200 * math.log2(a / b)


# -- the observation model ---------------------------------------------------------------------


def test_first_dip_under_the_threshold_takes_most_of_the_mass():
    t = tracker()
    p = t.dip_probabilities(frame((220.0, 0.05), (110.0, 0.04), (73.3, 0.04))[1])
    assert p.sum() == pytest.approx(1.0) and p[0] > 0.9


def test_the_margin_keeps_a_note_against_a_slightly_deeper_subharmonic():
    # a note under noise: its own dip at 0.46, a common subharmonic a little deeper at 0.36.
    # With an absolute threshold alone (pYIN) the subharmonic takes everything; the relative
    # part leaves the note a real share, which the tracker's memory of the note then decides.
    dips_ = frame((315.0, 0.46), (105.0, 0.36))[1]
    assert tracker(margin=1e-6).dip_probabilities(dips_)[0] < 0.01
    assert tracker(margin=0.1).dip_probabilities(dips_)[0] > 0.3
    assert tracker(margin=0.2).dip_probabilities(dips_)[0] > 0.5
    # far deeper (0.1 vs 0.46): the subharmonic is the period
    assert tracker(margin=0.1).dip_probabilities(frame((315.0, 0.46), (105.0, 0.10))[1])[1] > 0.95


def test_a_ringing_note_keeps_the_track_off_the_subharmonic():
    t = tracker()
    for _ in range(20):
        t.update(*frame((315.0, 0.1), (157.5, 0.12), (105.0, 0.12)))
    # 30 ms of the ambiguous mixture: the note holds (a longer one is decided by the evidence)
    for _ in range(6):
        f0, _ = t.update(*frame((315.0, 0.46), (157.5, 0.5), (105.0, 0.36)))
        assert abs(cents(f0, 315.0)) < 5


def test_voicing_evidence_follows_the_deepest_dip():
    t = tracker(voicing_threshold=0.6, voicing_width=0.05)
    assert t.voicing(np.array([0.05])) > 0.99
    assert t.voicing(np.array([0.6])) == pytest.approx(0.5)
    assert t.voicing(np.array([0.9])) < 0.01
    assert t.voicing(np.zeros(0)) == 0.0


# -- tracking ------------------------------------------------------------------------------


def test_a_stray_dip_in_one_frame_does_not_move_the_track():
    t = tracker()
    for _ in range(20):
        f0, p = t.update(*frame((440.0, 0.2)))
    assert abs(cents(f0, 440.0)) < 5 and p > 0.9
    # one frame where noise made an unrelated dip the first and deepest
    f0, _ = t.update(*frame((1200.0, 0.15), (440.0, 0.3)))
    assert abs(cents(f0, 440.0)) < 5
    f0, _ = t.update(*frame((440.0, 0.2)))
    assert abs(cents(f0, 440.0)) < 5


def test_a_new_note_takes_over_within_two_frames():
    t = tracker()
    for _ in range(20):
        t.update(*frame((440.0, 0.05)))
    out = [t.update(*frame((330.0, 0.05)))[0] for _ in range(3)]
    assert abs(cents(out[1], 330.0)) < 5 and abs(cents(out[2], 330.0)) < 5


def test_the_dip_refines_the_bin():
    t = tracker()
    for _ in range(10):
        f0, _ = t.update(*frame((441.3, 0.05)))
    assert f0 == pytest.approx(441.3)                   # the dip's own period, not a bin centre


def test_unvoiced_after_the_dips_go_and_back_again():
    t = tracker()
    for _ in range(20):
        t.update(*frame((220.0, 0.05)))
    quiet = [t.update(np.zeros(0), np.zeros(0)) for _ in range(5)]
    assert quiet[-1][0] is None and quiet[-1][1] < 0.1
    back = [t.update(*frame((220.0, 0.05))) for _ in range(3)]
    assert back[-1][0] is not None and abs(cents(back[-1][0], 220.0)) < 5


def test_reset_forgets_the_note():
    t = tracker()
    for _ in range(20):
        t.update(*frame((220.0, 0.05)))
    t.reset()
    assert t.unvoiced == 0.5 and np.ptp(t.voiced) == 0.0


# -- dips ----------------------------------------------------------------------------------


def test_dips_of_a_two_partial_tone():
    yin = CausalYin(sample_rate=SR, window=768)
    t = np.arange(yin.needed) / SR
    yin.estimate(np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 440 * t))
    periods, values = dips(yin.cmnd, yin.tau_min, yin.tau_max, diff=yin.diff)
    assert np.all(np.diff(periods) > 0)
    assert abs(cents(SR / periods[0], 220.0)) < 2 and values[0] < 0.01
    assert np.allclose(SR / periods[:3], [220.0, 110.0, 220.0 / 3], rtol=1e-3)   # multiples


def test_dips_keep_the_period_of_a_high_note_among_its_many_multiples():
    yin = CausalYin(sample_rate=SR, window=768)
    t = np.arange(yin.needed) / SR
    yin.estimate(np.sin(2 * np.pi * 1030 * t + 0.3) * np.exp(-t * 3.0))    # a fading note
    periods, values = dips(yin.cmnd, yin.tau_min, yin.tau_max, diff=yin.diff, most=8)
    assert periods.size == 8 and abs(cents(SR / periods[0], 1030.0)) < 2
    assert np.allclose(periods / periods[0], np.arange(1, 9), rtol=2e-3)


def test_dips_of_noise_are_capped():
    yin = CausalYin(sample_rate=SR, window=768)
    yin.estimate(np.random.default_rng(0).normal(size=yin.needed))
    periods, values = dips(yin.cmnd, yin.tau_min, yin.tau_max, diff=yin.diff)
    assert 0 < periods.size <= 32 and values.min() > 0.5


# -- in the extractor ------------------------------------------------------------------------


def run(x, **kw):
    fx = FeatureExtractor(SR, HOP, **kw)
    return [fx.process(x[i:i + HOP]) for i in range(0, x.size, HOP)]


def notes(seq, *, amp=0.4, harmonics=6):
    """Consecutive harmonic tones [(hz, seconds), ...] with continuous phase."""
    parts = []
    for hz, seconds in seq:
        t = np.arange(int(seconds * SR)) / SR
        parts.append(sum(np.sin(2 * np.pi * k * hz * t) / k for k in range(1, harmonics + 1)))
    x = np.concatenate(parts)
    return (amp * x / np.abs(x).max()).astype(np.float32)


def test_note_changes_are_followed_within_30_ms():
    seq = [(220.0, 0.3), (330.0, 0.3), (247.0, 0.3), (110.0, 0.3)]
    out = run(notes(seq))
    for k, (hz, _) in enumerate(seq):
        start = int(round(0.3 * k * SR / HOP))
        settled = out[start + int(0.03 * SR / HOP) + 1:start + int(0.3 * SR / HOP)]
        assert all(f.pitch_hz is not None and abs(cents(f.pitch_hz, hz)) < 20 for f in settled), hz


def test_memory_helps_under_heavy_noise():
    # a 196 Hz harmonic tone in white noise at -6 dB SNR: frame by frame the first good dip is
    # often elsewhere; the tracker's memory (few jumps per second) keeps more frames right than
    # the same tracker that may jump anywhere every frame
    rng = np.random.default_rng(3)
    x = notes([(196.0, 1.5)])
    x = x + rng.normal(0, 2.0 * float(np.std(x)), x.size).astype(np.float32)

    def share_right(**kw):
        out = run(x, **kw)[30:]
        return sum(f.pitch_hz is not None and abs(cents(f.pitch_hz, 196.0)) < 50 for f in out) / len(out)

    tracked, memoryless = share_right(), share_right(pitch_jumps_per_s=5000.0)
    assert tracked > 0.65 and tracked > memoryless + 0.1
