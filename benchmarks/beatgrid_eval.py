"""Figures for the offline beat grid (ganinstrument/sources/audio/beatgrid.py).

1. The FluidSynth files of benchmarks/audio_eval_set.py (`--split`, default test): each is one
   constant tempo (from `audio_eval_set.sequences`) with one beat of lead-in, so the true beats
   are at (k + 1) * 60 / bpm from the first note to the last. Per file: the tempo found (or
   None), its error, whether it is an octave off, and the signed error of the grid's beats
   (median, and the share within 20 ms). Needs fluidsynth and fluid-soundfont-gm, as the set.
2. The synthesised drum tracks of tests/test_beatgrid.py, several seeds each.
3. The time of one call on 180 s of music at 48 kHz (this machine).

    python benchmarks/beatgrid_eval.py [--split test] [--seeds 8] [--no-fluidsynth]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ganinstrument.sources.audio.beatgrid import find_beat_grid  # noqa: E402


def signed_errors(grid, beats: np.ndarray) -> np.ndarray:
    """For each true beat: (nearest grid beat - true beat), seconds."""
    g = grid.beats(beats[-1] + 2 * grid.period_s)
    d = g[None, :] - beats[:, None]
    return d[np.arange(len(beats)), np.argmin(np.abs(d), axis=1)]


def verdict(bpm_true: float, grid) -> str:
    if grid is None:
        return "none"
    r = grid.bpm / bpm_true
    for k, name in ((1.0, "ok"), (2.0, "double"), (0.5, "half"), (1.5, "3/2"), (2 / 3, "2/3")):
        if abs(r / k - 1.0) < 0.04:
            return name
    return "wrong"


def line(name: str, bpm_true: float, grid, beats: np.ndarray) -> str:
    v = verdict(bpm_true, grid)
    if grid is None:
        return f"{name:24s} true {bpm_true:6.1f}  found None"
    text = (f"{name:24s} true {bpm_true:6.1f}  found {grid.bpm:7.2f} ({v:6s}) "
            f"err {100 * (grid.bpm / bpm_true - 1):+6.2f} %  conf {grid.confidence:.2f}")
    if v == "ok":
        e = signed_errors(grid, beats)
        text += (f"  beat err median {1000 * np.median(e):+5.1f} ms, |err| p90 "
                 f"{1000 * np.percentile(np.abs(e), 90):5.1f} ms, within 20 ms {np.mean(np.abs(e) < 0.02):4.0%}")
    return text


def fluidsynth_set(split: str) -> None:
    import soundfile as sf
    from audio_eval_set import build, sequences

    tempos = {name: spec[0] for name, spec in sequences(np.random.default_rng(0)).items()}
    print(f"-- audio_eval_set split {split} (FluidSynth; tempo from the MIDI file)")
    for it in build(split):
        base = it.name.split("_pink")[0]
        if base not in tempos:  # the tones have no tempo
            continue
        x, sr = sf.read(it.path, dtype="float32")
        bpm = float(tempos[base])
        beat = 60.0 / bpm
        beats = np.arange(beat, it.onsets_s.max() + 1e-6, beat)
        print(line(it.name, bpm, find_beat_grid(x, sr), beats))


def synthetic(seeds: int) -> None:
    from test_beatgrid import SR, TRACKS, render_track

    print(f"-- synthesised drum tracks (tests/test_beatgrid.py), seeds 100..{100 + seeds - 1}")
    errs, ok, n = [], 0, 0
    for name, (bpm, pattern, opts, expect) in TRACKS.items():
        for seed in range(100, 100 + seeds):
            x, beats = render_track(bpm, pattern, **{**opts, "seed": seed})
            grid = find_beat_grid(x, SR)
            n += 1
            if verdict(expect, grid) == "ok" and abs(grid.bpm / expect - 1) < 0.02:
                ok += 1
                errs.append(signed_errors(grid, beats[beats > 1.0]))
            else:
                print("   miss:", name, seed, grid)
    e = np.concatenate(errs)
    print(f"tempo within 2 %: {ok}/{n}; beat error median {1000 * np.median(e):+.1f} ms, "
          f"|err| p99 {1000 * np.percentile(np.abs(e), 99):.1f} ms, max {1000 * np.abs(e).max():.1f} ms")


def timing(seconds: float = 180.0) -> None:
    from test_beatgrid import DNB, render_track

    x, _ = render_track(174.0, DNB, seconds=seconds, sr=48000, seed=9)
    stereo = np.stack([x, x], axis=1)
    for label, s in (("mono", x), ("stereo", stereo)):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            find_beat_grid(s, 48000)
            times.append(time.perf_counter() - t)
        print(f"-- {seconds:g} s at 48 kHz {label}: {min(times):.2f} s best of 3 (median {np.median(times):.2f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--no-fluidsynth", action="store_true")
    ap.add_argument("--timing-seconds", type=float, default=180.0, help="the length of the timed file")
    args = ap.parse_args()
    if not args.no_fluidsynth:
        fluidsynth_set(args.split)
    synthetic(args.seeds)
    timing(args.timing_seconds)


if __name__ == "__main__":
    main()
