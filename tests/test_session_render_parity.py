"""Session -> render parity (issue 14): a show played through the live engine, with real MIDI
over a JACK server, real OSC over loopback, audio features from a track, a preset recalled
with a morph, a freeze and a blackout, recorded as `perform --record-session` records it,
renders again with `ganinstrument render --session` to the same frames, bit for bit, at a
frame rate (30 fps) whose frame time 1/30 is not exact in binary.

The live clock is a FakeClock set to k / FPS before frame k, as the render's engine sets its
own (origin + k / fps). Every MIDI message and OSC packet of frame k is sent before frame k
and waited for until it is in its input's queue, so the live engine drains it at frame k, and
the session records it there."""

from __future__ import annotations

import json

import numpy as np
import pytest
from jack_helpers import JACK_BACKEND, JackSender, wait_for
from pythonosc.udp_client import SimpleUDPClient
from test_session_replay import SR, _pngs, _track, track_input

from ganinstrument.commands.cli import main
from ganinstrument.commands.perform import beat_source
from ganinstrument.common.clock import FakeClock
from ganinstrument.engine.loop import Engine
from ganinstrument.instrument.facade import Instrument
from ganinstrument.outputs.base import Sinks
from ganinstrument.outputs.frames import FrameDirSink
from ganinstrument.sources.audio.input import write_wav
from ganinstrument.sources.midi.input import MidiInput
from ganinstrument.sources.osc import OscServer
from ganinstrument.sources.replay import SessionWriter
from ganinstrument.state.presets import to_yaml_dict

pytestmark = pytest.mark.timeout(120)

FPS = 30  # 1/30 s is not exact in binary
FRAMES = 75  # 2.5 s

MAPPING = """\
schema_version: 1
info: {name: parity rig}
bindings:
  - {cc: 0..3, target: "z.{i}"}
  - {cc: 24, target: psi}
  - {note: 36, action: preset.recall, value: 2}
  - {note: 60, action: panic.freeze}
  - {note: 61, action: panic.blackout}
  - {osc: /show/z4, target: z.4, input_range: [0, 1]}
modulation:
  - {name: kick, feature: onset.low, target: z.0, pulse: {decay_ms: 180}, depth: 1.2}
  - {name: loud, feature: rms_db, target: psi, depth: 0.25, input_range: [-50, -6]}
"""

# The show: before frame k, what is sent. ("cc", number, value) and ("pad", note) go over JACK
# MIDI (a pad is a note on and its note off); ("osc", address, value) over UDP; ("key", action)
# is a key of the preview window.
FIRST_MIDI, FIRST_OSC = 3, 12
RECALL, MORPH_S = 20, 0.3  # the morph: 9 frames' worth
FREEZE, FROZEN_CC, FROZEN_OSC, UNFREEZE = 36, 38, 39, 42
BLACKOUT, BLACKOUT_OFF = 48, 53
AFTER = 58
SHOW: dict[int, list[tuple]] = {
    **{FIRST_MIDI + j: [("cc", 1, 64 + 8 * j), ("cc", 24, 85 + 4 * j)] for j in range(6)},  # two faders, from where
    # their targets are (so soft takeover picks them up at once)
    FIRST_OSC: [("osc", "/ganinstrument/z.5", 1.5)],              # a target straight by OSC
    14: [("osc", "/show/z4", 0.9)],                                # an OSC address the mapping binds
    16: [("osc", "/ganinstrument/preset.morph", MORPH_S)],        # recalls now morph
    RECALL: [("pad", 36)],                                         # a pad recalls preset 2
    FREEZE: [("osc", "/ganinstrument/panic.freeze", 1.0)],         # freeze, from OSC ...
    FROZEN_CC: [("cc", 1, 112)],                                   # ... moves while frozen are dropped
    FROZEN_OSC: [("osc", "/ganinstrument/z.7", -2.0)],
    UNFREEZE: [("pad", 60)],                                       # ... a pad lets go
    BLACKOUT: [("key", "panic.blackout")],                         # a key blacks out ...
    BLACKOUT_OFF: [("pad", 61)],                                   # ... a pad brings the picture back
    AFTER: [("osc", "/show/z4", 0.2), ("cc", 1, 96)],                 # (back across z.1: picked up)
    64: [("cc", 3, 20), ("osc", "/ganinstrument/z.5", -1.0)],
}

PRESET_1 = "schema_version: 1\ntargets: {psi: 0.7, z.6: 0.0}\n"
PRESET_2 = "schema_version: 1\ntargets: {psi: 0.45, z.6: 2.0, seed: 11}\n"


def _live_engine(inst, router, clock, sinks, session, controls, audio, log_params):
    """The live engine as `perform` builds it (its beat clock included)."""
    return Engine(inst, router=router, controls=controls, modulation=[audio], sinks=sinks,
                  beat=beat_source("auto", inst, clock), clock=clock, fps=FPS, session=session,
                  log_params=log_params, trim_heap_s=None)


def _values(path):
    """--log-params rows, the clock's source left out (live: who set the tempo; a render: the
    session's recorded clock)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        assert row["clock"].pop("source") in ("tap", "session")
    return rows


def _render(tmp_path, wav, session, name, *extra):
    out = tmp_path / name
    assert main(["render", "--audio", str(wav), "--session", str(session), "--out", f"{out}/",
                 "--device", "cpu", *extra]) == 0
    return _pngs(out)


def _without(session, tmp_path, name, drop):
    """A copy of `session` without the lines `drop(line)` picks."""
    lines = session.read_text().splitlines()
    kept = [line for line in lines if '"t"' not in line or not drop(json.loads(line))]
    assert len(kept) < len(lines)
    path = tmp_path / name
    path.write_text("\n".join(kept) + "\n")
    return path


def _first_difference(a, b):
    return next((k for k in range(min(len(a), len(b))) if not np.array_equal(a[k], b[k])), None)


def test_a_show_played_live_renders_again_bit_for_bit_at_30_fps(jack_server, tmp_path):
    samples = _track()[: FRAMES * SR // FPS]
    wav = tmp_path / "track.wav"
    write_wav(wav, samples, SR)
    mapping = tmp_path / "rig.yaml"
    mapping.write_text(MAPPING)
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "01 start.yaml").write_text(PRESET_1)
    (presets / "02 far.yaml").write_text(PRESET_2)
    session_path, live_dir = tmp_path / "show.jsonl", tmp_path / "live"

    clock = FakeClock()
    inst = Instrument("demo", device="cpu", presets_dir=presets)
    controls = inst.use_mapping(str(mapping), clock)
    assert not controls.warnings
    midi = MidiInput("parity-ctl", backend=JACK_BACKEND, clock=clock, poll_s=0.05)
    osc = OscServer(inst.registry, port=0, clock=clock)
    sink = FrameDirSink(live_dir, on_full="wait", queue_size=FRAMES)
    sink.open(256, 256, FPS)
    # what `perform --record-session` writes in the header
    look = to_yaml_dict(inst.snapshot("the look the show started with"))
    session = SessionWriter(session_path, model="demo", model_b=None, directions="auto", mapping=str(mapping),
                            preset=None, fps=FPS,
                            presets_dir=str(presets), look=look)
    engine = _live_engine(inst, controls.router, clock, Sinks([sink]), session, [midi, osc],
                          track_input(samples, clock), tmp_path / "live-values.jsonl")

    rows, states = [], []
    midi.start()
    osc.start()
    try:
        with JackSender("parity-ctl") as ctl:
            client = SimpleUDPClient("127.0.0.1", osc.port)
            assert wait_for(lambda: midi.open_ports, 5.0), list(midi.messages)
            # The first message after a JACK connection may come before the connection does:
            # probe (an unbound CC) until one arrives, and throw the probes away before the show.
            assert wait_for(lambda: (ctl.cc(100, 1), wait_for(lambda: midi.stats().queued, 0.3))[1], 10.0)
            midi.drain()

            def send(item):
                kind = item[0]
                if kind == "key":
                    engine.key_action(item[1])
                    return
                source = osc if kind == "osc" else midi
                expected = source.stats().queued + (2 if kind == "pad" else 1)
                if kind == "osc":
                    client.send_message(item[1], float(item[2]))
                elif kind == "cc":
                    ctl.cc(item[1], item[2])
                else:
                    ctl.note(item[1], 100)
                    ctl.note(item[1], 0)
                assert wait_for(lambda: source.stats().queued >= expected, 5.0), f"{item} did not arrive"

            for k in range(FRAMES):
                clock.set(k / FPS)
                for item in SHOW.get(k, ()):
                    send(item)
                engine.frame()
                states.append((engine.frozen, engine.blackout))
                rows.append({"targets": inst.state.targets(), "z.6": inst.state.get("z.6")})
    finally:
        assert engine.close()
    assert engine.stats.errors == 0 and not inst.warnings, (engine.stats.last_error, list(inst.warnings))
    assert osc.stats().rejected == 0 and osc.stats().dropped == 0 and midi.stats().dropped == 0

    live = _pngs(live_dir)
    assert len(live) == FRAMES

    # -- the show did what it was played to do, live --------------------------------------------
    # the MIDI faders and the OSC moves reached their targets on their frames
    assert rows[FIRST_MIDI - 1]["targets"]["z.1"] != rows[FIRST_MIDI]["targets"]["z.1"]
    assert rows[FIRST_OSC - 1]["targets"]["z.5"] == 0.0 and rows[FIRST_OSC]["targets"]["z.5"] == 1.5
    assert rows[13]["targets"]["z.4"] != rows[14]["targets"]["z.4"]
    assert rows[16]["targets"]["preset.morph"] == pytest.approx(MORPH_S)
    # the recall morphs: z.6 climbs from 0 to 2 over several frames, strictly in between
    z6 = [r["z.6"] for r in rows]
    assert z6[RECALL - 1] == 0.0
    middle = [k for k in range(RECALL, RECALL + 15) if 0.0 < z6[k] < 2.0]
    assert len(middle) >= 7 and middle[0] == RECALL
    assert all(z6[k] < z6[k + 1] for k in middle[:-1])
    assert z6[middle[-1] + 1] == 2.0 and rows[middle[-1] + 1]["targets"]["seed"] == 11
    mid = middle[len(middle) // 2]
    assert not np.array_equal(live[mid], live[RECALL - 1]) and not np.array_equal(live[mid], live[middle[-1] + 1])
    # freeze: the picture held from the frame before, the moves made while frozen dropped
    assert states[FREEZE] == (True, False) and states[UNFREEZE - 1] == (True, False)
    assert states[UNFREEZE] == (False, False)
    assert all(np.array_equal(live[k], live[FREEZE - 1]) for k in range(FREEZE, UNFREEZE))
    assert rows[UNFREEZE]["targets"]["z.1"] == rows[FREEZE - 1]["targets"]["z.1"] == rows[AFTER - 1]["targets"]["z.1"]
    assert rows[AFTER]["targets"]["z.1"] != rows[AFTER - 1]["targets"]["z.1"]  # (the fader was live)
    assert rows[UNFREEZE]["targets"]["z.7"] == rows[FREEZE - 1]["targets"]["z.7"] == 0.0
    assert not np.array_equal(live[UNFREEZE], live[FREEZE - 1])
    # blackout: black frames, then the picture again
    assert [states[k][1] for k in range(BLACKOUT - 1, BLACKOUT_OFF + 1)] == [False] + [True] * 5 + [False]
    assert all(live[k].max() == 0 for k in range(BLACKOUT, BLACKOUT_OFF))
    assert live[BLACKOUT - 1].max() > 0 and live[BLACKOUT_OFF].max() > 0
    # everything was recorded at the frame it was played on
    lines = [json.loads(x) for x in session_path.read_text().splitlines()[2:]]
    played = sorted(round(x["t"] * FPS) for x in lines if "event" in x or "update" in x)
    assert played == sorted(
        k for k, items in SHOW.items() for item in items for _ in range(2 if item[0] == "pad" else 1))
    # and the audio's reading of every frame
    audio = [(round(x["t"] * FPS), x["modulation"]) for x in lines
             if "modulation" in x and x["modulation"]["source"] == "audio"]
    beats = [x["modulation"]["values"]["beats"] for x in lines
             if "modulation" in x and x["modulation"]["source"] == "beat"]
    assert len(beats) == FRAMES and beats[-1] == pytest.approx((FRAMES - 1) / FPS * 2)  # (120 BPM)
    assert [k for k, _ in audio] == list(range(FRAMES))
    assert sum(1 for _, m in audio if m["events"]) >= 3  # onsets, which the kick route follows

    # -- the render, from the session alone: every frame the same, bit for bit ------------------
    rendered = _render(tmp_path, wav, session_path, "render", "--log-params", str(tmp_path / "render-values.jsonl"))
    assert len(rendered) == FRAMES
    different = [k for k in range(FRAMES) if not np.array_equal(live[k], rendered[k])]
    assert different == []
    # and every value of every frame (what the picture rounds to 8 bits), to the last bit
    live_values = _values(tmp_path / "live-values.jsonl")
    assert len(live_values) == FRAMES and live_values[-1]["clock"]["beat"] > 4  # (the beat clock ran)
    assert _values(tmp_path / "render-values.jsonl") == live_values

    # -- and the comparison is not vacuous: without the MIDI (or the OSC) lines, the render
    # is the same up to the frame of the first MIDI (OSC) move, and differs from there ----------
    def source(line):
        return (line.get("event") or line.get("update") or {}).get("source", "")

    no_midi = _render(tmp_path, wav, _without(session_path, tmp_path, "no-midi.jsonl",
                                              lambda x: source(x).startswith("parity-ctl")), "no-midi")
    assert _first_difference(no_midi, live) == FIRST_MIDI
    no_osc = _render(tmp_path, wav, _without(session_path, tmp_path, "no-osc.jsonl", lambda x: source(x) == "osc"),
                     "no-osc")
    assert _first_difference(no_osc, live) == FIRST_OSC
