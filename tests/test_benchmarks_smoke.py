"""Every benchmark script runs, with tiny settings, and prints the figures it promises.

Each test runs the real script as a user does (`python benchmarks/X.py ...`, in its own
process) and reads its output: the headings and column names it documents, and numbers where
its figures go. The figures' values are the benchmark's business (no timed assertions here);
what is checked is that a refactor has not broken the script or emptied a figure. The JACK
benchmarks start their own private server (ganinstrument/testing/jack.py, as the suite does).

Not here: benchmarks/gpu_checks.sh, whose DEVICE=cpu dry run builds full-size networks and
runs minute-long engine benchmarks (many minutes on a CPU), and the FluidSynth-rendered part
of the audio evaluation set (the Debian soundfont is 120 MB): the audio benchmarks run on the
set's numpy tones (`--tones-only`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
NUM = r"[-+]?\d+(?:\.\d+)?"


def run_bench(script: str, *args: str, timeout: float = 120.0) -> str:
    """Run benchmarks/<script> with `args`; it must exit 0. Returns its stdout."""
    # In a session of its own: on a timeout the whole group goes (a private jackd included)
    proc = subprocess.Popen([sys.executable, str(BENCH / script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=BENCH.parent, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{script} did not finish within {timeout:g} s")
    assert proc.returncode == 0, (f"{script} exited with {proc.returncode}\n--- stdout\n"
                                  f"{stdout[-4000:]}\n--- stderr\n{stderr[-4000:]}")
    return stdout


def line(out: str, pattern: str) -> re.Match:
    """The first match of `pattern` (a regex) in `out`'s lines, or a failure that shows `out`."""
    for text in out.splitlines():
        match = re.search(pattern, text)
        if match:
            return match
    pytest.fail(f"no line matches {pattern!r} in:\n{out}")


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(NUM, text)]


def test_generator_prints_speed_and_flops():
    out = run_bench("generator.py", "--configs", "sg2-256-paper", "--device", "cpu",
                    "--warmup", "0", "--repeats", "1")
    assert float(line(out, rf"fp32 matmul throughput .*: ({NUM}) GFLOP/s").group(1)) > 0
    header = line(out, r"^config\s").string.split()
    assert header == ["config", "ms/frame", "fps", "GFLOP", "GFLOP/s", "of", "matmul", "ref", "GFLOP",
                      "ref", "of", "mm", "n"]
    row = line(out, r"^sg2-256-paper\s").string.split()
    ms, fps, gflop, achieved = map(float, row[1:5])
    assert ms > 0 and gflop > 0 and achieved > 0 and row[5].endswith("%")
    assert fps == pytest.approx(1e3 / ms, rel=0.05)  # both from the one measured time
    assert achieved == pytest.approx(gflop / ms * 1e3, rel=0.05)
    assert row[-1] == "1"  # one timed frame, as asked


def test_scene_prints_every_case_against_a_frame():
    out = run_bench("scene.py", "--configs", "demo", "--device", "cpu", "--repeats", "2",
                    "--frames", "1", "--warmup", "0")
    summary = line(out, rf"^demo: ({NUM}) M blended values in (\d+) groups, (\d+) edits; Bender setup")
    assert float(summary.group(1)) > 0 and int(summary.group(2)) > 0 and int(summary.group(3)) > 0
    assert float(line(out, rf"generator frame:\s+({NUM}) ms").group(1)) > 0
    for case in ("idle", r"one group \(\w+\)", "all groups", "edits", "everything"):
        row = line(out, rf"^\s+{case}\s+({NUM}) ms\s+({NUM})% of a frame")
        assert float(row.group(1)) >= 0 and float(row.group(2)) >= 0


def test_engine_through_private_jack_prints_pacing_latency_and_sinks():
    out = run_bench("engine.py", "--configs", "demo", "--device", "cpu", "--minutes", "0.05",
                    "--sinks", "null,record")
    assert line(out, r"^JACK: private jackd 'ganinstrument-bench-\d+' \(dummy driver")
    line(out, r"^\[demo on cpu, \d+x\d+, 0.05 min, 200 CC/s through JACK, clicks at 120 BPM, "
              r"sinks null, record\]")
    frames = line(out, rf"frames (\d+) in ({NUM}) s \(rendered (\d+), errors (\d+)\); fps ({NUM})")
    assert int(frames.group(1)) > 0 and float(frames.group(5)) > 0 and frames.group(4) == "0"
    assert line(out, rf"frame time \(drain..submit\): p50 {NUM}, p99 {NUM}, max {NUM} ms \(n=\d+\)")
    assert line(out, rf"frame interval: p50 {NUM}, p99 {NUM}, max {NUM} ms .*jitter \(std\) {NUM} ms")
    phases = line(out, rf"median frame: input ({NUM}), render ({NUM}), submit ({NUM}) ms")
    assert float(phases.group(2)) > 0  # the engine's own phase times reach the benchmark
    midi = line(out, rf"MIDI event -> frame submitted: p50 {NUM}, .*sent (\d+), received (\d+), "
                     rf"dropped by our queue (\d+), lost in JACK (-?\d+)")
    assert int(midi.group(1)) > 0 and int(midi.group(2)) > 0  # controls went through JACK
    assert line(out, r"onset \(low band\) -> frame submitted: ")
    assert line(out, r"JACK xruns during the run \d+ \(cycles our MIDI client had not finished: \d+\)")
    for sink in ("null", "record"):
        row = line(out, rf"sink {sink}\s*: submit\(\) on the engine thread p50 {NUM}, .* us \(n=\d+\); "
                        rf"write on its thread p50 {NUM}, .*; submitted (\d+), written (\d+), dropped \d+, "
                        rf"errors (\d+)")
        assert int(row.group(1)) > 0 and int(row.group(2)) > 0
    assert numbers(line(out, r"RSS: before building the instrument").string)


def test_midi_through_private_jack_prints_latency_and_flood():
    out = run_bench("midi.py", "--probes", "10", "--gap-ms", "5", "10", "--settle-s", "2",
                    "--seconds", "0.3", "--rate", "2000")
    assert line(out, r"^JACK: private jackd 'ganinstrument-bench-\d+' .*controller in its own process")
    for phase in (r"\[warm-up\]", r"\[latency, engine at 60 fps\]",
                  r"\[latency, continuous drain \(poll every 0.5 ms\)\]"):
        assert line(out, phase)
    probes = line(out, r"probes sent 10, drained (\d+), in order \d+/\d+, moved the target (\d+)/")
    assert int(probes.group(1)) > 0 and int(probes.group(2)) > 0  # CC 24 reached psi, and was seen
    assert line(out, rf"event -> state \(send -> visible\): +p50 {NUM}, p90 {NUM}, p99 {NUM}")
    assert line(out, rf"JACK transport \(send -> callback\): +p50 {NUM}")
    assert line(out, rf"queue \+ route \(callback -> visible\): p50 {NUM}")
    assert line(out, r"^\[flood 2000 msg/s for 0.3 s over CC 0..31, engine at 60 fps\]")
    flood = line(out, r"received (\d+) \(.*\), dropped by our queue (\d+) \(queue_size 8192\), "
                      r"ignored \d+, malformed \d+, lost in JACK -?\d+")
    assert int(flood.group(1)) > 0
    assert int(line(out, r"^  sent (\d+) in ").group(1)) == 600
    assert line(out, rf"routed \d+ events .* -> \d+ updates .*frames \d+ \({NUM}/s\)")
    assert line(out, rf"drain\+route\+apply per frame p50 {NUM}")


def test_audio_eval_set_builds_the_tones(tmp_path):
    out = run_bench("audio_eval_set.py", "--tones-only", "--cache", str(tmp_path))
    rows = {m.group(1): (m.group(2), int(m.group(3)), m.group(4)) for m in
            re.finditer(r"^(\S+)\s+(\S+)\s+onsets\s+(\d+)\s+pitch (yes|-)$", out, re.M)}
    assert set(rows) == {"tones_steps", "tones_glide", "tones_steps_pink20", "tones_steps_pink6"}
    assert rows["tones_steps"] == ("tones", 24, "yes") and rows["tones_steps_pink6"][0] == "noise6"
    assert sorted(p.name for p in (tmp_path / "test-tones").glob("*.wav")) == sorted(f"{n}.wav" for n in rows)


def test_audio_features_prints_its_table_on_the_tones(tmp_path):
    out = run_bench("audio_features.py", "--tones-only", "--cache", str(tmp_path), "-q")
    header = line(out, r"^category\s").string.split()
    assert header == ["category", "F", "P", "R", "onsets", "d_med", "d_p90", "RPA", "RPAc", "oct",
                      "VFA", "blocks", "cpu50", "cpu99"]
    for category in ("tones", "noise20", "noise6", "clean", "noisy", "overall"):
        row = line(out, rf"^{category}\s").string.split()
        values = [float(v) for v in row[1:]]
        assert len(values) == 13 and 0 <= values[0] <= 1 and values[3] > 0  # F, onsets
    assert line(out, rf"CPU per 256-sample block at 48 kHz: median {NUM} ms, p99 {NUM} ms, max {NUM} ms")


def test_startup_times_null_and_preview():
    out = run_bench("startup.py", "--outputs", "null,preview", "--runs", "1")
    assert line(out, r"^output\s+model\s+ready\s+first frame\s+\(s after launch: median / max of 1\)")
    for output in ("null", "preview"):
        cells = line(out, rf"^{output}\s").string.split()[1:]
        assert len(cells) == 3 and all(re.fullmatch(rf"{NUM}/{NUM}", c) for c in cells), cells
        assert [float(c.split("/")[0]) for c in cells] == sorted(float(c.split("/")[0]) for c in cells)


def test_beat_prints_the_clock_lfos_routes_midi_clock_and_quantizer():
    out = run_bench("beat.py", "--frames", "200")
    assert line(out, r"^machine: .*\d+ CPUs")
    cost = rf"p50 +({NUM}) us +p99 +({NUM}) us +\(n=(\d+)\)"
    for heading in (r"^beat clock: BeatSource\.read\(\)", r"^LFOs: LfoSource\.read\(\)",
                    r"^modulation routes: Modulation\.feed", r"^MIDI clock in: MidiClock\.feed\(\)",
                    r"^quantizer: Quantizer\.due\(\)"):
        assert line(out, heading)
    rows = [r"by hand \(values from the state\)", "following MIDI clock", "1 LFO ", "8 LFOs", "32 LFOs",
            "1 route on 1 target", "8 routes on 8 targets", r"32 routes on \d+ targets",
            "0 waiting", "1 waiting", "64 waiting"]
    for row in rows:
        m = line(out, rf"^  {row}\s+{cost}")
        assert 0 <= float(m.group(1)) <= float(m.group(2)) and int(m.group(3)) > 0
    assert line(out, r"following MIDI clock .* source midi, ")  # the beat clock did follow the ticks
    for n in (1, 8, 32):
        assert line(out, rf"^  {n} routes? on .* errors 0, frames moved [1-9]")  # the routes moved targets
    for bpm in (90, 128, 174):
        m = line(out, rf"^  {bpm} BPM\s+{cost}  tempo error median ({NUM}), p99 ({NUM}), max ({NUM}) BPM; "
                      rf"tempo changes seen \d+")
        assert float(m.group(4)) < 1.0  # the clock found the tempo (a sanity figure, not a speed)
    assert int(line(out, r"^  64 waiting .* fired (\d+)").group(1)) > 0


def test_beatgrid_eval_prints_its_figures_on_the_synthesised_tracks():
    out = run_bench("beatgrid_eval.py", "--no-fluidsynth", "--seeds", "1", "--timing-seconds", "10")
    assert line(out, r"^-- synthesised drum tracks")
    ok, n = (int(v) for v in line(out, r"^tempo within 2 %: (\d+)/(\d+);").groups())
    assert n >= 6 and ok == n  # (one seed of each track: all found)
    assert line(out, rf"^-- 10 s at 48 kHz mono: {NUM} s best of 3") and line(out, r"^-- 10 s at 48 kHz stereo")


def test_directions_prints_sefa_per_layer_range_and_ganspace():
    out = run_bench("directions.py", "--configs", "demo", "--repeats", "1", "--samples", "2000")
    assert line(out, r"^machine: .* cores, python")
    header = line(out, r"^config\s+num_ws\s+w_dim\s+all\s+coarse\s+middle\s+fine")
    assert "GANSpace 2000 w" in header.string
    row = line(out, rf"^demo\s+14\s+64\s+({NUM})\s+({NUM})\s+({NUM})\s+({NUM})\s+({NUM}) s \(([\d,]+) w/s\)")
    assert all(float(row.group(i)) > 0 for i in range(1, 6))


def test_bends_prints_every_transform_against_an_unbent_frame():
    out = run_bench("bends.py", "--configs", "demo", "--device", "cpu", "--repeats", "1")
    head = line(out, rf"^demo: unbent frame ({NUM}) ms; update\(\) with every bend neutral ({NUM}) us; "
                     rf"channel clusters ({NUM}) s \(once\); bends on (\S+):")
    assert float(head.group(1)) > 0 and float(head.group(2)) > 0 and float(head.group(3)) > 0
    from ganinstrument.scene.activation_bends import TRANSFORMS

    for t in TRANSFORMS:
        row = line(out, rf"^\s+{t}\s+({NUM})\s+({NUM})\s+({NUM})\s+({NUM})$")
        assert float(row.group(1)) > 0 and float(row.group(3)) > 0
