"""The beat clock (tap, tempo, resync, nudge, half/double), LFOs locked to it, quantized
actions, and the clock in --log-params: issue 15's first parts."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest

from ganinstrument.commands.cli import main
from ganinstrument.commands.perform import beat_source, parse_tempo
from ganinstrument.common.clock import FakeClock
from ganinstrument.common.errors import GanInstrumentError
from ganinstrument.common.events import ControlEvent, ParamUpdate
from ganinstrument.common.reporting import Quiet
from ganinstrument.engine.loop import Engine
from ganinstrument.instrument.facade import Instrument
from ganinstrument.mapping import MappingError, parse_mapping
from ganinstrument.mapping.parse_signals import parse_rate
from ganinstrument.modulation.beat import BeatSource
from ganinstrument.modulation.beat_clock import BeatClock
from ganinstrument.modulation.lfo import LfoSource, shape_value
from ganinstrument.sources.audio.input import write_wav

FPS = 60  # at 120 BPM a beat is exactly 30 frames


# -- the clock itself ---------------------------------------------------------------------------
def test_a_new_tempo_keeps_the_beat_where_it_is():
    clock = BeatClock(120.0)
    assert clock.beat_at(1.0) == 2.0
    clock.set_tempo(1.0, 60.0)
    assert clock.beat_at(1.0) == 2.0 and clock.beat_at(2.0) == 3.0
    clock.scale_tempo(2.0, 2.0)
    assert clock.bpm == 120.0 and clock.beat_at(2.5) == 4.0
    clock.scale_tempo(2.5, 0.5)
    assert clock.bpm == 60.0 and clock.beat_at(3.5) == 5.0
    clock.set_tempo(3.5, 1e9)
    assert clock.bpm == 300.0  # clamped
    with pytest.raises(ValueError):
        clock.set_tempo(3.5, math.nan)


def test_taps_set_the_tempo_and_put_the_beat_on_the_last_tap():
    clock = BeatClock(120.0)
    assert clock.tap(10.0) is None  # one tap says nothing yet
    assert clock.tap(10.4) == pytest.approx(150.0)
    assert clock.tap(10.8) == pytest.approx(150.0) and clock.tap(11.21) == pytest.approx(150.0)  # (the median)
    assert clock.beat_at(11.21) == round(clock.beat_at(11.21))  # the last tap is on a beat
    assert clock.tap(20.0) is None  # a long pause starts again
    assert clock.bpm == pytest.approx(150.0)


def test_resync_nudge_and_meter():
    clock = BeatClock(120.0, beats_per_bar=4)
    clock.resync(3.1)  # beat 6.2: the nearest bar line is beat 8, which moves here
    assert clock.beat_at(3.1) == 8.0
    clock.resync(3.5)  # beat 8.8: bar line 8 again
    assert clock.beat_at(3.5) == 8.0
    clock.nudge(3.5, 1 / 32)
    assert clock.beat_at(3.5) == 8.0 + 1 / 32
    clock.set_meter(3)
    assert clock.at(3.5).bar == pytest.approx((8 + 1 / 32) / 3)
    clock.set_meter(99)
    assert clock.beats_per_bar == 16


def test_the_source_gives_beats_and_downbeats_with_the_time_they_fell():
    clock = FakeClock()
    source = BeatSource(clock, BeatClock(120.0, 4))
    beats, downbeats = [], []
    for k in range(4 * 30 * 2 + 1):  # two bars at 60 fps
        clock.set(k / FPS)
        reading = source.read()
        beats += [e.time_s for e in reading.events if e.name == "beat"]
        downbeats += [e.time_s for e in reading.events if e.name == "downbeat"]
        assert 0.0 <= reading.values["beat_phase"] < 1.0 and 0.0 <= reading.values["bar_phase"] < 1.0
    assert beats == pytest.approx([n * 0.5 for n in range(9)])
    assert downbeats == pytest.approx([0.0, 2.0, 4.0])
    assert "120.0 BPM (tap)" in source.hud_lines()["tempo"]


# -- LFOs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, at0, half", [("sine", 1.0, 0.0), ("triangle", 1.0, 0.0), ("saw_up", 0.0, 0.5),
                                              ("saw_down", 1.0, 0.5), ("square", 1.0, 0.0)])
def test_the_shapes_start_their_cycle_where_the_docs_say(shape, at0, half):
    assert shape_value(shape, 3.0) == pytest.approx(at0) and shape_value(shape, 3.5) == pytest.approx(half)


def test_random_shapes_are_the_same_every_run_and_change_per_cycle():
    held = [shape_value("sample_hold", c + 0.3, seed=7) for c in range(50)]
    assert held == [shape_value("sample_hold", c + 0.9, seed=7) for c in range(50)]  # held through a cycle
    assert len(set(held)) == 50 and all(0.0 <= v < 1.0 for v in held)
    smooth = [shape_value("smooth_random", c / 10, seed=7) for c in range(100)]
    assert max(abs(a - b) for a, b in zip(smooth, smooth[1:])) < 0.2  # no jumps
    assert smooth[10] == pytest.approx(held[1])  # it passes through each cycle's value


@pytest.mark.parametrize("raw, beats", [(4, 4.0), ("1/4", 1.0), ("1/8.", 0.75), ("1/8t", 1 / 3), ("1/1", 4.0),
                                        ("1/16t", 1 / 6)])
def test_rates_are_beats_or_note_values(raw, beats):
    assert parse_rate(raw) == {"rate_beats": pytest.approx(beats)}


@pytest.mark.parametrize("raw", ["1/32", 65, "x", "1/0", True, "0 hz", "60 hz", "1/4 hz", "nan", None, "0 bars"])
def test_rates_out_of_range_or_malformed_are_refused(raw):
    assert parse_rate(raw) is None


MAPPING = """\
schema_version: 1
bindings:
  - {note: 60, action: seed.next, quantize: beat}
  - {note: 61, action: seed.next, quantize: bar}
  - {note: 62, action: tempo.tap}
lfos:
  - {name: sway, shape: sine, rate: 1}
  - {name: slow, shape: triangle, rate: 2 bars}
modulation:
  - {feature: lfo.sway, target: z.0, depth: 2.0}
"""


class Script(Quiet):
    """MIDI notes at given frames."""

    def __init__(self, clock, by_frame):
        self.clock, self.by_frame, self.frame = clock, by_frame, 0

    def drain(self):
        now = self.clock.now()
        out = [ControlEvent("note_on", 0, n, 100.0, now, "pads") for n in self.by_frame.get(self.frame, ())]
        self.frame += 1
        return out


def _play(tmp_path, by_frame, frames, keys=None, draw=False):
    """The live engine as perform builds it (beat clock, LFOs) on a fake clock at 60 fps,
    drawing nothing unless `draw` (then --log-params rows are written too); returns the seed
    target and a row per frame: the values played, the clock's tempo and beat."""
    path = tmp_path / "pads.yaml"
    path.write_text(MAPPING)
    clock = FakeClock()
    inst = Instrument("demo", device="cpu")
    controls = inst.use_mapping(str(path), clock)
    beat = beat_source("120", inst, clock)
    engine = Engine(inst, router=controls.router, controls=[Script(clock, by_frame)], beat=beat,
                    modulation=[LfoSource(controls.mapping.lfos, clock, beat.beat)], clock=clock, fps=FPS,
                    log_params=tmp_path / "values.jsonl", draw=draw, trim_heap_s=None)
    seeds, rows = [], []
    for k in range(frames):
        clock.set(k / FPS)
        for action in (keys or {}).get(k, ()):
            engine.key_action(action)
        engine.frame()
        seeds.append(inst.state.target("seed"))
        rows.append({"t": clock.now(), "values": dict(inst.last_values),
                     "clock": {"bpm": beat.now.bpm, "beat": beat.now.beat, "source": beat.now.source}})
    assert engine.close()
    return seeds, rows


def test_a_one_beat_lfo_has_the_beats_period_and_peaks_on_the_beat(tmp_path):
    _, rows = _play(tmp_path, {}, 4 * 30 + 1)
    z = np.array([r["values"]["z.0"] for r in rows])
    peaks = [k for k in range(1, len(z) - 1) if z[k] >= z[k - 1] and z[k] > z[k + 1]] + [0]
    peak_times = sorted(rows[k]["t"] for k in peaks)
    assert np.diff(peak_times) == pytest.approx([0.5] * 3, rel=0.01)  # 120 BPM: 0.5 s a beat
    for k in peaks:  # on the beat (phase 0) to 2 % of a beat
        phase = rows[k]["clock"]["beat"] % 1.0
        assert min(phase, 1.0 - phase) <= 0.02
    assert rows[15]["values"]["z.0"] == pytest.approx(0.0, abs=1e-9)  # (half a beat: the sine's floor)
    assert rows[30]["values"]["z.0"] == pytest.approx(2.0)  # (on the beat: depth * 1)


def test_log_params_rows_carry_the_clock(tmp_path):
    _play(tmp_path, {}, 8, draw=True)
    rows = [json.loads(x) for x in (tmp_path / "values.jsonl").read_text().splitlines()]
    assert [r["clock"] for r in rows[6:]] == [
        {"bpm": 120.0, "beat": pytest.approx(k / 30), "source": "tap", "t_host_us": round(k / FPS * 1e6)}
        for k in (6, 7)]


def test_a_quantized_action_waits_for_its_beat_or_its_bar(tmp_path):
    # frame 69 is beat 2.3: a beat-quantized seed.next fires on beat 3 (frame 90), a
    # bar-quantized one on the next bar line (beat 4, frame 120)
    seeds, _ = _play(tmp_path, {69: [60], 70: [61]}, 130)
    assert seeds[89] == seeds[0] and seeds[90] == seeds[0] + 1
    assert seeds[119] == seeds[0] + 1 and seeds[120] == seeds[0] + 2


def test_taps_from_a_pad_or_a_key_set_the_tempo(tmp_path):
    # taps 24 frames apart at 60 fps: 0.4 s, 150 BPM
    _, rows = _play(tmp_path, {10: [62], 34: [62]}, 80, keys={58: ["tempo.tap"]})
    assert rows[9]["clock"]["bpm"] == 120.0
    assert rows[35]["clock"]["bpm"] == pytest.approx(150.0) and rows[35]["values"]["tempo.bpm"] == pytest.approx(150.0)
    assert rows[58]["clock"]["beat"] == pytest.approx(round(rows[58]["clock"]["beat"]))  # the tap is on a beat


# -- mappings, the command line, render ----------------------------------------------------------
def test_lfo_and_quantize_mistakes_are_found_with_their_lines():
    text = textwrap.dedent("""\
        schema_version: 1
        bindings:
          - {cc: 1, target: psi, quantize: beat}
          - {note: 60, action: seed.next, quantize: 3bars}
        lfos:
          - {name: sway, rate: 1/32}
          - {name: Sway, rate: 1}
          - {name: ok, shape: wobble}
          - {name: ok2, rate: 2}
          - {name: ok2, rate: 2}
        modulation:
          - {feature: lfo.swat, target: psi}
        """)
    registry = Instrument("demo", device="cpu").registry
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml", registry)
    found = {(p.line, p.message.split(":")[0]) for p in info.value.problems}
    assert {line for line, _ in found} == {3, 4, 6, 7, 8, 10, 12}, info.value.problems
    message = str(info.value)
    assert "quantize applies to actions" in message and "rate must be beats" in message
    assert "is used twice" in message and "unknown feature 'lfo.swat'" in message
    assert "did you mean 'lfo.sway'?" not in message  # (sway was refused: only ok2 is declared)


def test_perform_says_a_bad_tempo_in_one_line():
    assert parse_tempo("128") == ("tap", 128.0) and parse_tempo(None) == ("auto", None)
    assert parse_tempo(" Link ") == ("link", None)
    for bad in ("fast", "0", "1000", "nan", "links"):
        with pytest.raises(GanInstrumentError) as info:
            parse_tempo(bad)
        assert "--tempo" in str(info.value) and "\n" not in str(info.value)


def test_a_render_locks_its_lfo_to_the_beat_grid(tmp_path):
    """render --bpm 90 --beat-offset 0.2 with a 2-beat LFO: the LFO's peaks fall on every second
    beat of that grid (beat k at 0.2 + k * 2/3 s), on the frame that holds it."""
    mapping = tmp_path / "m.yaml"
    mapping.write_text("schema_version: 1\nlfos:\n  - {name: two, rate: 2}\n"
                       "modulation:\n  - {feature: lfo.two, target: z.0, depth: 1.0}\n")
    wav = tmp_path / "quiet.wav"
    write_wav(wav, np.zeros(3 * 48000, np.float32), 48000)
    log = tmp_path / "values.jsonl"
    assert main(["render", "--audio", str(wav), "--mapping", str(mapping), "--bpm", "90", "--beat-offset", "0.2",
                 "--fps", "30", "--size", "32x32", "--device", "cpu", "--out", f"{tmp_path / 'frames'}/",
                 "--log-params", str(log)]) == 0
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    z = [r["values"]["z.0"] for r in rows]
    peaks = [k for k in range(1, len(z) - 1) if z[k] >= z[k - 1] and z[k] > z[k + 1]]
    grid = [0.2 + n * 4 / 3 for n in range(3)]  # every second beat at 90 BPM
    assert [rows[k]["t"] for k in peaks] == [round(round(g * 30) / 30, 6) for g in grid]
    assert all(abs(rows[k]["clock"]["beat"] / 2 - round(rows[k]["clock"]["beat"] / 2)) <= 0.03 for k in peaks)


def test_the_hud_shows_the_tempo_and_what_waits_for_the_beat(tmp_path):
    path = tmp_path / "pads.yaml"
    path.write_text(MAPPING)
    clock = FakeClock()
    inst = Instrument("demo", device="cpu")
    controls = inst.use_mapping(str(path), clock)
    engine = Engine(inst, router=controls.router, controls=[Script(clock, {3: [61]})],
                    beat=beat_source("120", inst, clock), clock=clock, fps=FPS, draw=False, trim_heap_s=None)
    for k in range(5):
        clock.set(k / FPS)
        engine.frame()
    hud = engine.hud_values(clock.now())
    assert hud["tempo"] == "120.0 BPM (tap) ●○○○ bar 1"
    assert hud["pending"] == "seed.next @ beat 4"
    engine.close()


def test_the_beat_follows_midi_clock_start_stop_and_its_tempo():
    """A drum machine's clock (fed as the MIDI reader feeds it): the beat clock takes its tempo,
    lands on beat 0 at a Start, holds at a Stop, and runs on free when the ticks go away."""
    from ganinstrument.sources.midi.clock import MidiClock

    clock = FakeClock()
    midi = MidiClock(now=clock.now)
    source = BeatSource(clock, BeatClock(120.0), midi=midi, mode="auto")
    t, tick = 0.0, 60.0 / 100.0 / 24  # 100 BPM
    clock.set(0.0)
    source.read()
    midi.feed(0xFA, b"", 0.01)  # Start
    readings = []
    for n in range(24 * 8):  # eight beats of ticks, a frame every third tick
        t = 0.01 + n * tick
        midi.feed(0xF8, b"", t)
        if n % 3 == 0:
            clock.set(t)
            readings.append(source.read())
    assert source.now.source == "midi" and source.now.bpm == pytest.approx(100.0, abs=0.5)
    assert readings[-1].values["beats"] == pytest.approx((24 * 8 - 3) / 24, abs=0.1)
    midi.feed(0xFC, b"", t + 0.001)  # Stop: held
    held = source.read().values["beats"]
    for k in range(1, 5):
        midi.feed(0xF8, b"", t + k * tick)  # (ticks go on while stopped)
        clock.set(t + k * tick)
        assert source.read().values["beats"] == pytest.approx(held)
    t += 4 * tick
    midi.feed(0xFA, b"", t + 0.001)  # Start again: bar 1, beat 1
    for k in range(1, 4):
        midi.feed(0xF8, b"", t + k * tick)
    clock.set(t + 3 * tick)
    assert source.read().values["beats"] == pytest.approx(2 / 24, abs=1.5 / 24)
    clock.set(t + 10.0)  # the ticks are gone: free-running at the last tempo
    reading = source.read()
    assert source.now.source == "tap" and reading.values["tempo_bpm"] == pytest.approx(100.0, abs=0.5)


# -- envelopes ------------------------------------------------------------------------------------
ENVELOPES = """\
schema_version: 1
envelopes:
  - {name: hit, trigger: downbeat, decay: 1}
  - {name: swell, trigger: bar 2, attack: 1/4, decay: 500 ms}
  - {name: flash, trigger: onset.low, attack: 100 ms, decay: 100 ms}
modulation:
  - {feature: env.hit, target: z.0, depth: 1.0}
  - {feature: env.swell, target: z.1, depth: 1.0}
  - {feature: env.flash, target: z.2, depth: 1.0}
"""


def test_envelopes_fire_on_their_trigger_and_rise_and_fall_in_time():
    from ganinstrument.modulation.audio import reading_of
    from ganinstrument.modulation.routes import Modulation
    from ganinstrument.sources.audio.pipeline import OnsetEvent

    inst = Instrument("demo", device="cpu")
    mapping = parse_mapping(ENVELOPES, "env.yaml", inst.registry)
    mod = Modulation(mapping.modulation, inst.registry, mapping.signals(), mapping.envelopes)
    assert mod.warnings == []
    clock = FakeClock()
    beat = BeatSource(clock, BeatClock(120.0, 4))
    z = {0: [], 1: [], 2: []}
    for k in range(4 * 4 * 30 + 1):  # four bars at 60 fps, 120 BPM: a bar is 120 frames
        clock.set(k / FPS)
        mod.feed(beat.read())
        if k == 300:  # an onset in the low band, at frame 300
            mod.feed(reading_of(None, [OnsetEvent(time_s=5.0, frame=0, kind="onset_low")]))
        values = {f"z.{i}": 0.0 for i in range(3)}
        mod.apply(values, 0.0 if k == 0 else 1 / FPS)
        for i in z:
            z[i].append(values[f"z.{i}"])
    hit, swell, flash = (np.array(z[i]) for i in (0, 1, 2))
    # hit: 1 on every downbeat (frames 0, 120, 240, 360), down to 0 a beat (30 frames) later
    assert [k for k in range(len(hit)) if hit[k] == 1.0] == [0, 120, 240, 360, 480]
    assert hit[15] == pytest.approx(0.5) and hit[30] == pytest.approx(0.0, abs=1e-9) and hit[100] == 0.0
    # swell: every second bar (bars 0, 2, 4: frames 0, 240, 480), up over a beat, down over 0.5 s
    starts = [k for k in range(1, len(swell)) if swell[k] > 0 and swell[k - 1] == 0]
    assert starts == [1, 241] and swell[0] == 0.0  # (each attack starts from 0 in the frame it fires)
    assert swell[240 + 30] == pytest.approx(1.0) and swell[240 + 45] == pytest.approx(0.5)
    assert swell[120:240].max() == 0.0  # bar 1 is not a second bar
    # flash: the onset at frame 300: 100 ms up (6 frames), 100 ms down
    assert flash[299] == 0.0 and flash[303] == pytest.approx(0.5) and flash[306] == pytest.approx(1.0)
    assert flash[309] == pytest.approx(0.5) and flash[312] == pytest.approx(0.0, abs=1e-9) and flash[320] == 0.0


def test_envelope_mistakes_are_found_with_their_lines():
    text = textwrap.dedent("""\
        schema_version: 1
        envelopes:
          - {name: a, trigger: rms_db}
          - {name: b, trigger: bar 0}
          - {name: c, trigger: beat, decay: 2 hz}
          - {name: d, trigger: beat, attack: 90 s}
          - {name: e, trigger: beat, decay: 1 bar}
          - {name: ok, trigger: onset}
        """)
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml", Instrument("demo", device="cpu").registry)
    assert sorted({p.line for p in info.value.problems}) == [3, 4, 5, 6, 7], info.value.problems
    assert "trigger must be an event" in str(info.value) and "bar N counts 1 .. 64 bars" in str(info.value)


def test_each_beat_line_fires_once_and_a_jump_back_fires_the_new_one():
    """A nudge back over a line does not fire it twice; a resync (the one moves here) and a
    MIDI Start fire the line they land on."""
    clock = FakeClock()
    beat = BeatClock(120.0, 4)
    source = BeatSource(clock, beat)
    names = []
    for k in range(62):  # past beat 2 (frame 60)
        clock.set(k / FPS)
        names += [(k, e.name) for e in source.read().events]
    beat.nudge(clock.now(), -1 / 32)  # back under beat 2's line (beat 2.033 -> 2.002): no second beat 2
    for k in range(62, 70):
        clock.set(k / FPS)
        names += [(k, e.name) for e in source.read().events]
    assert [k for k, n in names if n == "beat"] == [0, 30, 60]
    beat.resync(clock.now())  # beat 2.27: the nearest bar line (4) moves here and fires; 3 is skipped
    clock.set(70 / FPS)
    assert [e.name for e in source.read().events] == ["beat", "downbeat"]


def test_the_midi_tempo_stays_when_the_ticks_stop_even_if_they_were_there_from_the_start():
    from ganinstrument.sources.midi.clock import MidiClock

    clock = FakeClock()
    inst = Instrument("demo", device="cpu")
    midi = MidiClock(now=clock.now)
    tick = 60.0 / 100.0 / 24
    midi.feed(0xFA, b"", 0.0)
    for n in range(24 * 4):
        midi.feed(0xF8, b"", n * tick)
    clock.set(24 * 4 * tick)
    source = beat_source("auto", inst, clock, midi)  # (the ticks came before the show began)
    assert source.read().values["tempo_bpm"] == pytest.approx(100.0, abs=0.5)
    clock.advance(10.0)  # the ticks are gone
    assert source.read().values["tempo_bpm"] == pytest.approx(100.0, abs=0.5) and source.now.source == "tap"


def test_a_waiting_action_takes_its_boundary_again_when_the_beat_jumps_back():
    from ganinstrument.engine.quantize import Quantizer

    q = Quantizer()
    q.hold(ParamUpdate("seed.next", action=True, quantize="4bars"))
    assert q.due(50.0, 4) == [] and q.pending() == ["seed.next @ beat 64"]
    assert q.due(0.5, 4) == [] and q.pending() == ["seed.next @ beat 16"]  # (a Start: bar 1 again)
    assert [u.target for u in q.due(16.0, 4)] == ["seed.next"] and q.pending() == []


def test_a_recall_from_the_controller_can_morph_for_a_number_of_beats(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "01 far.yaml").write_text("schema_version: 1\ntargets: {z.0: 2.0}\n")
    inst = Instrument("demo", device="cpu", presets_dir=presets)
    inst.set("tempo.bpm", 90.0, immediate=True)
    inst.set("preset.morph", 5.0, immediate=True)
    inst.set("preset.morph_beats", 3.0, immediate=True)  # 3 beats at 90 BPM: 2 s (not 5)
    inst.trigger("preset.recall", 1)
    z = []
    for _ in range(25):
        inst.advance(0.1)
        z.append(inst.get("z.0"))
    assert 0.0 < z[9] < 2.0 and z[18] < 2.0 and z[19] == 2.0 and z[24] == 2.0


def test_a_knob_rides_an_lfos_depth_and_rate(tmp_path):
    """lfo.<name>.depth and .rate are targets the mapping's own LFOs add to the instrument: a
    binding reaches them, depth scales the value, a rate of 2 runs the cycle twice as fast from
    where it was (no jump), and at 1 it is locked to the beat again."""
    path = tmp_path / "ride.yaml"
    path.write_text("schema_version: 1\nbindings:\n  - {cc: 1, target: lfo.saw.depth, takeover: none}\n"
                    "  - {cc: 2, target: lfo.saw.rate, range: [0.25, 4], takeover: none}\n"
                    "lfos:\n  - {name: saw, shape: saw_up, rate: 4}\n"
                    "modulation:\n  - {feature: lfo.saw, target: z.0, depth: 1.0}\n")
    inst = Instrument("demo", device="cpu")
    clock = FakeClock()
    controls = inst.use_mapping(str(path), clock)
    assert {"lfo.saw.depth", "lfo.saw.rate"} <= set(inst.registry.targets) and inst.get("lfo.saw.rate") == 1.0
    beat = BeatClock(120.0)
    lfo = LfoSource(controls.mapping.lfos, clock, beat, inst.state.values)
    clock.set(1.0)  # beat 2 of a 4-beat saw: half way up
    assert lfo.read().values["lfo.saw"] == pytest.approx(0.5)
    inst.set("lfo.saw.depth", 0.5, immediate=True)
    assert lfo.read().values["lfo.saw"] == pytest.approx(0.25)
    inst.set("lfo.saw.depth", 1.0, immediate=True)
    inst.set("lfo.saw.rate", 2.0, immediate=True)
    assert lfo.read().values["lfo.saw"] == pytest.approx(0.5)  # no jump when the knob turns
    clock.set(1.5)  # one beat on: at twice the speed, half a cycle on (from 0.5 to 0.0 of the next)
    assert lfo.read().values["lfo.saw"] == pytest.approx(0.0, abs=1e-9)
    inst.set("lfo.saw.rate", 1.0, immediate=True)
    assert lfo.read().values["lfo.saw"] == pytest.approx(0.75)  # locked again: beat 3 of 4
    assert controls.router.route([ControlEvent("control_change", 0, 1, 0.0, 2.0)])[0].target == "lfo.saw.depth"
    saved = inst.snapshot()
    assert saved.targets["lfo.saw.depth"] == 1.0  # (a preset keeps how the knobs stood)


def test_a_render_without_bpm_finds_the_musics_beat_grid(tmp_path, caplog):
    """render with neither --bpm nor a session clock finds the tempo and the first beat in the
    music (sources/audio/beatgrid.py) and runs its beat clock on them."""
    sr, bpm, first = 22050, 128.0, 0.31
    t = np.arange(int(sr * 6.0)) / sr
    x = 0.02 * np.random.default_rng(5).standard_normal(len(t))
    for k in range(int((6.0 - first) * bpm / 60)):  # a kick on every beat
        i = int((first + k * 60 / bpm) * sr)
        n = min(2000, len(x) - i)
        x[i:i + n] += 0.8 * np.sin(2 * np.pi * 60 * np.arange(n) / sr) * np.exp(-np.arange(n) / 400)
    wav = tmp_path / "kicks.wav"
    write_wav(wav, x.astype(np.float32), sr)
    mapping = tmp_path / "m.yaml"
    mapping.write_text("schema_version: 1\nlfos:\n  - {name: one, rate: 1}\n"
                       "modulation:\n  - {feature: lfo.one, target: z.0, depth: 1.0}\n")
    log = tmp_path / "values.jsonl"
    with caplog.at_level("INFO", logger="ganinstrument"):
        assert main(["render", "--audio", str(wav), "--mapping", str(mapping), "--fps", "10", "--size", "32x32",
                     "--device", "cpu", "--out", f"{tmp_path / 'frames'}/", "--log-params", str(log)]) == 0
    assert "beat grid from the music: 12" in caplog.text
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert rows[0]["clock"]["bpm"] == pytest.approx(bpm, rel=0.02)
    beat_at_2s = next(r["clock"]["beat"] for r in rows if r["t"] >= 2.0)
    assert beat_at_2s == pytest.approx((2.0 - first) * bpm / 60, abs=0.1)  # (20 ms of a 469 ms beat: 0.04)


def test_midi_clock_continue_and_ticks_that_stop_coming():
    """Between a Continue and its first tick the beat holds on the clock's position (it does
    not run ahead); when the ticks stop without a Stop (a cable pulled), it runs on at the
    tempo instead of stalling on the last tick and lurching later."""
    from ganinstrument.sources.midi.clock import MidiClock

    clock = FakeClock()
    midi = MidiClock(now=clock.now)
    source = BeatSource(clock, BeatClock(120.0), midi=midi, mode="midi")
    tick = 60.0 / 120.0 / 24
    midi.feed(0xFA, b"", 0.0)
    for n in range(96):  # four beats
        midi.feed(0xF8, b"", 0.01 + n * tick)
        clock.set(0.01 + n * tick)
        source.read()
    t = clock.now()
    midi.feed(0xFC, b"", t + 0.01)  # Stop ...
    clock.set(t + 0.02)
    held = source.read().values["beats"]
    midi.feed(0xFB, b"", t + 0.1)  # ... Continue, its first tick 100 ms later
    for dt in (0.13, 0.16, 0.19):
        clock.set(t + dt)
        assert source.read().values["beats"] == pytest.approx(held)
    for n in range(1, 49):  # two more beats of ticks
        midi.feed(0xF8, b"", t + 0.2 + n * tick)
        clock.set(t + 0.2 + n * tick)
        source.read()
    last = t + 0.2 + 48 * tick
    beats = []
    for k in range(1, 50):  # the ticks stop coming: 1.5 s of frames at ~33 fps
        clock.set(last + k * 0.03)
        beats.append(source.read().values["beats"])
    steps = np.diff(beats)
    assert steps.min() > 0.03 and steps.max() < 0.09  # (0.06 beats a frame at 120 BPM: on, no stall)


def test_a_pad_fires_an_envelope_by_hand(tmp_path):
    """Every envelope adds an action env.<name>; one with trigger: button fires only so."""
    path = tmp_path / "pad.yaml"
    path.write_text("schema_version: 1\nbindings:\n  - {note: 50, action: env.hit}\n"
                    "envelopes:\n  - {name: hit, trigger: button, decay: 200 ms}\n"
                    "modulation:\n  - {feature: env.hit, target: z.0, depth: 2.0}\n")
    clock = FakeClock()
    inst = Instrument("demo", device="cpu")
    controls = inst.use_mapping(str(path), clock)
    assert "env.hit" in inst.actions()
    engine = Engine(inst, router=controls.router, controls=[Script(clock, {10: [50]})],
                    beat=beat_source("120", inst, clock), clock=clock, fps=FPS, draw=False, trim_heap_s=None)
    z = []
    for k in range(40):
        clock.set(k / FPS)
        engine.frame()
        z.append(inst.last_values["z.0"])
    engine.close()
    assert max(z[:10]) == 0.0  # no beat fires it
    assert z[10] == 2.0 and z[16] == pytest.approx(1.0) and z[22] == pytest.approx(0.0, abs=1e-9)


def test_a_tap_counts_at_the_moment_the_pad_was_hit_not_the_frame(tmp_path):
    """Taps 0.4 s apart hit between frames (at 30 fps): the tempo is exactly 150 BPM and the
    last hit is on the beat, though the frames that took them were up to 33 ms late."""
    path = tmp_path / "pads.yaml"
    path.write_text(MAPPING)
    clock = FakeClock()
    inst = Instrument("demo", device="cpu")
    controls = inst.use_mapping(str(path), clock)
    hits = [1.005, 1.405, 1.805]

    class Pads(Quiet):
        def drain(self):
            out = [ControlEvent("note_on", 0, 62, 100.0, h, "pads") for h in hits if h <= clock.now()]
            del hits[:len(out)]
            return out

    beat = beat_source("100", inst, clock)
    engine = Engine(inst, router=controls.router, controls=[Pads()], beat=beat, clock=clock, fps=30, draw=False,
                    trim_heap_s=None)
    for k in range(70):
        clock.set(k / 30)
        engine.frame()
    engine.close()
    assert beat.now.bpm == pytest.approx(150.0)
    assert beat.beat.beat_at(1.805) == pytest.approx(round(beat.beat.beat_at(1.805)))


def _events_per_frame(source, clock, times):
    out = []
    for t in times:
        clock.set(t)
        out.append([e.name for e in source.read().events])
    return out


def test_a_midi_clock_playing_before_any_start_gives_its_tempo_not_a_frozen_beat():
    """Joining a drum machine already playing (ticks, no Start heard): the tempo follows, the
    beat runs on (our phase), and a beat fires once a beat, not every frame."""
    from ganinstrument.sources.midi.clock import MidiClock

    clock = FakeClock()
    midi = MidiClock(now=clock.now)
    source = BeatSource(clock, BeatClock(120.0), midi=midi, mode="auto")
    tick = 60.0 / 128.0 / 24
    frames, events = [], []
    for n in range(24 * 16):  # 16 beats of ticks, a frame every other tick
        midi.feed(0xF8, b"", n * tick)
        if n % 2 == 0:
            clock.set(n * tick)
            reading = source.read()
            frames.append(reading.values["beats"])
            events += [e.name for e in reading.events]
    assert source.now.bpm == pytest.approx(128.0, abs=0.5) and frames[-1] > 12
    assert 12 <= events.count("beat") <= 17 and events.count("downbeat") <= 5


def test_a_stop_on_a_beat_line_holds_without_firing_it_again():
    from ganinstrument.sources.midi.clock import MidiClock

    clock = FakeClock()
    midi = MidiClock(now=clock.now)
    source = BeatSource(clock, BeatClock(120.0), midi=midi, mode="midi")
    tick = 60.0 / 120.0 / 24
    midi.feed(0xFA, b"", 0.0)
    t = 0.0
    for n in range(24 * 8 + 1):  # up to tick 192: beat 8, a bar line
        t = 0.001 + n * tick
        midi.feed(0xF8, b"", t)
        clock.set(t)
        source.read()
    midi.feed(0xFC, b"", t + 0.001)  # Stop right on it
    held = _events_per_frame(source, clock, [t + 0.002 + k / 60 for k in range(120)])  # 2 s, no ticks after
    assert held == [[]] * 120 and source.now.beat == pytest.approx(8.0)


def test_a_resync_just_after_a_bar_line_does_not_play_it_twice():
    clock = FakeClock()
    beat = BeatClock(120.0, 4)
    source = BeatSource(clock, beat)
    played = _events_per_frame(source, clock, [k / 60 for k in range(241)])  # to beat 8 (4.0 s)
    assert played[240] == ["beat", "downbeat"]
    clock.set(4.04)
    beat.resync(4.04)  # 40 ms late: "this is the one" (bar line 8 moves here)
    assert _events_per_frame(source, clock, [4.05, 4.07]) == [[], []]


def test_a_show_with_taps_a_beat_morph_and_quantized_actions_renders_as_it_played(tmp_path):
    """Taps change the tempo, a recall morphs for beats of it, a quantized seed waits for its
    beat; the mapping has no modulation routes. The render replays the recorded clock: every
    value of every frame is the same."""
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "01 far.yaml").write_text("schema_version: 1\ntargets: {z.0: 2.0}\n")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("schema_version: 1\nbindings:\n  - {note: 62, action: tempo.tap}\n"
                       "  - {note: 60, action: seed.next, quantize: beat}\n"
                       "  - {note: 36, action: preset.recall, value: 1}\n"
                       "  - {note: 37, target: preset.morph_beats, mode: trigger, value: 4}\n")
    from ganinstrument.commands.perform import beat_source as make_beat
    from ganinstrument.sources.replay import SessionWriter
    from ganinstrument.state.presets import to_yaml_dict

    clock = FakeClock()
    inst = Instrument("demo", device="cpu", presets_dir=presets)
    controls = inst.use_mapping(str(mapping), clock)
    session = SessionWriter(tmp_path / "s.jsonl", model="demo", directions="auto", mapping=str(mapping), fps=FPS,
                            presets_dir=str(presets), look=to_yaml_dict(inst.snapshot("start")))
    engine = Engine(inst, router=controls.router, controls=[Script(clock, {2: [37], 5: [62], 25: [62], 40: [60], 47: [36]})],
                    beat=make_beat("120", inst, clock), clock=clock, fps=FPS, session=session,
                    log_params=tmp_path / "live.jsonl", trim_heap_s=None)
    for k in range(90):
        clock.set(k / FPS)
        engine.frame()
    engine.close()
    assert main(["render", "--session", str(tmp_path / "s.jsonl"), "--audio", str(_silence(tmp_path)),
                 "--out", f"{tmp_path / 'frames'}/", "--device", "cpu", "--size", "32x32",
                 "--log-params", str(tmp_path / "render.jsonl")]) == 0

    def rows(name):
        out = [json.loads(x) for x in (tmp_path / name).read_text().splitlines()]
        for r in out:
            r["clock"].pop("source")
        return out

    live = rows("live.jsonl")
    assert live[30]["values"]["tempo.bpm"] == pytest.approx(180.0)  # (taps 20 frames apart: 1/3 s)
    seeds = [r["values"]["seed"] for r in live]
    moved = next(k for k, s in enumerate(seeds) if s != seeds[0])
    assert moved > 40  # the quantized seed waited for its beat (then crossfades)
    assert 0.0 < live[60]["values"]["z.0"] < 2.0  # mid-morph (4 beats at 180 BPM: 1.33 s)
    assert rows("render.jsonl") == live


def _silence(tmp_path):
    wav = tmp_path / "silence.wav"
    write_wav(wav, np.zeros(48000 * 3 // 2, np.float32), 48000)  # (1.5 s: the show's 90 frames at 60 fps)
    return wav


def test_the_beat_follows_the_music_it_hears(tmp_path):
    """--tempo audio: the beat clock takes the live beat tracker's tempo and phase once it is
    confident: a 124 BPM kick track, heard through the offline block source as live input."""
    sr, bpm, first = 48000, 124.0, 0.2
    n = int(sr * 10.0)
    x = 0.01 * np.random.default_rng(9).standard_normal(n)
    kicks = [first + k * 60 / bpm for k in range(int((10.0 - first) * bpm / 60))]
    for t0 in kicks:
        i = int(t0 * sr)
        m = min(3000, n - i)
        x[i:i + m] += 0.8 * np.sin(2 * np.pi * 55 * np.arange(m) / sr) * np.exp(-np.arange(m) / 500)
    from ganinstrument.sources.audio.offline import BlockSource

    clock = FakeClock()
    source = BeatSource(clock, BeatClock(100.0), audio=BlockSource(x.astype(np.float32), sr, follow=clock),
                        mode="audio")
    beats = []
    for k in range(int(10.0 * FPS)):
        clock.set(k / FPS)
        beats += [e.time_s for e in source.read().events if e.name == "beat"]
    assert source.now.source == "audio" and source.now.bpm == pytest.approx(bpm, rel=0.04)
    late = [b for b in beats if 6.0 < b < kicks[-1] + 0.1]  # (locked by then; not the coasting after)
    errors = [min(abs(b - k) for k in kicks) for b in late]
    assert len(late) >= 7 and max(errors) < 0.06, errors
