"""The offline beat grid (sources/audio/beatgrid.py) on rendered drum tracks with known beats.

The tracks are synthesised here (seeded numpy): kick (a falling sine), snare (a noise burst
with a tone), hats (high-passed noise), a bass line and a pad, at 90, 120, 128 and 174 BPM with
the first beat off zero, one swung, one in half-time feel, one under loud noise; a beatless
drone, and silence.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from ganinstrument.sources.audio.beatgrid import BeatGrid, find_beat_grid

SR = 44100

# (beat within the bar, voice, velocity); 4/4 bars
HIPHOP = [(0, "kick", 1.0), (2.5, "kick", 0.8), (1, "snare", 1.0), (3, "snare", 1.0)] + \
    [(b / 2, "hat", 0.5) for b in range(8)]
HOUSE = [(b, "kick", 1.0) for b in range(4)] + [(1, "snare", 0.7), (3, "snare", 0.7)] + \
    [(b + 0.5, "ohat", 0.5) for b in range(4)]
TECHNO = [(b, "kick", 1.0) for b in range(4)] + [(b / 4, "hat", 0.35) for b in range(16)]
DNB = [(0, "kick", 1.0), (2.5, "kick", 0.9), (1, "snare", 1.0), (3, "snare", 1.0)] + \
    [(b / 2, "hat", 0.45) for b in range(8)]
SWING = [(0, "kick", 1.0), (2, "kick", 1.0), (1, "snare", 0.9), (3, "snare", 0.9)] + \
    [(b + s, "hat", 0.5) for b in range(4) for s in (0.0, 0.5)]       # 0.5 swung to 2/3 below
HALFTIME = [(0, "kick", 1.0), (2, "snare", 1.0)] + [(b, "hat", 0.5) for b in range(4)] + \
    [(b + 0.5, "hat", 0.25) for b in range(4)]


def _voice(name: str, rng: np.random.Generator, sr: int) -> np.ndarray:
    if name == "kick":
        t = np.arange(int(0.35 * sr)) / sr
        f = 50.0 + 90.0 * np.exp(-t / 0.03)
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.12)
    if name == "snare":
        t = np.arange(int(0.25 * sr)) / sr
        noise = rng.standard_normal(len(t))
        return (0.6 * noise * np.exp(-t / 0.06) + 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05))
    if name in ("hat", "ohat"):
        t = np.arange(int((0.25 if name == "ohat" else 0.06) * sr)) / sr
        noise = np.diff(rng.standard_normal(len(t) + 1))          # tilted to the highs
        return 0.5 * noise * np.exp(-t / (0.08 if name == "ohat" else 0.015))
    raise ValueError(name)


def render_track(bpm: float, pattern, *, seconds: float = 30.0, offset_s: float = 0.25,
                 swing: float = 0.5, noise: float = 0.0, sr: int = SR, seed: int = 0,
                 music: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(mono float32 samples, the true beat times in seconds). `swing`: where the off-beat 8th
    falls in its beat (0.5 straight, 2/3 triplet swing). `noise`: white noise RMS relative to
    the track's RMS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = np.zeros(n + sr)
    beat_s = 60.0 / bpm
    bars = int(seconds / (4 * beat_s)) + 2
    for bar in range(bars):
        for pos, voice, vel in pattern:
            whole, frac = divmod(pos, 1.0)
            if abs(frac - 0.5) < 1e-9:
                frac = swing
            t = offset_s + (bar * 4 + whole + frac) * beat_s
            t += rng.normal(0, 0.002)                              # a human's 2 ms
            i = int(round(t * sr))
            if i >= n:
                continue
            v = _voice(voice, rng, sr) * vel * rng.uniform(0.85, 1.0)
            x[i:i + len(v)] += v[:len(x) - i]
    if music:  # a bass note each bar and a soft pad: sound that is not drums
        t = np.arange(n + sr) / sr
        roots = rng.choice([41.2, 49.0, 55.0, 61.7], size=bars)
        bar_of = np.clip(((t - offset_s) / (4 * beat_s)).astype(int), 0, bars - 1)
        f = roots[bar_of]
        x += 0.25 * np.sin(2 * np.pi * np.cumsum(f) / sr)
        x += 0.05 * sum(np.sin(2 * np.pi * fr * t + p) for fr, p in
                        zip((220.0, 277.2, 329.6), rng.uniform(0, 6, 3)))
    x = x[:n]
    if noise:
        x += noise * np.sqrt(np.mean(x ** 2)) * rng.standard_normal(n)
    x = (0.7 * x / np.max(np.abs(x))).astype(np.float32)
    beats = offset_s + np.arange(int(seconds / beat_s) + 1) * beat_s
    return x, beats[beats < seconds]


def drone(seconds: float = 30.0, sr: int = SR, seed: int = 1) -> np.ndarray:
    """A beatless pad: detuned partials drifting slowly, a swell over tens of seconds."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = np.zeros(n)
    for base in (110.0, 164.8, 220.0, 329.6):
        for _ in range(3):
            drift = np.cumsum(rng.standard_normal(n // 4410 + 2)) * 0.02   # a slow random walk
            f = base * (1 + rng.uniform(-0.004, 0.004)) * (1 + 0.002 * np.interp(t, np.arange(len(drift)) * 0.1, drift))
            x += np.sin(2 * np.pi * np.cumsum(f) / sr + rng.uniform(0, 6))
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * t / 23.0)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def beat_errors(grid: BeatGrid, beats: np.ndarray) -> np.ndarray:
    """For each true beat, the distance (s) to the nearest grid beat."""
    g = grid.beats(beats[-1] + grid.period_s)
    return np.abs(beats[:, None] - g[None, :]).min(axis=1)


TRACKS = {  # name -> (bpm, pattern, options, the tempo expected)
    "hiphop90": (90.0, HIPHOP, dict(offset_s=0.37, seed=2), 90.0),
    "house120": (120.0, HOUSE, dict(offset_s=0.21, seed=3), 120.0),
    "techno128_noisy": (128.0, TECHNO, dict(offset_s=0.05, noise=1.0, seed=4), 128.0),
    "dnb174": (174.0, DNB, dict(offset_s=0.30, seed=5), 174.0),
    "swing100": (100.0, SWING, dict(offset_s=0.44, swing=2 / 3, seed=6), 100.0),
    # half-time feel: the notated (DJ) tempo, 140, not the 70 of the kick and snare
    "halftime140": (140.0, HALFTIME, dict(offset_s=0.12, seed=7), 140.0),
}


@pytest.mark.parametrize("name", sorted(TRACKS))
def test_grid_on_rendered_tracks(name):
    bpm, pattern, opts, expect = TRACKS[name]
    x, beats = render_track(bpm, pattern, **opts)
    grid = find_beat_grid(x, SR)
    assert grid is not None, name
    print(f"{name}: {grid}")
    assert abs(grid.bpm - expect) / expect < 0.02, (name, grid)
    assert 0.0 <= grid.first_beat_s < grid.period_s
    err = beat_errors(grid, beats[beats > 1.0])
    print(f"{name}: beat error median {1000 * np.median(err):.1f} ms, max {1000 * err.max():.1f} ms")
    assert err.max() < 0.020, (name, grid, err.max())
    assert 0.0 < grid.confidence <= 1.0


def test_no_grid_without_a_steady_beat():
    assert find_beat_grid(drone(), SR) is None                        # a beatless pad
    assert find_beat_grid(np.zeros(30 * SR, dtype=np.float32), SR) is None
    assert find_beat_grid(np.full(30 * SR, 1e-8, dtype=np.float32), SR) is None    # -160 dBFS hum
    noise = np.random.default_rng(8).standard_normal(30 * SR).astype(np.float32)
    assert find_beat_grid(noise, SR) is None                          # white noise
    # a drum track too short to show a tempo (2 s)
    x, _ = render_track(120.0, HOUSE, seconds=2.0)
    assert find_beat_grid(x, SR) is None


@pytest.mark.parametrize("rate", [8000, 22050, 48000, 96000, 192000])
def test_sample_rates_and_channels(rate):
    x, beats = render_track(120.0, HOUSE, sr=rate, offset_s=0.21, seed=3, seconds=20.0)
    stereo = np.stack([x, 0.5 * x], axis=1)
    for samples in (x, stereo, (x * 32767).astype(np.int16)):
        grid = find_beat_grid(samples, rate)
        assert grid is not None and abs(grid.bpm - 120.0) < 2.4, (rate, grid)
        assert beat_errors(grid, beats[beats > 1.0]).max() < 0.020, (rate, grid)


def test_hostile_input_never_raises_on_content():
    x, beats = render_track(128.0, TECHNO, offset_s=0.05, seed=4, seconds=20.0)
    # NaN and inf read as 0: a few broken samples leave the grid where it was
    broken = x.copy()
    broken[::997] = np.nan
    broken[5::1499] = np.inf
    broken[7::1999] = -np.inf
    grid = find_beat_grid(broken, SR)
    assert grid is not None and abs(grid.bpm - 128.0) < 2.56
    assert beat_errors(grid, beats[beats > 1.0]).max() < 0.020
    # all non-finite, empty, one sample, huge values, a DC offset, a single click
    for samples in (np.full(SR * 10, np.nan), np.full((SR * 10, 2), np.inf), np.zeros(0), np.zeros((0, 2)),
                    np.ones(1), np.full(SR * 10, 1e300), np.full(SR * 10, 0.5),
                    np.eye(1, SR * 10, SR * 3)[0], np.zeros((SR * 5, 1)) + 1e-3):
        assert find_beat_grid(samples, SR) is None, samples.shape
    # scale does not matter: the track at 1e30 and at 1e-5 gives the same grid
    g_big = find_beat_grid(x.astype(np.float64) * 1e30, SR)
    g_small = find_beat_grid(x * 1e-5, SR)
    assert g_big is not None and g_small is not None
    assert abs(g_big.bpm - grid.bpm) < 0.1 and abs(g_small.bpm - grid.bpm) < 0.1
    # a wrong shape, dtype or rate is a ValueError naming it
    with pytest.raises(ValueError, match="shape"):
        find_beat_grid(np.zeros((10, 2, 2)), SR)
    with pytest.raises(ValueError, match="shape"):
        find_beat_grid(np.zeros((SR, 0)), SR)
    with pytest.raises(ValueError, match="dtype"):
        find_beat_grid(np.zeros(SR, dtype=complex), SR)
    for rate in (0, -1, float("nan"), 1e9):
        with pytest.raises(ValueError, match="sample_rate"):
            find_beat_grid(x, rate)


def test_deterministic_and_quick_on_three_minutes():
    x, beats = render_track(174.0, DNB, seconds=180.0, offset_s=0.3, seed=9, sr=48000)
    t = time.perf_counter()
    first = find_beat_grid(x, 48000)
    took = time.perf_counter() - t
    print(f"\nfind_beat_grid on 180 s at 48 kHz: {took:.2f} s -> {first}")
    assert first == find_beat_grid(x.copy(), 48000)
    assert first is not None and abs(first.bpm - 174.0) < 0.05     # 3 minutes pin the tempo
    assert beat_errors(first, beats[beats > 1.0]).max() < 0.020    # no drift to the end
