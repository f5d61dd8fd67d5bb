"""Evaluation set for the audio feature extractor, with exact ground truth.

Seeded random MIDI note sequences rendered by FluidSynth with the FluidR3 GM soundfont
(reverb and chorus off, 48 kHz, mixed to mono), numpy sine/saw tones and glides, and copies of
some of them with pink noise at 20 dB and 6 dB SNR. Onset truth is the note-on time of the
written MIDI file (after tick quantisation; note-ons closer than 30 ms are merged); f0 truth is
440 * 2**((note - 69) / 12) inside [note-on, note-off) for the monophonic parts, exact for tones.

Needs Debian `fluidsynth` and `fluid-soundfont-gm`, PyPI `mido` and `soundfile`. Files go to a
cache folder (default `~/.cache/ganinstrument/audio-eval/<split>`), never into the repository;
they are rebuilt only when missing. Two splits from different seeds: `dev` (to tune on) and
`test` (to report).

    python benchmarks/audio_eval_set.py --split test     # build, print the list
    python benchmarks/audio_eval_set.py --tones-only     # the tones alone (no FluidSynth)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 48000
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
TICKS_PER_BEAT = 480
MERGE_S = 0.030
SPLIT_SEEDS = {"dev": 1000, "test": 2000}


@dataclass(frozen=True)
class Item:
    """One file of the set: `onsets_s` (K,) seconds; `f0` (M, 3) rows of (start_s, end_s, hz)
    for monophonic parts (None where pitch is not scored); `f0_curve` (T, 2) rows of
    (time_s, hz) for continuous tones (glides)."""

    name: str
    category: str
    path: Path
    onsets_s: np.ndarray
    f0: np.ndarray | None
    f0_curve: np.ndarray | None = None
    noise_db: float | None = None


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


# ----------------------------------------------------------------------------------------------
# Note sequences: lists of (start_beat, duration_beats, note, velocity, channel)


def _mono_line(rng, n_beats, low, high, step_choices, legato=0.9, rests=0.1):
    notes, t, prev = [], 0.0, rng.integers(low, high + 1)
    while t < n_beats:
        dur = float(rng.choice(step_choices))
        if rng.random() >= rests:
            jump = int(rng.integers(-7, 8))
            prev = int(np.clip(prev + jump, low, high))
            notes.append((t, dur * legato, prev, int(rng.integers(50, 121))))
        t += dur
    return notes


def _part(notes, channel):
    return [(s, d, n, v, channel) for s, d, n, v in notes]


def sequences(rng) -> dict[str, tuple[float, dict[int, int], list, bool]]:
    """name -> (tempo bpm, {channel: GM program}, events, monophonic)."""
    seqs = {}
    seqs["piano_mono"] = (100, {0: 0}, _part(_mono_line(rng, 48, 48, 84, [0.5, 1.0, 0.25]), 0), True)
    chords = []
    for bar in range(12):
        root = int(rng.integers(48, 60))
        for beat in (0.0, 2.0):
            for iv in (0, 4 if rng.random() < 0.5 else 3, 7):
                chords.append((bar * 4 + beat, 1.8, root + iv, int(rng.integers(50, 100))))
    melody = _mono_line(rng, 48, 67, 88, [0.25, 0.5], rests=0.2)
    seqs["piano_poly"] = (120, {0: 0}, _part(chords + melody, 0), False)
    seqs["bass_mono"] = (90, {0: 33}, _part(_mono_line(rng, 40, 28, 55, [0.5, 1.0]), 0), True)
    seqs["strings_mono"] = (70, {0: 48}, _part(_mono_line(rng, 28, 55, 79, [1.0, 2.0]), 0), True)
    seqs["flute_mono"] = (140, {0: 73}, _part(_mono_line(rng, 56, 72, 93, [0.5, 1.0]), 0), True)
    seqs["drums"] = (120, {9: 0}, _drums(rng, 12), False)
    band = _drums(rng, 10) + _part(_mono_line(rng, 40, 28, 50, [0.5, 1.0], rests=0.05), 1)
    band += _part([(b * 2.0, 1.9, n, int(rng.integers(45, 85)))
                   for b in range(20) for n in _triad(rng)], 2)
    seqs["band_mix"] = (110, {9: 0, 1: 33, 2: 0}, band, False)
    return seqs


def _triad(rng):
    root = int(rng.integers(55, 67))
    return (root, root + 4, root + 7)


def _drums(rng, bars):
    ev = []
    for bar in range(bars):
        for step in range(16):
            t = bar * 4 + step * 0.25
            if step in (0, 8) or (step == 10 and rng.random() < 0.5):
                ev.append((t, 0.2, 36, int(rng.integers(90, 127)), 9))       # kick
            if step in (4, 12):
                ev.append((t, 0.2, 38, int(rng.integers(90, 127)), 9))       # snare
            elif rng.random() < 0.12:
                ev.append((t, 0.2, 38, int(rng.integers(30, 60)), 9))        # ghost
            if step % 2 == 0 and rng.random() < 0.8:
                ev.append((t, 0.1, 42, int(rng.integers(40, 100)), 9))       # closed hat
            if step == 14 and rng.random() < 0.3:
                ev.append((t, 0.2, int(rng.choice([45, 47, 50])), 100, 9))   # tom
        if bar % 4 == 0:
            ev.append((bar * 4, 1.0, 49, 110, 9))                             # crash
    return ev


def write_midi(path: Path, tempo_bpm: float, programs: dict[int, int], events) -> list:
    """Write a type-0 MIDI file; return the events with times in seconds (tick-quantised)."""
    import mido

    sec_per_tick = 60.0 / tempo_bpm / TICKS_PER_BEAT
    msgs = []
    timed = []
    for start, dur, note, vel, ch in events:
        on = int(round(start * TICKS_PER_BEAT)) + TICKS_PER_BEAT      # one beat of lead-in
        off = on + max(1, int(round(dur * TICKS_PER_BEAT)))
        msgs.append((on, 1, mido.Message("note_on", channel=ch, note=note, velocity=vel)))
        msgs.append((off, 0, mido.Message("note_off", channel=ch, note=note, velocity=0)))
        timed.append((on * sec_per_tick, off * sec_per_tick, note, ch))
    save_track(path, [mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm))], programs, msgs,
               TICKS_PER_BEAT)
    return timed


def save_track(path: Path, head: list, programs: dict[int, int], msgs: list, ticks_per_beat: int) -> None:
    """A type-0 MIDI file: `head` (meta messages), a program change per (channel, program),
    then `msgs`, (tick, order within the tick, message), in time order; a bar of tail."""
    import mido

    track = mido.MidiTrack(head)
    for ch, prog in programs.items():
        track.append(mido.Message("program_change", channel=ch, program=prog))
    now = 0
    for tick, _, msg in sorted(msgs, key=lambda m: (m[0], m[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=ticks_per_beat * 4))
    mf = mido.MidiFile(ticks_per_beat=ticks_per_beat, type=0)
    mf.tracks.append(track)
    mf.save(path)


def render(midi_path: Path, wav_path: Path) -> np.ndarray:
    """FluidSynth -> mono float32 at SAMPLE_RATE, peak-normalised to -3 dBFS."""
    import soundfile as sf

    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        raise RuntimeError("needs Debian packages fluidsynth and fluid-soundfont-gm")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.6",
                        "-r", str(SAMPLE_RATE), "-F", str(raw), str(SOUNDFONT), str(midi_path)],
                       check=True, capture_output=True)
        x, sr = sf.read(raw, dtype="float32", always_2d=True)
    assert sr == SAMPLE_RATE
    x = x.mean(axis=1)
    return (x * (0.707 / max(1e-9, np.abs(x).max()))).astype(np.float32)


def merge_onsets(times) -> np.ndarray:
    out = []
    for t in np.sort(np.asarray(times, dtype=float)):
        if not out or t - out[-1] >= MERGE_S:
            out.append(t)
    return np.array(out)


def pink_noise(rng, n: int) -> np.ndarray:
    """1/f power noise by spectral shaping of white noise."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=float)
    f[0] = 1.0
    spec /= np.sqrt(f)
    spec[0] = 0.0
    y = np.fft.irfft(spec, n)
    return y / y.std()


def add_noise(x: np.ndarray, snr_db: float, rng) -> np.ndarray:
    active = np.abs(x) > 1e-4
    p_sig = float(np.mean(x[active] ** 2)) if active.any() else 1e-6
    noise = pink_noise(rng, x.size) * np.sqrt(p_sig / 10 ** (snr_db / 10))
    y = x + noise
    return (y / max(1.0, np.abs(y).max() / 0.99)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# numpy tones


def tones_steps(rng):
    """Sines and band-limited saws, 60-1200 Hz, 5 ms attack, with gaps: (x, onsets, f0 rows)."""
    sr = SAMPLE_RATE
    t0, pieces, onsets, f0 = 0.3, [np.zeros(int(0.3 * sr))], [], []
    for i in range(24):
        hz = float(np.exp(rng.uniform(np.log(60), np.log(1200))))
        dur = float(rng.uniform(0.25, 0.6))
        n = int(dur * sr)
        t = np.arange(n) / sr
        if i % 2 == 0:
            y = np.sin(2 * np.pi * hz * t)
        else:
            y = sum(np.sin(2 * np.pi * k * hz * t) / k
                    for k in range(1, int(sr / 2 / hz)) if k * hz < 8000) * 0.6
        env = np.minimum(1.0, t / 0.005) * np.minimum(1.0, (dur - t) / 0.02)
        amp = 10 ** (rng.uniform(-20, -3) / 20)
        pieces.append(amp * env * y)
        onsets.append(t0)
        f0.append((t0, t0 + dur, hz))
        gap = float(rng.uniform(0.0, 0.25)) if i % 3 else 0.0
        pieces.append(np.zeros(int(gap * sr)))
        t0 += n / sr + int(gap * sr) / sr
    return np.concatenate(pieces).astype(np.float32), np.array(onsets), np.array(f0)


def tones_glide(rng):
    """100 -> 800 Hz log glide (3 s), then 330 Hz +-50 cents vibrato at 6 Hz (3 s)."""
    sr = SAMPLE_RATE
    lead = int(0.3 * sr)
    t = np.arange(3 * sr) / sr
    f_glide = 100 * 8 ** (t / 3.0)
    f_vib = 330 * 2 ** (0.5 / 12 * np.sin(2 * np.pi * 6 * t))
    f = np.concatenate([f_glide, f_vib])
    phase = 2 * np.pi * np.cumsum(f) / sr
    env = np.ones_like(f)
    env[: int(0.005 * sr)] = np.linspace(0, 1, int(0.005 * sr))
    y = 0.5 * env * (np.sin(phase) + 0.3 * np.sin(2 * phase))
    x = np.concatenate([np.zeros(lead), y, np.zeros(int(0.3 * sr))]).astype(np.float32)
    times = (lead + np.arange(f.size)) / sr
    curve = np.stack([times[::48], f[::48]], axis=1)
    return x, np.array([lead / sr]), curve


# ----------------------------------------------------------------------------------------------


def build(split: str = "test", cache: str | os.PathLike | None = None, *,
          tones_only: bool = False) -> list[Item]:
    """Build (or reuse) the set for `split` ("dev" or "test"); return its items.

    `tones_only`: only the numpy tones and their noisy copies (no FluidSynth needed), in their
    own folder `<split>-tones`. The tones are the full set's; their noise is drawn differently."""
    import soundfile as sf

    root = Path(cache or Path.home() / ".cache" / "ganinstrument" / "audio-eval") / (
        f"{split}-tones" if tones_only else split)
    root.mkdir(parents=True, exist_ok=True)
    index = root / "index.json"
    if index.exists():
        return _load(root, json.loads(index.read_text()))
    seed = SPLIT_SEEDS[split]
    rng = np.random.default_rng(seed)
    entries = []
    clean = {}
    for name, (tempo, programs, events, mono) in sequences(rng).items():  # drawn either way
        if tones_only:
            continue
        midi = root / f"{name}.mid"
        timed = write_midi(midi, tempo, programs, events)
        x = render(midi, root / f"{name}.wav")
        sf.write(root / f"{name}.wav", x, SAMPLE_RATE, subtype="FLOAT")
        onsets = merge_onsets([on for on, _, _, _ in timed])
        f0 = [[on, off, midi_hz(n)] for on, off, n, _ in timed] if mono else None
        cat = name.split("_")[0] if name != "band_mix" else "band"
        entries.append(dict(name=name, category=cat, onsets=onsets.tolist(), f0=f0))
        clean[name] = x
    for name, (x, onsets, f0) in {"tones_steps": tones_steps(rng)}.items():
        sf.write(root / f"{name}.wav", x, SAMPLE_RATE, subtype="FLOAT")
        entries.append(dict(name=name, category="tones", onsets=onsets.tolist(), f0=f0.tolist()))
        clean[name] = x
    x, onsets, curve = tones_glide(rng)
    sf.write(root / "tones_glide.wav", x, SAMPLE_RATE, subtype="FLOAT")
    entries.append(dict(name="tones_glide", category="tones", onsets=onsets.tolist(), f0=None,
                        f0_curve=curve.tolist()))
    clean["tones_glide"] = x
    for base in ("piano_mono", "bass_mono", "flute_mono", "drums", "band_mix", "tones_steps"):
        if base not in clean:
            continue
        src = next(e for e in entries if e["name"] == base)
        for snr in (20, 6):
            name = f"{base}_pink{snr}"
            sf.write(root / f"{name}.wav", add_noise(clean[base], snr, rng), SAMPLE_RATE,
                     subtype="FLOAT")
            entries.append(dict(src, name=name, category=f"noise{snr}", noise_db=snr))
    index.write_text(json.dumps(entries))
    return _load(root, entries)


def _load(root: Path, entries) -> list[Item]:
    items = []
    for e in entries:
        f0 = None if e.get("f0") is None else np.array(e["f0"], dtype=float)
        curve = None if e.get("f0_curve") is None else np.array(e["f0_curve"], dtype=float)
        items.append(Item(e["name"], e["category"], root / f"{e['name']}.wav",
                          np.array(e["onsets"], dtype=float), f0, curve, e.get("noise_db")))
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test", choices=sorted(SPLIT_SEEDS))
    ap.add_argument("--cache", default=None)
    ap.add_argument("--tones-only", action="store_true", help="only the numpy tones (no FluidSynth)")
    args = ap.parse_args()
    for it in build(args.split, args.cache, tones_only=args.tones_only):
        print(f"{it.name:24s} {it.category:8s} onsets {len(it.onsets_s):4d}  "
              f"pitch {'yes' if it.f0 is not None or it.f0_curve is not None else '-'}")


if __name__ == "__main__":
    main()
