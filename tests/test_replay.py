"""Replay sources: MIDI files and session files become the same timed events live input gives."""

from __future__ import annotations

import json

import mido
import pytest

from ganinstrument.common.clock import FakeClock
from ganinstrument.common.events import ControlEvent, ParamUpdate
from ganinstrument.modulation.audio import reading_of
from ganinstrument.modulation.recorded import recorded_sources
from ganinstrument.modulation.source import Event, Reading
from ganinstrument.sources.replay import ReplayError, SessionWriter, Timeline, midi_file_events, read_session


def test_midi_file_events_in_seconds_with_tempo(tmp_path):
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))  # 120 bpm: a beat is 0.5 s
    track.append(mido.Message("control_change", channel=2, control=7, value=100, time=480))
    track.append(mido.MetaMessage("set_tempo", tempo=1000000, time=0))  # 60 bpm: a beat is 1 s
    track.append(mido.Message("note_on", note=60, velocity=90, time=480))
    track.append(mido.Message("pitchwheel", pitch=-8192, time=240))
    track.append(mido.Message("program_change", program=5, time=0))
    path = tmp_path / "auto.mid"
    mid.save(path)
    items = midi_file_events(path)
    assert [round(i.t, 6) for i in items] == [0.5, 1.5, 2.0, 2.0]
    assert items[0].event == ControlEvent("control_change", 2, 7, 100.0, 0.5, "midi-file")
    assert items[1].event.kind == "note_on" and items[1].event.number == 60 and items[1].event.value == 90
    assert items[2].event.value == -8192 and items[3].event.number == 5


def test_bad_midi_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd garbage")
    with pytest.raises(ReplayError, match="bad.mid"):
        midi_file_events(bad)


def test_session_round_trip_and_order(tmp_path):
    path = tmp_path / "s.jsonl"
    ev = ControlEvent("control_change", 0, 1, 64.0, 0.0, "nano", "")
    with SessionWriter(path, model="demo", mapping="generic.yaml") as w:
        w.event(0.5, ev)
        w.update(0.25, ParamUpdate("psi", 0.5, source="osc"))
        w.modulation(0.75, "audio", Reading({"rms_db": -12.5, "pitch_hz": float("nan")},
                                            (Event("onset", 0.7),)).as_row())
    header, items = read_session(path)
    assert header["model"] == "demo" and header["schema_version"] == 2
    assert [i.t for i in items] == [0.25, 0.5, 0.75]
    assert items[0].update == ParamUpdate("psi", 0.5, source="osc")
    assert items[1].event == ev
    assert items[2].modulation == {"source": "audio", "values": {"rms_db": -12.5, "pitch_hz": None},
                                   "events": [["onset", 0.7]], "silent": False}


def test_a_schema_1_session_plays_its_raw_features_as_the_audio_source(tmp_path):
    """Sessions written before modulation rows held the audio's raw features; render plays
    them back as the audio source's readings."""
    path = tmp_path / "old.jsonl"
    rows = [{"type": "session", "schema_version": 1},
            {"t": 0.1, "features": {"rms_db": -30.0, "bands": [0.1, 0.2, 0.3], "pitch_hz": None,
                                    "onsets": [{"kind": "onset_low", "time_s": 0.09, "frame": 4320}]}},
            {"t": 0.2, "features": {"onsets": []}}]  # the input lost: no features at all
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _, items = read_session(path)
    clock = FakeClock()
    (audio,) = recorded_sources(items, clock)
    assert audio.name == "audio" and audio.read() == Reading({}, (), False)  # nothing yet at 0 s
    clock.set(0.1)
    first = audio.read()
    assert first.values["rms_db"] == -30.0 and first.values["bands.mid"] == 0.2 and first.values["pitch_hz"] is None
    assert first.events == (Event("onset.low", 0.09),) and not first.silent
    clock.set(0.2)
    assert audio.read().silent
    clock.set(0.3)  # the silence was written once; it lasts until the source speaks again
    assert audio.read().silent and audio.read().silent


def test_a_silence_the_engine_logged_once_lasts_in_the_render_as_it_did_live(tmp_path):
    """Live, a source that goes silent says so every frame; the session holds it once. A
    silence that began while the picture was frozen (read, logged, not fed) must still reach
    the modulation once the picture is let go, as it did live."""
    from ganinstrument.common.reporting import Quiet
    from ganinstrument.engine.loop import Engine
    from ganinstrument.instrument.facade import Instrument
    from ganinstrument.modulation.audio import VALUE_NAMES
    from ganinstrument.sources.replay import TimelineControls

    mapping = tmp_path / "m.yaml"
    mapping.write_text("schema_version: 1\nmodulation:\n  - {feature: rms_db, target: psi, depth: 0.5}\n")

    class Scripted(Quiet):
        name = "audio"

        def __init__(self):
            self.frame = 0

        def read(self, t=None):  # loud for 5 frames, then the input is lost
            self.frame += 1
            loud = Reading({**dict.fromkeys(VALUE_NAMES), "rms_db": -6.0})
            return loud if self.frame <= 5 else Reading(dict.fromkeys(VALUE_NAMES), (), True)

    class Keys(Quiet):
        def __init__(self):
            self.frame = 0

        def drain(self):  # frozen over frames 3..7: the silence starts while frozen
            self.frame += 1
            return [ParamUpdate("panic.freeze", action=True, source="key")] if self.frame in (4, 9) else []

    def play(controls, modulation, clock, session=None):
        inst = Instrument("demo", device="cpu")
        router = inst.use_mapping(str(mapping), clock).router
        engine = Engine(inst, router=router, controls=[controls], modulation=modulation, clock=clock, fps=30,
                        session=session, draw=False, trim_heap_s=None)
        psi = []
        for k in range(15):
            clock.set(k / 30)
            engine.frame()
            psi.append(inst.last_values["psi"])
        engine.close()
        return psi

    clock = FakeClock()
    live = play(Keys(), [Scripted()], clock, SessionWriter(tmp_path / "s.jsonl"))
    assert live[4] > 1.2 and live[-1] == 1.0  # loud, then at rest once let go
    _, items = read_session(tmp_path / "s.jsonl")
    assert sum(1 for i in items if i.modulation is not None and i.modulation["silent"]) == 1
    clock = FakeClock()
    assert play(TimelineControls(items, clock), recorded_sources(items, clock), clock) == live


@pytest.mark.parametrize("line, needle", [
    ("not json", "not JSON"),
    ('{"t": "x", "event": {}}', "bad time"),
    ('{"t": 1, "event": {"kind": "cc", "bogus": 1}}', "unknown ControlEvent fields"),
    ('{"t": 1, "other": 2}', "expected one of"),
    ('{"t": 1, "modulation": {"source": "audio", "values": {"rms_db": "loud"}}}', "a modulation line needs"),
    ('{"t": 1, "modulation": {"source": "audio", "events": [["onset"]]}}', "a modulation line needs"),
    ('{"type": "session", "schema_version": 99}', "newer"),
    ('{"type": "session", "schema_version": "2"}', "schema_version must be a whole number"),
    ('{"t": 1, "features": {"rms_db": -3, "onsets": 5}}', "onsets must be a list of objects with a kind"),
    ('{"t": 1, "features": {"onsets": [{"time_s": 1}]}}', "onsets must be a list of objects with a kind"),
])
def test_bad_session_lines_name_file_and_line(tmp_path, line, needle):
    path = tmp_path / "s.jsonl"
    path.write_text('{"type": "session", "schema_version": 1}\n' + line + "\n")
    with pytest.raises(ReplayError, match=needle) as info:
        read_session(path)
    assert "s.jsonl" in str(info.value)


def test_timeline_hands_out_each_item_once():
    from ganinstrument.sources.replay import Timed

    tl = Timeline([Timed(0.3), Timed(0.1), Timed(0.2), Timed(0.2)])
    assert [i.t for i in tl.until(0.15)] == [0.1]
    assert [i.t for i in tl.until(0.2)] == [0.2, 0.2]
    assert tl.until(0.2) == []
    assert [i.t for i in tl.until(10)] == [0.3] and tl.until(10) == []


def test_a_session_takes_numpy_scalars_and_audio_features(tmp_path):
    import numpy as np

    from ganinstrument.sources.audio.input import BlockSource

    t = np.arange(48000) / 48000
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    x[12000:12400] += 0.6  # an attack in every band
    src = BlockSource(x, 48000)
    src.advance_to(0.5)
    features = src.latest()
    assert all(type(getattr(features, k)) is bool for k in ("onset", "onset_low", "onset_mid", "onset_high"))
    path = tmp_path / "s.jsonl"
    with SessionWriter(path) as w:
        w.modulation(0.5, "audio", reading_of(features, src.drain_onsets()).as_row())
        w.modulation(0.6, "audio", {"values": {"rms_db": np.float32(-6.5), "n": np.int64(3)},
                                    "events": [["onset.mid", np.float64(0.55)]], "silent": np.bool_(False)})
    _, items = read_session(path)
    assert items[0].modulation["values"]["rms_db"] == pytest.approx(features.rms_db)
    assert {name for name, _ in items[0].modulation["events"]} >= {"onset.low", "onset.mid", "onset.high"}
    assert items[1].modulation == {"source": "audio", "values": {"rms_db": -6.5, "n": 3},
                                   "events": [["onset.mid", 0.55]], "silent": False}


def test_a_session_that_cannot_be_written_never_stops_the_show(tmp_path):
    from ganinstrument.common.clock import FakeClock
    from ganinstrument.engine.loop import Engine
    from ganinstrument.instrument.facade import Instrument

    odd = SessionWriter(tmp_path / "odd.jsonl")
    odd.modulation(0.5, "audio", {"values": {"thing": object()}})  # not JSON: left out, the rest goes on
    odd.modulation(0.6, "audio", {"values": {"rms_db": -20.0}})
    odd.close()
    assert odd.skipped == 1 and [i.t for i in read_session(tmp_path / "odd.jsonl")[1]] == [0.6]

    full = SessionWriter("/dev/full")  # every write fails: no space left on the device
    assert full.error is not None and "/dev/full" in full.error
    clock = FakeClock()
    engine = Engine(Instrument("demo", device="cpu"), clock=clock, fps=None, session=full, trim_heap_s=None)
    for _ in range(3):
        engine.key_action("seed.next")
        engine.frame()
        clock.advance(0.1)
    engine.close()
    assert engine.stats.errors == 0 and engine.stats.rendered >= 3
    assert [m for m in engine.messages if "/dev/full" in m] == [full.error]  # said once, on the HUD
