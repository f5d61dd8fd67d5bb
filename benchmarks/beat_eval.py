"""Figures for the live beat tracker (FeatureExtractor's beat fields, issue 15 part 2).

A held-out set of rendered music with beat and downbeat truth, built like
benchmarks/audio_eval_set.py (seeded MIDI, FluidSynth with the FluidR3 GM soundfont, reverb and
chorus off, 48 kHz mono, -3 dBFS peak) but from its own seeds and styles:

- straight 4/4 grooves (kick, snare, hats, bass, a chord each bar) at 80, 100, 128, 150, 180 BPM;
- a 174 BPM drum and bass break (kick on 1 and 3&, snare on 2 and 4, ghost notes, 8th hats);
- a swung groove at 110 (ride in swung 8ths, walking bass, comping off the beat);
- a syncopated groove at 120 (kick on 1, 2&, 3&; bass and stabs on the off-beats; open hats on
  the &s);
- a tempo step 100 -> 140 BPM and a ramp 90 -> 130 BPM over 12 bars;
- a beatless intro (8 s of pads, no beat truth there) into a 124 BPM groove;
- a breakdown (126 BPM: 8 bars groove, 4 bars of pads on the bar lines, 8 bars groove; the
  breakdown's beats are truth: the tempo goes on under the pads);
- a 3/4 waltz at 150 (oom-pah-pah) and a piano-only piece at 84 (chords on the beats, melody);
- pink noise at 10 dB SNR on copies of straight_128, synco_120 and dnb_174.

Beat truth is every beat of the MIDI tempo map from the first note (one beat of lead-in),
downbeats every `meter` beats. Two splits: `dev` (seed 7150, to tune on) and `test` (seed 7151,
to report). Files are cached in ~/.cache/ganinstrument/beat-eval/<split>.

Figures, each file fed through `FeatureExtractor.process` in 256-sample blocks at 48 kHz as live
(an estimated beat at block start + `beat_offset_s`):
- beat F-measure (mir_eval, +-70 ms, no trimming of the first seconds: locking counts);
- lock time: from the first true beat to the first estimated beat that starts a run of four
  correct ones (within 70 ms); F after lock: F over the beats after that time;
- tempo within 4 %: share of blocks inside the beat-carrying time whose `tempo_bpm` is within
  4 % of the truth (None counts as wrong), over the whole file and after lock;
- downbeat F (+-70 ms), signed beat error (estimate - truth, matched beats) median and p5/p95;
- beats per second outside the truth (intro) and confidence there;
- the extractor's thread CPU per 256-sample block (median, p99, all files together).

    python benchmarks/beat_eval.py [--split test] [--only NAME] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import audio_eval_set  # noqa: E402

from ganinstrument.sources.audio.features import FeatureExtractor  # noqa: E402

SAMPLE_RATE = 48000
BLOCK = 256
TPB = 480
WINDOW_S = 0.07
SPLIT_SEEDS = {"dev": 7150, "test": 7151}


# -- the music --------------------------------------------------------------------------------
# events: (start_beat, duration_beats, note, velocity, channel); beat 0 = the first bar's one.


def _chord(rng, minor=None):
    root = int(rng.integers(52, 64))
    third = 3 if (rng.random() < 0.5 if minor is None else minor) else 4
    return [root, root + third, root + 7]


def _bass_root(chord):
    return chord[0] - 24


def groove(rng, bars, *, meter=4, style="straight", start_bar=0, pads_only=()):
    """Drums (ch 9), bass (ch 1), chords (ch 2) for `bars` bars from `start_bar`."""
    ev = []
    v = lambda lo, hi: int(rng.integers(lo, hi))  # noqa: E731
    for b in range(bars):
        bar = start_bar + b
        t0 = bar * meter
        chord = _chord(rng)
        if b in pads_only:
            for n in chord:
                ev.append((t0, meter * 0.98, n, v(50, 70), 3))
            ev.append((t0, meter * 0.95, _bass_root(chord), v(50, 70), 1))
            continue
        if style == "waltz":
            ev.append((t0, 0.3, 36, v(100, 120), 9))
            ev.append((t0, 0.9, _bass_root(chord), v(90, 110), 1))
            for q in (1, 2):
                ev.append((t0 + q, 0.2, 42, v(50, 80), 9))
                for n in chord:
                    ev.append((t0 + q, 0.6, n, v(45, 70), 2))
            if b % 4 == 0:
                ev.append((t0, 1.0, 49, 100, 9))
            continue
        if style == "piano":
            ev.append((t0, meter * 0.9, _bass_root(chord) + 12, v(80, 100), 2))
            for q in range(meter):
                for n in chord:
                    ev.append((t0 + q, 0.8, n, v(55, 75) + (15 if q == 0 else 0), 2))
            t = 0.0
            while t < meter:
                d = float(rng.choice([0.5, 1.0, 1.0, 1.5]))
                if rng.random() < 0.8:
                    ev.append((t0 + t, d * 0.9, int(rng.integers(67, 84)), v(60, 95), 2))
                t += d
            continue
        crash = b % 4 == 0
        if style == "straight":
            for q in range(meter):
                if q in (0, 2) or (q == 3 and rng.random() < 0.3):
                    ev.append((t0 + q + (0.5 if q == 3 else 0), 0.2, 36, v(95, 125), 9))
                if q in (1, 3):
                    ev.append((t0 + q, 0.2, 38, v(95, 125), 9))
                for h in (0.0, 0.5):
                    ev.append((t0 + q + h, 0.1, 42, v(45, 95) if h else v(70, 100), 9))
                ev.append((t0 + q, 0.45, _bass_root(chord) + (12 if q == 2 and rng.random() < 0.5 else 0),
                           v(80, 105), 1))
            for n in chord:
                ev.append((t0, meter * 0.95, n, v(45, 65), 3))
        elif style == "dnb":
            for pos, note in ((0, 36), (2.5, 36), (1, 38), (3, 38)):
                ev.append((t0 + pos, 0.2, note, v(100, 127), 9))
            for e in range(8):
                ev.append((t0 + e * 0.5, 0.1, 42, v(40, 90), 9))
                if rng.random() < 0.15:
                    ev.append((t0 + e * 0.5 + 0.25, 0.1, 38, v(25, 50), 9))
            ev.append((t0, meter * 0.9, _bass_root(chord), v(90, 110), 1))
            if b % 2 == 0:
                for n in chord:
                    ev.append((t0, 2 * meter * 0.95, n, v(40, 60), 3))
        elif style == "swing":
            for q in range(meter):
                ev.append((t0 + q, 0.2, 51, v(60, 90), 9))                     # ride
                if rng.random() < 0.6:
                    ev.append((t0 + q + 2 / 3, 0.15, 51, v(40, 65), 9))         # swung &
                if q in (1, 3):
                    ev.append((t0 + q, 0.1, 42, v(60, 80), 9))                 # hat foot
                if q in (0, 2) and rng.random() < 0.7:
                    ev.append((t0 + q, 0.2, 36, v(55, 80), 9))
                ev.append((t0 + q, 0.9, _bass_root(chord) + int(rng.choice([0, 3, 5, 7, 10])),
                           v(80, 105), 1))                                     # walking bass
            for pos in rng.choice([0.0, 2 / 3, 1 + 2 / 3, 2.0, 2 + 2 / 3, 3 + 2 / 3], 2, replace=False):
                for n in chord:
                    ev.append((t0 + float(pos), 0.5, n, v(50, 75), 2))
            crash = False
        elif style == "synco":
            for pos in (0, 1.5, 2.5):
                ev.append((t0 + pos, 0.2, 36, v(100, 125), 9))
            for pos in (1, 3):
                ev.append((t0 + pos, 0.2, 38, v(100, 125), 9))
            for s in range(16):
                pos = s * 0.25
                if s % 2 == 1 and s % 4 == 2:
                    ev.append((t0 + pos, 0.2, 46, v(80, 110), 9))              # open hat on &
                elif rng.random() < 0.7:
                    ev.append((t0 + pos, 0.1, 42, v(35, 70), 9))
            for pos in (0.5, 1.75, 2.5, 3.5):
                ev.append((t0 + pos, 0.3, _bass_root(chord), v(90, 115), 1))
            for n in chord:
                ev.append((t0 + 3.5, 0.4, n, v(70, 95), 2))                    # anticipated stab
                ev.append((t0 + 1.5, 0.3, n, v(55, 80), 2))
        if crash:
            ev.append((t0, 1.0, 49, 100, 9))
    return ev


def pads(rng, bars, meter=4, start_bar=0):
    """Beatless: long pads with soft attacks, changing off the bar lines."""
    ev = []
    t = start_bar * meter + 0.0
    end = (start_bar + bars) * meter
    while t < end:
        d = float(rng.uniform(3.0, 7.0))
        for n in _chord(rng):
            ev.append((t + float(rng.uniform(0, 0.7)), min(d, end - t) * 1.1, n, int(rng.integers(35, 55)), 3))
        t += d
    return ev


def pieces(rng):
    """name -> dict(tempo=[(beat, bpm)], meter, events, programs, beats_from (beat index where
    the truth starts), noise (SNR dB or None))."""
    prog = {9: 0, 1: 33, 2: 0, 3: 89}
    out = {}

    def bars_for(bpm, meter=4, seconds=30.0):
        return max(4, int(round(seconds * bpm / 60.0 / meter)))

    for bpm in (80, 100, 128, 150, 180):
        out[f"straight_{bpm}"] = dict(tempo=[(0, bpm)], meter=4,
                                      events=groove(rng, bars_for(bpm)), programs=prog)
    out["dnb_174"] = dict(tempo=[(0, 174)], meter=4, events=groove(rng, bars_for(174), style="dnb"),
                          programs={9: 0, 1: 38, 3: 89})
    out["swing_110"] = dict(tempo=[(0, 110)], meter=4, events=groove(rng, bars_for(110), style="swing"),
                            programs={9: 0, 1: 32, 2: 0})
    out["synco_120"] = dict(tempo=[(0, 120)], meter=4, events=groove(rng, bars_for(120), style="synco"),
                            programs={9: 0, 1: 38, 2: 4})
    out["step_100_140"] = dict(tempo=[(0, 100), (36, 140)], meter=4,
                               events=groove(rng, 9) + groove(rng, 10, start_bar=9), programs=prog)
    ramp = [(4 * 2 + i, 90 + 40 * i / 47) for i in range(48)]
    out["ramp_90_130"] = dict(tempo=[(0, 90)] + ramp + [(56, 130)], meter=4,
                              events=groove(rng, 20), programs=prog)
    out["intro_124"] = dict(tempo=[(0, 124)], meter=4, beats_from=16,
                            events=pads(rng, 4) + groove(rng, 12, start_bar=4), programs=prog)
    out["breakdown_126"] = dict(tempo=[(0, 126)], meter=4,
                                events=groove(rng, 20, pads_only=range(8, 12)), programs=prog)
    out["waltz_150"] = dict(tempo=[(0, 150)], meter=3, events=groove(rng, bars_for(150, 3), meter=3, style="waltz"),
                            programs={9: 0, 1: 32, 2: 0})
    out["piano_84"] = dict(tempo=[(0, 84)], meter=4, events=groove(rng, bars_for(84), style="piano"),
                           programs={2: 0})
    for base in ("straight_128", "synco_120", "dnb_174"):
        out[f"{base}_pink10"] = dict(out[base], noise=10.0, copy_of=base)
    return out


def beat_seconds(tempo, beats):
    """Seconds of beat positions (from beat 0) under a piecewise-constant tempo map."""
    tempo = sorted(tempo)
    edges = [b for b, _ in tempo]
    bpms = [t for _, t in tempo]
    starts = [0.0]
    for i in range(1, len(edges)):
        starts.append(starts[-1] + (edges[i] - edges[i - 1]) * 60.0 / bpms[i - 1])
    beats = np.asarray(beats, dtype=float)
    i = np.searchsorted(edges, beats, side="right") - 1
    i = np.clip(i, 0, len(edges) - 1)
    return np.asarray(starts)[i] + (beats - np.asarray(edges)[i]) * 60.0 / np.asarray(bpms)[i]


def write_midi(path: Path, piece) -> None:
    """Type-0 MIDI with the tempo map, one beat of lead-in."""
    import mido

    lead = TPB
    msgs = []
    for start, dur, note, vel, ch in piece["events"]:
        on = int(round(start * TPB)) + lead
        off = on + max(1, int(round(dur * TPB)))
        msgs.append((on, 1, mido.Message("note_on", channel=ch, note=int(note), velocity=int(vel))))
        msgs.append((off, 0, mido.Message("note_off", channel=ch, note=int(note), velocity=0)))
    for beat, bpm in piece["tempo"]:
        tick = lead + int(round(beat * TPB)) if beat > 0 else 0
        msgs.append((tick, -1, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))))
    programs = {ch: p for ch, p in piece["programs"].items() if ch != 9}  # (9: the drum kit)
    audio_eval_set.save_track(path, [], programs, msgs, TPB)


def build(split: str = "test", cache=None) -> list[dict]:
    import soundfile as sf

    root = Path(cache or Path.home() / ".cache" / "ganinstrument" / "beat-eval") / split
    root.mkdir(parents=True, exist_ok=True)
    index = root / "index.json"
    if index.exists():
        return json.loads(index.read_text())
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    entries, clean = [], {}
    for name, p in pieces(rng).items():
        meter = p["meter"]
        last = max(s + 0.0 for s, *_ in p["events"])
        n_beats = int(np.floor(last)) + 1
        n_beats = int(np.ceil(n_beats / meter) * meter)
        idx = np.arange(p.get("beats_from", 0), n_beats)
        if "copy_of" in p:
            x = audio_eval_set.add_noise(clean[p["copy_of"]], p["noise"], rng)
        else:
            midi = root / f"{name}.mid"
            write_midi(midi, p)
            x = audio_eval_set.render(midi, root / f"{name}.wav")
            clean[name] = x
        sf.write(root / f"{name}.wav", x, SAMPLE_RATE, subtype="FLOAT")
        # the MIDI file's beat 0 is the lead-in; the music's beat k is at the map's time k + 1 beat
        tempo = [(0, p["tempo"][0][1])] + [(b + 1, t) for b, t in p["tempo"] if b > 0]
        secs = beat_seconds(tempo, idx + 1.0)
        bpm_at = 60.0 / np.diff(beat_seconds(tempo, np.append(idx + 1.0, idx[-1] + 2.0)))
        entries.append(dict(name=name, path=str(root / f"{name}.wav"), beats=secs.tolist(),
                            downbeats=secs[idx % meter == 0].tolist(), bpm=bpm_at.tolist(),
                            meter=meter, noise=p.get("noise")))
    index.write_text(json.dumps(entries))
    return entries


# -- scoring ----------------------------------------------------------------------------------


def f_measure(ref, est) -> float:
    import mir_eval

    ref, est = np.asarray(ref, float), np.asarray(est, float)
    if ref.size == 0 and est.size == 0:
        return 1.0
    if ref.size == 0 or est.size == 0:
        return 0.0
    return float(mir_eval.onset.f_measure(ref, est, window=WINDOW_S)[0])


def run(path, **kw):
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32")
    fx = FeatureExtractor(sr, BLOCK, **kw)
    times, beats, downs, bpm, conf, cpu = [], [], [], [], [], []
    for i in range(0, x.size, BLOCK):
        c0 = time.thread_time_ns()
        f = fx.process(x[i:i + BLOCK])
        cpu.append((time.thread_time_ns() - c0) / 1e6)
        start = i / sr
        times.append(f.time_s)
        if f.beat:
            beats.append(start + f.beat_offset_s)
            if f.downbeat:
                downs.append(start + f.beat_offset_s)
        bpm.append(np.nan if f.tempo_bpm is None else f.tempo_bpm)
        conf.append(f.beat_confidence)
    return (np.array(times), np.array(beats), np.array(downs), np.array(bpm), np.array(conf),
            np.array(cpu))


def score(e, times, beats, downs, bpm, conf):
    ref = np.array(e["beats"])
    period = np.diff(ref).mean() if ref.size > 1 else 0.5
    # the music's end: beats coasting on after the last note are not scored
    beats = beats[beats <= ref[-1] + 0.5 * period]
    downs = downs[downs <= ref[-1] + 0.5 * period]
    # lock: the first estimate that starts four correct estimates in a row
    ok = np.array([np.min(np.abs(ref - b)) <= WINDOW_S for b in beats]) if beats.size else np.zeros(0, bool)
    lock_i = next((i for i in range(len(ok) - 3) if ok[i:i + 4].all()), None)
    lock_t = beats[lock_i] if lock_i is not None else np.inf
    after = lock_t - 0.5 * period
    matches = []
    if beats.size:
        import mir_eval
        matches = mir_eval.util.match_events(ref, beats, WINDOW_S)
    err = np.array([beats[j] - ref[i] for i, j in matches])
    # tempo truth per block: the bpm of the beat interval the block ends in
    k = np.searchsorted(ref, times, side="right") - 1
    inside = (k >= 0) & (times < ref[-1])
    truth = np.array(e["bpm"])[np.clip(k, 0, len(ref) - 1)]
    good = np.abs(bpm / truth - 1.0) <= 0.04
    good = np.where(np.isnan(bpm), False, good)
    before = times < ref[0] - period
    return dict(
        F=f_measure(ref, beats),
        F_lock=f_measure(ref[ref >= after], beats[beats >= after]) if np.isfinite(lock_t) else 0.0,
        lock=lock_t - ref[0],
        tempo=float(good[inside].mean()),
        tempo_lock=float(good[inside & (times >= lock_t)].mean()) if np.isfinite(lock_t) else 0.0,
        down=f_measure(e["downbeats"], downs),
        err=err,
        spurious=float(np.sum(beats < ref[0] - WINDOW_S) / max(1e-9, ref[0])) if ref[0] > 2 else np.nan,
        conf_before=float(conf[before].mean()) if before.any() and ref[0] > 2 else np.nan,
    )


def main():
    ap = argparse.ArgumentParser(description="Live beat tracker figures")
    ap.add_argument("--split", default="test", choices=sorted(SPLIT_SEEDS))
    ap.add_argument("--cache", default=None)
    ap.add_argument("--only", default=None)
    ap.add_argument("--set", nargs="*", default=[], help="FeatureExtractor keyword=value")
    args = ap.parse_args()
    kw = {}
    for p in args.set:
        key, val = p.split("=", 1)
        kw[key] = float(val)
    entries = build(args.split, args.cache)
    if args.only:
        entries = [e for e in entries if args.only in e["name"]]
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
          f"python {platform.python_version()}; split {args.split}; load {os.getloadavg()[0]:.2f}")
    print(f"{'file':22s} {'F':>6s} {'F_lock':>6s} {'lock_s':>6s} {'tempo':>6s} {'t_lock':>6s} "
          f"{'downF':>6s} {'err50':>6s} {'err5':>6s} {'err95':>6s}  extra")
    rows, cpus, errs = [], [], []
    for e in entries:
        times, beats, downs, bpm, conf, cpu = run(e["path"], **kw)
        s = score(e, times, beats, downs, bpm, conf)
        rows.append(s)
        cpus.append(cpu)
        errs.append(s["err"])
        er = s["err"] * 1000 if s["err"].size else np.array([np.nan])
        extra = ""
        if np.isfinite(s["spurious"]):
            extra = f"intro: {s['spurious']:.2f} beats/s, conf {s['conf_before']:.2f}"
        last = bpm[~np.isnan(bpm)]
        extra += f" bpm(end) {last[-1]:.1f}" if last.size else " bpm None"
        print(f"{e['name']:22s} {s['F']:6.3f} {s['F_lock']:6.3f} {s['lock']:6.2f} {s['tempo']:6.3f} "
              f"{s['tempo_lock']:6.3f} {s['down']:6.3f} {np.median(er):+6.1f} {np.percentile(er, 5):+6.1f} "
              f"{np.percentile(er, 95):+6.1f}  {extra}", flush=True)
    er = np.concatenate(errs) * 1000
    cpu = np.concatenate(cpus)
    m = lambda k: float(np.mean([r[k] for r in rows]))  # noqa: E731
    locks = np.array([r["lock"] for r in rows])
    print(f"{'MEAN':22s} {m('F'):6.3f} {m('F_lock'):6.3f} {np.median(locks):6.2f} {m('tempo'):6.3f} "
          f"{m('tempo_lock'):6.3f} {m('down'):6.3f} {np.median(er):+6.1f} {np.percentile(er, 5):+6.1f} "
          f"{np.percentile(er, 95):+6.1f}")
    print(f"lock: median {np.median(locks):.2f} s, max {np.max(locks):.2f} s, within 2.0 s "
          f"{np.mean(locks <= 2.0):.0%} of files; signed beat error median {np.median(er):+.1f} ms, "
          f"p5 {np.percentile(er, 5):+.1f} ms, p95 {np.percentile(er, 95):+.1f} ms, |err| p95 "
          f"{np.percentile(np.abs(er), 95):.1f} ms")
    print(f"extractor CPU per {BLOCK}-sample block at 48 kHz (thread time, all files): median "
          f"{np.median(cpu):.3f} ms, p99 {np.percentile(cpu, 99):.3f} ms, max {cpu.max():.3f} ms "
          f"({cpu.size} blocks)")


if __name__ == "__main__":
    main()
