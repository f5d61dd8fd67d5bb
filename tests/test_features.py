"""Known-answer tests of the streaming feature extractor on synthetic signals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ganinstrument.sources.audio.features import FeatureExtractor
from ganinstrument.sources.audio.onset import LaggedFlux, OnsetPicker, fast_attack_window, log_filterbank

SR = 48000
BLOCK = 256


def sine(hz, seconds, *, sr=SR, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def clicks(times_s, seconds, *, sr=SR, amp=0.8):
    """Short decaying noise bursts (5 ms) at `times_s`."""
    rng = np.random.default_rng(0)
    x = np.zeros(int(seconds * sr), dtype=np.float32)
    n = int(0.005 * sr)
    burst = amp * rng.uniform(-1, 1, n) * np.exp(-np.arange(n) / (0.001 * sr))
    for t in times_s:
        i = int(round(t * sr))
        x[i:i + n] += burst[: max(0, min(n, x.size - i))]
    return x


def run(x, *, sr=SR, block=BLOCK, **kw):
    fx = FeatureExtractor(sr, block, **kw)
    return [fx.process(x[i:i + block]) for i in range(0, x.size, block)]


def cents(a, b):
    return 1200 * math.log2(a / b)


# -- pitch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("hz", [82.41, 110.0, 440.0, 1046.5])
def test_sine_pitch(hz):
    last = run(sine(hz, 0.5))[-1]
    assert last.pitch_hz is not None and abs(cents(last.pitch_hz, hz)) < 5
    assert last.pitch_confidence > 0.95
    assert abs(last.pitch_note - (69 + 12 * math.log2(hz / 440))) < 0.05
    assert last.pitch_class == round(69 + 12 * math.log2(hz / 440)) % 12
    assert isinstance(last.pitch_hz, float)


def test_low_bass_sine():
    out = run(sine(41.2, 1.0))                                 # E1, the bass guitar's lowest string
    voiced = [f.pitch_hz for f in out[-60:]]
    assert all(v is not None and abs(cents(v, 41.2)) < 10 for v in voiced)
    assert out[-1].pitch_class == 4                            # E


def test_pitch_class_of_a_saw():
    t = np.arange(SR // 2) / SR
    saw = sum(np.sin(2 * np.pi * k * 196.0 * t) / k for k in range(1, 40)) * 0.3
    last = run(saw.astype(np.float32))[-1]
    assert abs(cents(last.pitch_hz, 196.0)) < 10 and last.pitch_class == 7   # G3


def test_noise_is_unvoiced():
    x = np.random.default_rng(1).normal(0, 0.2, SR // 2).astype(np.float32)
    out = run(x)[20:]
    assert sum(f.pitch_hz is not None for f in out) / len(out) < 0.05
    assert all(f.pitch_note is None and f.pitch_class is None for f in out if f.pitch_hz is None)


# -- loudness and bands ---------------------------------------------------------------------


def test_silence():
    out = run(np.zeros(SR // 2, dtype=np.float32))
    assert not any(f.onset or f.onset_low or f.onset_high for f in out)
    assert all(f.rms_db <= -100 and f.pitch_hz is None for f in out)
    assert all(f.bands == (0.0, 0.0, 0.0) and f.onset_strength == 0.0 for f in out)


def test_rms_db_of_a_sine():
    last = run(sine(1000.0, 0.3, amp=0.5))[-1]
    assert last.rms_db == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.1)


@pytest.mark.parametrize("hz, band", [(80.0, 0), (1000.0, 1), (8000.0, 2)])
def test_band_of_a_sine(hz, band):
    bands = run(sine(hz, 0.5, amp=0.5))[-1].bands
    assert bands[band] == pytest.approx(0.5 / math.sqrt(2), rel=0.1)
    others = [b for i, b in enumerate(bands) if i != band]
    assert max(others) < 0.05 * bands[band]              # leakage of the short-fall window


def test_band_followers_attack_fast_release_slow():
    x = np.concatenate([sine(80.0, 0.3), np.zeros(SR // 2, dtype=np.float32)])
    out = run(x)
    lows = np.array([f.bands[0] for f in out])
    on_idx = int(0.3 * SR / BLOCK)
    peak = lows[:on_idx].max()
    assert np.argmax(lows[:on_idx] > 0.9 * peak) * BLOCK / SR < 0.06   # up within 60 ms
    after_150ms = lows[on_idx + int(0.15 * SR / BLOCK) + 8]            # (+ the window's length)
    assert 0.2 * peak < after_150ms < 0.6 * peak                       # released ~1/e in 150 ms
    assert lows[-1] < 0.05 * peak


# -- onsets ---------------------------------------------------------------------------------


def test_click_train_onsets_at_the_right_blocks():
    times = [0.2, 0.45, 0.7, 0.95, 1.2]
    out = run(clicks(times, 1.5))
    fired = [f.time_s for f in out if f.onset]
    assert len(fired) == len(times)
    for t_true, t_fired in zip(times, fired):
        assert 0.0 < t_fired - t_true <= 3 * BLOCK / SR                 # within 3 blocks (16 ms)
    assert all(f.onset_time_s == f.time_s for f in out if f.onset)   # hop == block


def test_refractory_period():
    times = np.arange(0.2, 1.4, 0.1)                                    # a click every 100 ms
    assert sum(f.onset for f in run(clicks(times, 1.5))) == times.size
    fired = np.array([f.time_s for f in run(clicks(times, 1.5), refractory_ms=150.0) if f.onset])
    assert fired.size == times.size // 2                                # every other click
    assert np.diff(fired).min() >= 0.15 - 1e-9


def test_kick_and_hat_band_onsets():
    """A 55 Hz thump fires the low band, a tilted noise burst the high band."""
    t = np.arange(int(0.1 * SR)) / SR
    fade_in = np.minimum(1.0, t / 0.003)                                # no click: a pure thump
    kick = (0.8 * np.sin(2 * np.pi * 55 * t) * np.exp(-t / 0.04) * fade_in).astype(np.float32)
    rng = np.random.default_rng(2)
    hat = rng.normal(0, 1, t.size)
    hat = np.diff(np.diff(hat, prepend=0), prepend=0)                   # tilt toward highs
    hat = (0.2 * hat * np.exp(-t / 0.01)).astype(np.float32)
    x = np.zeros(SR, dtype=np.float32)
    x[int(0.2 * SR):int(0.3 * SR)] += kick
    x[int(0.6 * SR):int(0.7 * SR)] += hat
    out = run(x)
    lows = [f.time_s for f in out if f.onset_low]
    highs = [f.time_s for f in out if f.onset_high]
    assert len(lows) == 1 and 0.2 < lows[0] < 0.23
    assert len(highs) == 1 and 0.6 < highs[0] < 0.62


def test_sensitivity_live():
    x = clicks([0.2, 0.5, 0.8], 1.0, amp=0.05) + np.random.default_rng(3).normal(
        0, 0.003, SR).astype(np.float32)
    counts = []
    for s in (0.0, 0.5, 1.0):
        counts.append(sum(f.onset for f in run(x, sensitivity=s)))
    assert counts[0] <= counts[1] <= counts[2]
    fx = FeatureExtractor(SR, BLOCK)
    fx.sensitivity = 0.9
    assert fx.sensitivity == 0.9
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="sensitivity"):
            fx.sensitivity = bad


def test_onset_picker_threshold_and_past_max():
    p = OnsetPicker(median_frames=4, max_frames=2, refractory_frames=3, multiplier=1.0, delta=1.0)
    fired = [p.step(v) for v in [0, 0, 5, 6, 0, 0, 0, 4, 0.5]]
    assert fired == [False, False, True, False, False, False, False, True, False]
    assert p.step(100.0, gate_open=False) is False



def test_lagged_flux_counts_a_slow_rise_in_full():
    # one band rising by 0.1 per frame: against the newest past frame (near=1) each frame
    # shows 0.1; against the maximum of frames t-5..t-3 it shows the last 3 frames' rise
    fast, slow = LaggedFlux(3, near=1, far=5), LaggedFlux(3, near=3, far=5)
    for t in range(12):
        spec = np.array([0.0, 0.1 * t, 0.0])
        d_fast, d_slow = fast.step(spec), slow.step(spec)
    assert d_fast[1] == pytest.approx(0.1) and d_slow[1] == pytest.approx(0.3)
    # the +-1 band max filter: the neighbours' own references are the rising band's past
    assert d_slow[0] == 0.0 and d_slow[2] == 0.0
    # a steady spectrum gives nothing once the reference window holds it; reset forgets
    for _ in range(5):
        d = slow.step(np.ones(3))
    assert not d.any()
    slow.reset()
    np.testing.assert_allclose(slow.step(np.ones(3)), np.ones(3))
    with pytest.raises(ValueError, match="near"):
        LaggedFlux(3, near=4, far=3)


# -- building blocks ------------------------------------------------------------------------


def test_filterbank_and_window_shapes():
    fb, centres = log_filterbank(n_fft=2048, sample_rate=SR)
    assert fb.shape == (centres.size, 1025) and np.all(np.diff(centres) > 0)
    assert fb.max() == 1.0 and np.all(fb.sum(axis=1) > 0)
    w = fast_attack_window(2048, fall=307)
    assert w.shape == (2048,) and abs(int(np.argmax(w)) - (2048 - 307)) <= 1
    sym = fast_attack_window(64, fall=32)                            # fall = n / 2: symmetric
    np.testing.assert_allclose(sym, sym[::-1], atol=1e-12)
    with pytest.raises(ValueError, match="fall"):
        fast_attack_window(8, fall=8)


def test_onset_strength_is_continuous_in_0_1():
    out = run(clicks([0.2, 0.6], 1.0) + sine(440.0, 1.0, amp=0.1))
    s = np.array([f.onset_strength for f in out])
    assert s.min() >= 0.0 and s.max() < 1.0
    fired = [i for i, f in enumerate(out) if f.onset]
    assert len(fired) == 3 and all(s[i] > 0.5 for i in fired)          # the tone, 2 clicks
    assert np.median(s) < 0.05                                          # a steady tone: ~0


def test_causal_yin_on_its_own():
    from ganinstrument.sources.audio.pitch import CausalYin

    yin = CausalYin(sample_rate=SR, fmin_hz=40.0, window=768)
    hist = sine(100.0, 0.1).astype(np.float64)
    f0, aper, rms = yin.estimate(hist)
    assert abs(cents(f0, 100.0)) < 2 and aper < 0.01
    assert rms == pytest.approx(0.5 / math.sqrt(2), rel=0.05)        # 1.6 periods
    noise = np.random.default_rng(4).normal(0, 0.3, hist.size)
    assert yin.estimate(noise)[1] > 0.5                       # aperiodic
    assert yin.needed == 768 + 1200 and yin.estimate(np.zeros(hist.size))[1] == 1.0
