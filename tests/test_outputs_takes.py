"""The takes output: armed at start, R (record.toggle) starts a take in a new file, R again ends
it; starting and ending never hold up the frame loop; the HUD says what happens."""

from __future__ import annotations

import time

import av
import numpy as np
import pytest
import torch

from ganinstrument.common.clock import FakeClock
from ganinstrument.common.events import ControlEvent
from ganinstrument.common.frame import Frame
from ganinstrument.common.reporting import Quiet
from ganinstrument.engine.loop import Engine
from ganinstrument.instrument.facade import Instrument
from ganinstrument.outputs.spec import default_output_spec, open_sinks, parse_output_spec
from ganinstrument.outputs.takes import TakeRecorder


def _frame(i: int, t: float) -> Frame:
    img = np.zeros((48, 64, 3), np.uint8)
    img[..., 0] = (5 * i) % 256
    return Frame(torch.from_numpy(img), t, i)


def _eventually(cond, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def _decoded(path):
    with av.open(str(path)) as c:
        return [int(f.to_ndarray(format="rgb24")[0, 0, 0]) for f in c.decode(video=0)]


def test_takes_start_and_end_on_toggle_each_in_its_own_file(tmp_path):
    takes = TakeRecorder(tmp_path / "takes", codec="libx264")
    takes.open(64, 48, 30)
    assert not takes.submit(_frame(0, 0.0)) and takes.status() is None  # armed, not recording
    assert not (tmp_path / "takes").exists()
    i = 0
    for n in (20, 35):
        note = takes.toggle()
        assert note.startswith("take starting: take-") and takes.recording
        assert _eventually(lambda: takes.status() is not None and takes.status().startswith("REC 0:00"))
        for _ in range(n):
            assert takes.submit(_frame(i, i / 30))
            i += 1
            time.sleep(0.002)
        assert takes.toggle().startswith("take ending: ")
        assert not takes.submit(_frame(i, i / 30))
        assert _eventually(lambda: len(takes.saved) == (1 if n == 20 else 2))
    assert takes.close()
    first, second = takes.saved
    assert first != second and first.parent == second.parent == tmp_path / "takes"
    a, b = _decoded(first), _decoded(second)
    assert len(a) == 20 and len(b) == 35
    assert abs(a[0] - 0) <= 3 and abs(b[0] - (5 * 20) % 256) <= 3  # the second take starts where it was pressed
    st = takes.stats
    assert (st.submitted, st.written, st.dropped, st.errors) == (55, 55, 0, 0)
    assert any("take saved" in m for m in takes.messages)


def test_closing_the_show_finishes_the_take_in_progress(tmp_path):
    takes = TakeRecorder(tmp_path, codec="libx264")
    takes.open(64, 48, 30)
    takes.toggle()
    assert _eventually(lambda: takes.status() and takes.status().startswith("REC"))
    for i in range(10):
        takes.submit(_frame(i, i / 30))
    assert takes.close(2.0)
    assert len(takes.saved) == 1 and len(_decoded(takes.saved[0])) == 10


def test_pressed_twice_while_starting_ends_without_a_take(tmp_path):
    takes = TakeRecorder(tmp_path, codec="libx264")
    takes.open(64, 48, 30)
    takes.toggle()
    note = takes.toggle()
    if takes._starting or "ending as soon" in note:
        assert _eventually(lambda: not takes.recording)
    else:  # the encoder opened before the second press: that press ended the take
        assert note.startswith("take ending")
    assert takes.close()
    assert takes.saved == [] and list(tmp_path.iterdir()) == []  # no frames: no file


def test_a_take_that_cannot_start_says_why_and_the_show_goes_on(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    takes = TakeRecorder(blocker / "takes", codec="libx264")
    takes.open(64, 48, 30)
    takes.toggle()
    assert _eventually(lambda: not takes.recording)
    assert takes.stats.errors == 1 and "take failed" in takes.messages[-1]
    assert not takes.submit(_frame(0, 0.0))
    with pytest.raises(Exception, match="is a file"):
        TakeRecorder(blocker).open(64, 48, 30)
    assert takes.close()


def test_the_takes_output_is_armed_by_default_and_takes_a_folder():
    assert "takes" in default_output_spec().split(",")
    (a,) = parse_output_spec("takes")
    (b,) = parse_output_spec("takes:gig/night1")
    assert a.option("directory") == "takes" and b.option("directory") == "gig/night1"


MAPPING = """\
schema_version: 1
info: {name: rec pad}
bindings:
  - {note: 70, action: record.toggle}
"""


def test_the_engine_records_takes_from_a_key_or_a_pad_and_the_hud_says_so(tmp_path):
    mapping = tmp_path / "rec.yaml"
    mapping.write_text(MAPPING)
    clock = FakeClock()
    inst = Instrument("demo", device="cpu")
    controls = inst.use_mapping(str(mapping), clock)
    pad = []

    class Pad(Quiet):
        def drain(self):
            out, pad[:] = list(pad), []
            return out

    sinks = open_sinks(f"takes:{tmp_path / 'takes'}", 256, 256, 10)
    engine = Engine(inst, router=controls.router, controls=[Pad()], sinks=sinks, clock=clock, fps=10, trim_heap_s=None)
    takes = sinks.get("takes")

    def frames(n):
        for _ in range(n):
            clock.advance(0.1)
            engine.frame()
            time.sleep(0.005)

    frames(2)
    assert "rec" not in engine.hud_values(clock.now())
    engine.key_action("record.toggle")  # the preview's R
    frames(1)
    assert _eventually(lambda: takes.status() is not None and takes.status().startswith("REC"))
    frames(5)
    assert engine.hud_values(clock.now())["rec"].startswith("REC 0:")
    pad.append(ControlEvent("note_on", 0, 70, 100.0, clock.now(), "pad"))  # a pad ends it
    frames(1)
    assert _eventually(lambda: len(takes.saved) == 1)
    frames(1)
    hud = engine.hud_values(clock.now())
    assert "rec" not in hud and "take saved" in hud.get("news", "")
    assert engine.close()
    # the five frames between the key and the pad (the key's own frame too if the encoder opened
    # before it was submitted); the pad's frame and later ones are not in the take
    assert len(_decoded(takes.saved[0])) in (5, 6)


def test_without_a_takes_output_the_toggle_says_what_to_add():
    clock = FakeClock()
    engine = Engine(Instrument("demo", device="cpu"), clock=clock, fps=None, trim_heap_s=None)
    engine.key_action("record.toggle")
    engine.frame()
    assert "add takes to --output" in engine.messages[-1]
    engine.close()


def test_after_a_crash_a_take_goes_on_only_if_one_was_recording(tmp_path):
    from ganinstrument.outputs.takes import MARKER

    takes = TakeRecorder(tmp_path, codec="libx264")
    takes.open(64, 48, 30)
    takes.toggle()
    assert _eventually(lambda: (tmp_path / MARKER).is_file())  # a take is recording: marked
    # (the show dies here: nothing is closed, the marker stays)
    resumed = TakeRecorder(tmp_path, codec="libx264", resume=True)
    resumed.open(64, 48, 30)  # the supervisor's restart
    assert resumed.recording and "recording goes on" in resumed.messages[-1]
    assert _eventually(lambda: resumed.status() is not None and resumed.status().startswith("REC"))
    resumed.submit(_frame(0, 0.0))
    assert resumed.close() and not (tmp_path / MARKER).exists() and len(resumed.saved) == 1
    takes.close()
    (tmp_path / MARKER).write_text("take-old.mp4\n")  # left by a show that died unsupervised
    fresh = TakeRecorder(tmp_path, codec="libx264", resume=False)
    fresh.open(64, 48, 30)
    assert not fresh.recording and not (tmp_path / MARKER).exists()
    assert fresh.close()


def test_each_take_has_the_sound_of_its_own_time(tmp_path):
    from ganinstrument.outputs.live_audio import AudioTap

    tap = AudioTap()
    tap.configure(48000, 1)
    takes = TakeRecorder(tmp_path / "takes", codec="libx264", live_audio=tap)
    takes.open(64, 48, 30)
    pushed = 0  # audio blocks so far, 256 samples each; a tone whose level counts the takes

    def play(until_s, level):
        nonlocal pushed
        while (pushed + 1) * 256 / 48000 <= until_s:
            t = pushed * 256 / 48000
            tap.push(level * np.sin(2 * np.pi * 500 * (t + np.arange(256) / 48000))[:, None], t)
            pushed += 1

    i = 0
    for level in (0.2, 0.6):
        takes.toggle()
        assert _eventually(lambda: takes.status() is not None)
        for _ in range(30):
            play(i / 30, level)
            takes.submit(_frame(i, i / 30))
            i += 1
            time.sleep(0.002)
        takes.toggle()
        assert _eventually(lambda: len(takes.saved) == (1 if level == 0.2 else 2))
        play(i / 30 + 0.5, 0.0)  # between takes: heard by nobody
        i += 15
    assert takes.close()
    assert not tap.wanted  # every take stopped listening
    for path, level in zip(takes.saved, (0.2, 0.6)):
        with av.open(str(path)) as c:
            (stream,) = c.streams.audio
            sound = np.concatenate([f.to_ndarray() for f in c.decode(stream)], axis=1)
        picture_s = len(_decoded(path)) / 30
        # as long as the take's picture (which misses a frame or two while its encoder opens)
        assert stream.channels == 1 and sound.shape[1] / 48000 == pytest.approx(picture_s, abs=0.07)
        assert np.abs(sound[0][4800:-4800]).max() == pytest.approx(level, abs=0.05)


def test_perform_keeps_the_shows_session_beside_the_takes_only_when_a_take_was_recorded(tmp_path):
    from ganinstrument.commands.cli import main

    takes = tmp_path / "takes"
    args = ["perform", "--model", "demo", "--device", "cpu", "--midi-port", "none", "--audio-device", "none",
            "--osc-port", "off", "--output", f"null,takes:{takes}", "--max-frames", "3", "--no-restart",
            "--presets-dir", str(tmp_path)]
    assert main(args) == 0
    assert not takes.exists()  # armed, nothing recorded: nothing left behind
    (takes / "keep.txt").parent.mkdir()
    (takes / "keep.txt").write_text("mine")
    assert main(args) == 0
    assert sorted(p.name for p in takes.iterdir()) == ["keep.txt"]  # the performer's files stay


def test_the_hud_says_when_a_take_has_no_sound(tmp_path):
    from ganinstrument.outputs.live_audio import AudioTap

    for running in (False, True):
        tap = AudioTap()
        if running:
            tap.configure(48000, 2)
        takes = TakeRecorder(tmp_path / f"takes-{running}", codec="libx264", live_audio=tap)
        takes.open(64, 48, 30)
        takes.toggle()
        assert _eventually(lambda: takes.status() is not None and takes.status().startswith("REC"))
        takes.submit(_frame(0, 0.0))
        assert _eventually(lambda: takes._current.first_timestamp is not None)
        assert takes.status().endswith("(no sound)") is (not running)
        assert takes.close()
