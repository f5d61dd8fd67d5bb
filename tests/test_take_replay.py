"""A take renders again (`render --take`): the frames it recorded, from the show's session kept
beside it, with the show before the take played through but not drawn."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image
from test_session_replay import MAPPING, SR, Script, _track, track_input

from ganinstrument.commands.cli import main
from ganinstrument.common.clock import FakeClock
from ganinstrument.engine.loop import Engine
from ganinstrument.instrument.facade import Instrument
from ganinstrument.outputs.base import Sinks
from ganinstrument.outputs.frames import FrameDirSink
from ganinstrument.outputs.takes import TakeRecorder
from ganinstrument.sources.replay import ReplayError, SessionWriter, read_take_note
from ganinstrument.state.presets import to_yaml_dict

FPS = 8


def _play_a_take(tmp_path):
    """24 frames of a show with one take (R at frame 6 and 18) -> (live PNG frames, the take)."""
    mapping = tmp_path / "pads.yaml"
    mapping.write_text(MAPPING)
    clock = FakeClock()
    inst = Instrument("demo", device="cpu")
    inst.set("psi", 0.55, immediate=True)  # the look the show starts with is not the default one
    controls = inst.use_mapping(str(mapping), clock)
    live = FrameDirSink(tmp_path / "live", on_full="wait", queue_size=64)
    live.open(256, 256, FPS)
    takes = TakeRecorder(tmp_path / "takes", codec="libx264")
    takes.open(256, 256, FPS)
    session_path = tmp_path / "takes" / "show.jsonl"
    session_path.parent.mkdir()
    takes.session_path = session_path.resolve()
    session = SessionWriter(session_path, model="demo", mapping=str(mapping), fps=FPS,
                            look=to_yaml_dict(inst.snapshot("start")))
    script = {k: [("control_change", 0, 20 + 9 * k), ("control_change", 24, 30 + 4 * k)] for k in range(2, 22, 2)}
    script[4] = script[4] + [("note_on", 62, 100)]  # the next seed, before the take
    script[12] = [("note_on", 62, 100)]              # and during it
    engine = Engine(inst, router=controls.router, controls=[Script(clock, script)],
                    modulation=[track_input(_track(), clock)], sinks=Sinks([live, takes]), clock=clock, fps=FPS,
                    session=session, trim_heap_s=None)
    for k in range(24):
        clock.set(k / FPS)
        if k in (6, 18):
            engine.key_action("record.toggle")
        engine.frame()
        time.sleep(0.03)  # (a take's encoder opens on a helper thread meanwhile)
    assert engine.close()
    (video,) = takes.saved
    return [np.asarray(Image.open(p)) for p in sorted((tmp_path / "live").glob("*.png"))], video


def test_a_take_renders_again_frame_for_frame(tmp_path):
    live, video = _play_a_take(tmp_path)
    note = json.loads(video.with_suffix(".json").read_text())
    assert note["session"] == "show.jsonl" and note["video"] == video.name
    first, last = round(note["first_frame_clock_s"] * FPS), round(note["last_frame_clock_s"] * FPS)
    assert 6 <= first < 12 and 12 < last <= 18 and note["frames"] == last - first + 1

    out = tmp_path / "again"
    assert main(["render", "--take", str(video), "--out", f"{out}/", "--device", "cpu"]) == 0
    again = [np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))]
    assert len(again) == last - first + 1
    assert [k for k, img in enumerate(again) if not np.array_equal(img, live[first + k])] == []
    assert not np.array_equal(again[0], again[-1])  # (the take has moves in it)


def test_a_take_renders_again_bigger_with_its_own_sound(tmp_path):
    import av

    _, video = _play_a_take(tmp_path)
    out = tmp_path / "again.mp4"
    assert main(["render", "--take", str(video), "--audio", str(_wav(tmp_path)), "--size", "320x320",
                 "--out", str(out), "--device", "cpu"]) == 0
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (320, 320)
        assert c.streams.audio and sum(1 for _ in c.decode(video=0)) >= 2


def _wav(tmp_path):
    from ganinstrument.sources.audio.input import write_wav

    path = tmp_path / "sound.wav"
    write_wav(path, _track(), SR)
    return path


def test_a_take_without_its_note_says_what_is_missing(tmp_path):
    video = tmp_path / "take-1.mp4"
    video.write_bytes(b"")
    with pytest.raises(ReplayError, match=r"take-1\.json: not found"):
        read_take_note(video)
    video.with_suffix(".json").write_text('{"type": "take", "video": "take-1.mp4", "session": "gone.jsonl", '
                                          '"first_frame_clock_s": 1.0, "last_frame_clock_s": 2.0}')
    with pytest.raises(ReplayError, match="gone.jsonl: cannot read"):
        read_take_note(video)
    (tmp_path / "old.jsonl").write_text('{"type": "session", "schema_version": 1}\n')
    video.with_suffix(".json").write_text('{"type": "take", "video": "take-1.mp4", "session": "old.jsonl", '
                                          '"first_frame_clock_s": 1.0, "last_frame_clock_s": 2.0}')
    with pytest.raises(ReplayError, match="no start time"):
        read_take_note(video)
    assert main(["render", "--take", str(video), "--out", str(tmp_path / "x.mp4")]) != 0
    (tmp_path / "late.jsonl").write_text('{"type": "session", "schema_version": 1}\n'
                                         '{"type": "start", "clock_s": 5.0}\n')
    video.with_suffix(".json").write_text('{"type": "take", "video": "take-1.mp4", "session": "late.jsonl", '
                                          '"first_frame_clock_s": 1.0, "last_frame_clock_s": 2.0}')
    with pytest.raises(ReplayError, match="does not fit in its session"):
        read_take_note(video)  # a take before its show started: not this show's session
