"""A performance recorded with `perform --record-session` renders again as it was played:
controller moves, audio features, and the panic keys and pads (freeze, blackout), frame for
frame. Also: a controller pad can be mapped to the panic toggles and undoes them while frozen."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from ganinstrument.commands.cli import main
from ganinstrument.common.clock import FakeClock
from ganinstrument.common.events import ControlEvent
from ganinstrument.common.reporting import Quiet
from ganinstrument.engine.loop import Engine
from ganinstrument.instrument.facade import Instrument
from ganinstrument.modulation.audio import AudioFeatures
from ganinstrument.outputs.base import Sinks
from ganinstrument.outputs.frames import FrameDirSink
from ganinstrument.sources.audio.input import BlockSource, write_wav
from ganinstrument.sources.replay import SessionWriter

FPS = 8  # 1/8 s is exact in binary: the live dt and the render's 1/fps are the same number
SR = 48000
SECONDS = 3.0


def _track() -> np.ndarray:
    """A tone with a noise burst (an onset) every 0.4 s."""
    t = np.arange(int(SR * SECONDS)) / SR
    x = 0.1 * np.sin(2 * np.pi * 220 * t)
    for k, start in enumerate(np.arange(0.15, SECONDS - 0.2, 0.4)):
        i = int(start * SR)
        x[i:i + 3000] += 0.8 * np.random.default_rng(k).standard_normal(3000) * np.exp(-np.arange(3000) / 400)
    return np.clip(x, -1, 1).astype(np.float32)


def track_input(samples, clock) -> AudioFeatures:
    """The live audio input's side the engine sees, fed from a track in step with the fake clock."""
    return AudioFeatures(BlockSource(samples, SR, follow=clock))


class Script(Quiet):
    """A MIDI input that delivers, at each frame, the events scripted for it."""

    def __init__(self, clock, by_frame):
        self.clock, self.by_frame, self.frame = clock, by_frame, 0

    def drain(self):
        out = [ControlEvent(kind, 0, number, float(value), self.clock.now(), "script")
               for kind, number, value in self.by_frame.get(self.frame, ())]
        self.frame += 1
        return out


def _pngs(folder):
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


MAPPING = """\
schema_version: 1
info: {name: test pads}
bindings:
  - {cc: 0..3, target: "z.{i}"}
  - {cc: 24, target: psi}
  - {note: 60, action: panic.freeze}
  - {note: 61, action: panic.blackout}
  - {note: 62, action: seed.next}
modulation:
  - {name: kick, feature: onset.low, target: z.0, pulse: {decay_ms: 180}, depth: 1.2}
  - {name: loud, feature: rms_db, target: psi, depth: 0.25, input_range: [-50, -6]}
"""


def test_a_recorded_performance_renders_again_frame_for_frame(tmp_path):
    samples = _track()
    wav = tmp_path / "track.wav"
    write_wav(wav, samples, SR)
    mapping = tmp_path / "pads.yaml"
    mapping.write_text(MAPPING)
    session_path, live_dir, render_dir = tmp_path / "take.jsonl", tmp_path / "live", tmp_path / "render"

    clock = FakeClock()
    inst = Instrument("demo", device="cpu")
    controls = inst.use_mapping(str(mapping), clock)
    n = int(SECONDS * FPS)
    sweep = {k: [("control_change", 0, 64 + 4 * k), ("control_change", 24, 40 + 3 * k)] for k in range(1, 12)}
    script = {**sweep,
              3: sweep[3] + [("note_on", 62, 100)],              # a pad: the next seed
              6: [("note_on", 61, 100)], 8: [("note_on", 61, 100)],  # a pad: blackout, then back
              14: [("note_on", 60, 100)],                         # freeze ...
              15: [("control_change", 1, 127)],                   # ... a move while frozen is dropped
              17: [("note_on", 60, 100)]}                         # ... the same pad unfreezes
    keys = {10: "panic.freeze", 12: "panic.freeze", 19: "panic.blackout", 21: "panic.blackout",
            22: "preset.next", 23: "quit"}
    sink = FrameDirSink(live_dir, on_full="wait", queue_size=64)
    sink.open(256, 256, FPS)
    session = SessionWriter(session_path, model="demo", mapping=str(mapping), fps=FPS)
    engine = Engine(inst, router=controls.router, controls=[Script(clock, script)], modulation=[track_input(samples, clock)],
                    sinks=Sinks([sink]), clock=clock, fps=FPS, session=session, trim_heap_s=None)
    states = []
    for k in range(n):
        clock.set(k / FPS)
        if k in keys:
            engine.key_action(keys[k])
        engine.frame()
        states.append((engine.frozen, engine.blackout))
    assert engine.close()

    live = _pngs(live_dir)
    assert len(live) == n
    # What the script did live, before comparing with the render:
    assert states[6] == (False, True) and states[8] == (False, False)
    assert states[14] == (True, False) and states[16] == (True, False) and states[17] == (False, False)
    assert states[10] == (True, False) and states[12] == (False, False) and states[19] == (False, True)
    assert live[6].max() == 0 and live[7].max() == 0 and live[8].max() > 0
    assert np.array_equal(live[15], live[14]) and np.array_equal(live[16], live[14])
    lines = [json.loads(x) for x in session_path.read_text().splitlines()[1:]]
    logged_keys = [(round(x["t"] * FPS), x["update"]["target"]) for x in lines
                   if "update" in x and x["update"]["source"] == "key"]
    assert logged_keys == [(k, a) for k, a in sorted(keys.items()) if a != "quit"]

    # the model, mapping and frame rate come from the session's header
    assert main(["render", "--audio", str(wav), "--session", str(session_path),
                 "--out", f"{render_dir}/", "--device", "cpu"]) == 0
    rendered = _pngs(render_dir)
    assert len(rendered) == n
    different = [k for k in range(n) if not np.array_equal(live[k], rendered[k])]
    assert different == []
    # and the performance did move: the sweep, the seed pad and the audio all changed the picture
    assert np.abs(live[5].astype(int) - live[0].astype(int)).mean() > 1.0


def test_the_panic_toggles_can_be_mapped_and_checked(tmp_path, capsys):
    mapping = tmp_path / "pads.yaml"
    mapping.write_text(MAPPING)
    assert main(["check", str(mapping)]) == 0, capsys.readouterr()
    inst = Instrument("demo", device="cpu")
    assert {"panic.freeze", "panic.blackout"} <= set(inst.actions())
    before = inst.state.targets()
    from ganinstrument.common.events import ParamUpdate

    assert inst.apply(ParamUpdate("panic.freeze", action=True))  # known, and no change to the scene
    assert inst.state.targets() == before and not inst.warnings


def test_quit_is_not_recorded(tmp_path):
    clock = FakeClock()
    inst = Instrument("demo", device="cpu")
    session = SessionWriter(tmp_path / "s.jsonl")
    engine = Engine(inst, clock=clock, fps=None, session=session, trim_heap_s=None)
    engine.key_action("panic.blackout")
    engine.key_action("quit")
    engine.frame()
    engine.close()
    lines = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()[1:]]
    assert lines[0] == {"type": "start", "clock_s": 0.0}  # the show clock at the first frame
    assert [x["update"]["target"] for x in lines[1:]] == ["panic.blackout"]


def test_what_the_command_line_gives_wins_over_the_session(tmp_path):
    import argparse

    from ganinstrument.commands.render import _defaults_from_session

    header = {"model": "show.pkl", "mapping": "akai-midimix", "preset": "03 storm", "fps": 60,
              "presets_dir": "gig/presets"}
    args = argparse.Namespace(session="s.jsonl", model=None, model_b=None, mapping="generic", preset=None,
                              presets_dir=None, fps=24.0, directions=None)
    _defaults_from_session(args, header)
    assert (args.model, args.model_b, args.mapping, args.preset, args.presets_dir, args.fps) == \
        ("show.pkl", None, "generic", "03 storm", "gig/presets", 24.0)
    bare = argparse.Namespace(session=None, model=None, model_b=None, mapping=None, preset=None,
                              presets_dir=None, fps=None, directions=None)
    _defaults_from_session(bare, {})  # no session: render's own defaults
    assert (bare.model, bare.mapping, bare.presets_dir, bare.fps) == ("demo", "generic", None, 30.0)  # the user's
