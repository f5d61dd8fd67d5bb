"""The extractor as a stream: causality, block sizes, bad samples, sample rates, files."""

from __future__ import annotations

import dataclasses
import math
import wave

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganinstrument.sources.audio.features import FeatureExtractor, Features, analyse_file

SR = 48000


def music(seconds=1.2, *, sr=SR, seed=0):
    """Plucked tones with noisy attacks, a few per second, plus a low drone."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = 0.05 * np.sin(2 * np.pi * 55 * np.arange(n) / sr)
    for start in np.arange(0.1, seconds - 0.15, 0.23):
        hz = float(rng.uniform(100, 900))
        m = int(0.2 * sr)
        t = np.arange(m) / sr
        note = np.sin(2 * np.pi * hz * t) * np.exp(-t / 0.08)
        note[: int(0.003 * sr)] += rng.normal(0, 0.5, int(0.003 * sr))
        i = int(start * sr)
        x[i:i + m] += 0.4 * note[: n - i]
    return x.astype(np.float32)


def feed(fx, x, sizes):
    """Feed x in blocks of the given sizes (cycled); return the outputs."""
    out, i, k = [], 0, 0
    while i < x.size:
        n = sizes[k % len(sizes)]
        out.append(fx.process(x[i:i + n]))
        i += n
        k += 1
    return out


def assert_finite(f: Features):
    values = [f.onset_strength, f.pitch_confidence, f.rms_db, *f.bands, f.time_s]
    values += [v for v in (f.pitch_hz, f.pitch_note) if v is not None]
    assert all(math.isfinite(v) for v in values), f


def test_prefix_gives_the_same_outputs():
    x = music()
    full = feed(FeatureExtractor(SR, 256), x, [256])
    cut = 97 * 256 + 100                                          # mid-block cut
    prefix = feed(FeatureExtractor(SR, 256), x[:cut], [256])
    assert prefix[:-1] == full[:len(prefix) - 1]
    assert sum(f.onset for f in full) >= 3


def test_output_does_not_depend_on_the_future():
    x, y = music(seed=1), music(seed=1).copy()
    y[30000:] = np.random.default_rng(9).normal(0, 0.3, y.size - 30000)   # another future
    a = feed(FeatureExtractor(SR, 256), x, [256])
    b = feed(FeatureExtractor(SR, 256), y, [256])
    n = 30000 // 256                                              # blocks that end before it
    assert a[:n] == b[:n]


@pytest.mark.parametrize("sizes", [[17], [3, 250, 1], [1000], [256, 0, 256]])
def test_any_block_partition_gives_the_same_frames(sizes):
    x = music()
    ref = feed(FeatureExtractor(SR, 256), x, [256])
    fx = FeatureExtractor(SR, 17, hop_size=256)
    out = feed(fx, x, sizes)
    assert [f.onset_time_s for f in out if f.onset] == [f.time_s for f in ref if f.onset]
    assert out[-1].time_s == pytest.approx(x.size / SR)
    # the latest values after the last whole hop are the same
    last_ref = ref[x.size // 256 - 1]
    last = [f for f in out if f.time_s <= last_ref.time_s][-1]
    if last.time_s == last_ref.time_s:
        assert dataclasses.replace(last, onset=False, onset_low=False, onset_high=False,
                                   onset_time_s=None, onset_strength=0.0) == dataclasses.replace(
            last_ref, onset=False, onset_low=False, onset_high=False, onset_time_s=None,
            onset_strength=0.0)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=8))
def test_block_partition_property(sizes):
    if sum(sizes) == 0:
        sizes = sizes + [1]
    x = music(0.6)
    ref = [f.time_s for f in feed(FeatureExtractor(SR, 256), x, [256]) if f.onset]
    got = [f.onset_time_s for f in feed(FeatureExtractor(SR, 256, hop_size=256), x, sizes)
           if f.onset]
    assert got == ref


def test_odd_block_size_default_hop():
    fx = FeatureExtractor(SR, 17)
    out = feed(fx, music(), [17])
    assert fx.hop_size >= 64                                     # not one FFT per 17 samples
    assert sum(f.onset for f in out) >= 3
    assert all(f.time_s == pytest.approx((i + 1) * 17 / SR) for i, f in enumerate(out[:-1]))


def test_wrong_length_and_two_d_blocks_are_processed():
    fx = FeatureExtractor(SR, 256)
    assert fx.process(np.zeros(0, np.float32)).time_s == 0.0
    f = fx.process(np.zeros((300, 1), np.float32))               # one channel, 2-D
    assert f.time_s == pytest.approx(300 / SR)
    f = fx.process(np.zeros(1000, np.float64))
    assert f.time_s == pytest.approx(1300 / SR)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e30])
def test_non_finite_and_huge_blocks_never_propagate(bad):
    fx = FeatureExtractor(SR, 256)
    x = music()
    out = feed(fx, x[:12800], [256])
    blk = x[12800:13056].copy()
    blk[::7] = bad
    out.append(fx.process(blk))
    out.append(fx.process(np.full(256, bad, np.float32)))
    out += feed(fx, x[13312:], [256])
    for f in out:
        assert_finite(f)
    assert fx.sanitised_blocks == 2
    t = np.arange(SR // 2) / SR                                   # it recovers: a clean A4
    last = feed(fx, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), [256])[-1]
    assert abs(1200 * math.log2(last.pitch_hz / 440.0)) < 5


def test_clipped_square_wave():
    t = np.arange(SR // 2) / SR
    x = np.sign(np.sin(2 * np.pi * 220 * t)).astype(np.float32)  # full scale, clipped
    out = feed(FeatureExtractor(SR, 256), x, [256])
    for f in out:
        assert_finite(f)
    assert out[-1].rms_db == pytest.approx(0.0, abs=0.1)
    assert abs(1200 * math.log2(out[-1].pitch_hz / 220.0)) < 10
    assert sum(f.onset for f in out) == 1


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 96000])
def test_sample_rates(sr):
    t = np.arange(int(0.6 * sr)) / sr
    x = (0.4 * np.sin(2 * np.pi * 330 * t) * (t > 0.2)).astype(np.float32)
    fx = FeatureExtractor(sr, 256)
    out = feed(fx, x, [256])
    fired = [f.time_s for f in out if f.onset]
    assert len(fired) == 1 and 0.2 < fired[0] < 0.2 + 0.02
    assert abs(1200 * math.log2(out[-1].pitch_hz / 330.0)) < 5
    assert out[-1].bands[1] == pytest.approx(0.4 / math.sqrt(2), rel=0.1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sample_rate=0, block_size=256), "sample_rate"),
    (dict(sample_rate=float("nan"), block_size=256), "sample_rate"),
    (dict(sample_rate=SR, block_size=0), "block_size"),
    (dict(sample_rate=SR, block_size=2.5), "block_size"),
    (dict(sample_rate=SR, block_size=256, hop_size=0), "hop_size"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FeatureExtractor(**kwargs)


def test_features_are_frozen():
    f = FeatureExtractor(SR, 256).process(np.zeros(256, np.float32))
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.onset = True


def test_reset_starts_over():
    fx = FeatureExtractor(SR, 256)
    x = music()
    a = feed(fx, x, [256])
    fx.reset()
    assert feed(fx, x, [256]) == a


# -- files ----------------------------------------------------------------------------------


def write_wav(path, x, sr, channels=1):
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    if channels == 2:
        pcm = np.stack([pcm, pcm], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


def test_analyse_file_is_deterministic_and_matches_streaming(tmp_path):
    pytest.importorskip("soundfile")
    x = music()
    path = tmp_path / "m.wav"
    write_wav(path, x, SR, channels=2)
    a = analyse_file(path)
    b = analyse_file(path)
    assert a == b and len(a) == math.ceil(x.size / 256)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").astype(np.float32) / 32768
    live = feed(FeatureExtractor(SR, 256), pcm, [256])
    assert [f.time_s for f in a if f.onset] == [f.time_s for f in live if f.onset]


def test_analyse_file_resamples(tmp_path):
    pytest.importorskip("soundfile")
    pytest.importorskip("scipy")
    sr = 16000
    t = np.arange(sr) / sr
    path = tmp_path / "low.wav"
    write_wav(path, 0.5 * np.sin(2 * np.pi * 220 * t) * (t > 0.3), sr)
    out = analyse_file(path, block_size=256)                      # 16 kHz -> 48 kHz
    assert out[-1].time_s == pytest.approx(1.0, abs=256 / 48000)
    assert abs(1200 * math.log2(out[-1].pitch_hz / 220.0)) < 5
    fired = [f.time_s for f in out if f.onset]
    assert len(fired) == 1 and 0.3 < fired[0] < 0.33
    out44 = analyse_file(path, sample_rate=44100)
    assert abs(1200 * math.log2(out44[-1].pitch_hz / 220.0)) < 5


def test_analyse_file_reads_flac(tmp_path):
    sf = pytest.importorskip("soundfile")
    t = np.arange(SR // 2) / SR
    x = (0.5 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    sf.write(tmp_path / "a.flac", x, SR)
    out = analyse_file(tmp_path / "a.flac", block_size=512)
    assert len(out) == math.ceil(x.size / 512)
    assert abs(1200 * math.log2(out[-1].pitch_hz / 330.0)) < 5
