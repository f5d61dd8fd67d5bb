"""Issue 13, `render` against its own files: an --out that is one of its inputs is refused before
anything is rendered; the video is written beside --out and moved there only when complete, so a
render stopped or killed part way leaves the previous file; a WAV cut short is reported."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys

import av
import numpy as np
import pytest
import torch

from ganinstrument.commands.cli import main
from ganinstrument.common.frame import Frame
from ganinstrument.outputs.recorder import VideoRecorder
from ganinstrument.sources.audio.input import write_wav
from ganinstrument.sources.replay import SessionWriter

FPS = 4
RENDER = ["--fps", str(FPS), "--size", "32x32", "--device", "cpu"]


def _wav(path, seconds=1.0, rate=8000):
    write_wav(path, 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate), rate)
    return path


def _take(folder, seconds=7 / FPS):
    """A take (without sound) as `perform` leaves it: its video (8 frames of 64x64), the show's
    session and the note beside the video, which says the take lasted `seconds`."""
    video = folder / "take-1.mp4"
    rec = VideoRecorder(video, on_full="wait")
    rec.open(64, 64, FPS)
    for k in range(8):
        rec.submit(Frame(torch.full((64, 64, 3), 30 * k, dtype=torch.uint8), 1.0 + k / FPS, k))
    assert rec.close(10)
    with SessionWriter(folder / "show.jsonl", model="demo", fps=FPS) as session:
        session.start(0.0)
    video.with_suffix(".json").write_text(json.dumps(
        {"type": "take", "video": video.name, "session": "show.jsonl", "first_frame_clock_s": 1.0,
         "last_frame_clock_s": 1.0 + seconds}))
    return video


@pytest.mark.parametrize("which", ["audio", "session", "take", "audio-link", "take-link"])
def test_an_out_that_is_an_input_is_refused_before_rendering(tmp_path, capsys, which):
    audio = _wav(tmp_path / "song.wav")
    take = _take(tmp_path)
    session = tmp_path / "show.jsonl"
    args = {"audio": ["--audio", str(audio), "--session", str(session)],
            "session": ["--audio", str(audio), "--session", str(session)],
            "take": ["--take", str(take)]}[which.split("-")[0]]
    victim = {"audio": audio, "session": session, "take": take}[which.split("-")[0]]
    out = victim
    if which.endswith("-link"):
        out = tmp_path / "elsewhere" / "link.mp4"
        out.parent.mkdir()
        out.symlink_to(victim)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    assert main(["render", *args, "--out", str(out), *RENDER]) == 1
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "error" in x]
    assert f"--out {out} is the input" in line and victim.name in line
    assert "frames" not in err  # nothing was rendered
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    assert after == before and out.is_symlink() == which.endswith("-link")


def test_an_out_where_nothing_can_be_written_is_one_line_before_rendering(tmp_path, capsys):
    audio = _wav(tmp_path / "song.wav")
    assert main(["render", "--audio", str(audio), "--out", "/proc/take.mp4", *RENDER]) == 1
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "error" in x]
    assert "--out /proc/take.mp4: cannot write there" in line and "frames" not in err


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_a_render_stopped_part_way_leaves_the_previous_out(tmp_path, how):
    # A take without sound: the video is written straight to its file as the frames come
    (tmp_path / "in").mkdir()
    take = _take(tmp_path / "in", seconds=3600.0)  # (14,401 frames: it cannot end before the signal)
    out = tmp_path / "out" / "video.mp4"
    out.parent.mkdir()
    out.write_bytes(b"the previous render")
    proc = subprocess.Popen([sys.executable, "-m", "ganinstrument", "render", "--take", str(take),
                             "--out", str(out), *RENDER], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for line in proc.stderr:  # the progress, "[###   ] 12/481 frames ...", when piped
            done = re.search(r"(\d+)/\d+ frames", line)
            if done and int(done[1]) >= 60:  # (past the encoder's look-ahead: packets written)
                break
        else:
            pytest.fail("the render ended before it was stopped")
        proc.send_signal(how)
        proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert out.read_bytes() == b"the previous render"
    left = [p.name for p in out.parent.iterdir()]
    if how == signal.SIGINT:  # stopped: everything tidied away
        assert proc.returncode == 130 and left == ["video.mp4"]
    else:  # killed: at most the hidden partial file beside it
        assert all(name == "video.mp4" or (name.startswith(".video.") and ".partial" in name)
                   for name in left)


def test_a_wav_cut_short_is_reported_and_what_is_there_rendered(tmp_path, caplog):
    full = _wav(tmp_path / "full.wav", seconds=10.0)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[:44 + int(1.7 * 8000) * 2])  # the header still says 10 s
    out = tmp_path / "cut.mp4"
    with caplog.at_level(logging.WARNING):
        assert main(["render", "--audio", str(cut), "--out", str(out), *RENDER]) == 0
    (line,) = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert str(cut) in line and "10.00 s" in line and "1.70 s" in line
    with av.open(str(out)) as c:
        assert c.streams.video[0].frames == int(1.7 * FPS) and c.streams.audio


def test_a_frame_that_fails_fails_the_render_and_leaves_the_previous_out(tmp_path, capsys, monkeypatch):
    """Live, a frame that fails keeps the last picture up; offline the same engine must not
    write a video with a held frame in it: the render stops at once, saying which frame and
    error, and --out stays as it was. (The failure is what a GPU running out of memory raises
    mid-render.)"""
    from ganinstrument.scene.scene import Scene

    real, calls = Scene.render, []

    def fails_on_the_third(self, params, index):
        calls.append(index)
        if len(calls) == 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, params, index)

    monkeypatch.setattr(Scene, "render", fails_on_the_third)
    out = tmp_path / "video.mp4"
    out.write_bytes(b"the previous render")
    audio = _wav(tmp_path / "song.wav", seconds=2.0)
    assert main(["render", "--audio", str(audio), "--out", str(out), *RENDER]) == 1
    assert len(calls) == 3  # it stopped there, not rendering on for nothing
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "error" in x]
    assert "frame 3 of 8 failed to render (RuntimeError: CUDA out of memory" in line
    assert f"{out} is left as it was" in line
    assert out.read_bytes() == b"the previous render"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.wav", "video.mp4"]  # no partial left


def _render_with_a_full_disk(folder, audio, out, max_bytes):
    """`ganinstrument render` in its own process, where no file may grow past `max_bytes` (a
    disk that fills: writes past it fail with EFBIG, as ENOSPC would); its exit code and stderr."""
    import resource

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # (a write past the limit fails instead of killing)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, resource.RLIM_INFINITY))

    code = "import sys; from ganinstrument.commands.cli import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.run([sys.executable, "-c", code, "render", "--audio", str(audio), "--out", str(out), *RENDER],
                         cwd=folder, preexec_fn=small_disk, capture_output=True, text=True, timeout=300)
    return run.returncode, run.stderr


def test_a_disk_that_fills_fails_the_render_in_one_line_and_leaves_nothing_behind(tmp_path):
    """The disk fills while the picture is written, or later while the sound is added: either
    way the render fails in one line (it does not deliver a video without its sound), the
    previous --out stays, and no hidden partial or picture-only file is left."""
    audio = _wav(tmp_path / "song.wav", seconds=2.0)
    whole = tmp_path / "whole.mp4"
    assert main(["render", "--audio", str(audio), "--out", str(whole), *RENDER]) == 0
    size = whole.stat().st_size
    whole.unlink()
    out = tmp_path / "video.mp4"
    for max_bytes in (1000, size - 200):  # (the picture alone is smaller than the whole by its sound)
        out.write_bytes(b"the previous render")
        rc, err = _render_with_a_full_disk(tmp_path, audio, out, max_bytes)
        assert rc == 1 and "File too large" in err and "Traceback" not in err, (max_bytes, err)
        (line,) = [x for x in err.splitlines() if "render: error:" in x]
        assert "kept without sound" not in err and ".partial" not in line and f"--out {out}: writing it failed" in line
        assert out.read_bytes() == b"the previous render"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["song.wav", "video.mp4"]


def test_a_frame_that_cannot_be_written_to_a_png_folder_says_the_frames_so_far_stay(tmp_path, capsys):
    audio = _wav(tmp_path / "song.wav", seconds=1.0)
    frames = tmp_path / "frames"
    (frames / "frame_000003.png").mkdir(parents=True)  # (frame 3 cannot go where it should)
    assert main(["render", "--audio", str(audio), "--out", str(frames) + "/", *RENDER]) == 1
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "render: error:" in x]
    assert "frame_000003.png: cannot write there" in line and line.endswith("the frames written so far stay")
    assert {p.name for p in frames.iterdir()} >= {"frame_000000.png", "frame_000001.png", "frame_000002.png"}


def test_a_recording_with_sound_that_cannot_be_finished_leaves_the_old_file_and_no_intermediate(tmp_path,
                                                                                               monkeypatch):
    """A recorder given the sound (as render's is) fails while finishing: the file that was at
    its path stays as it was, and the unfinished picture-only intermediate is not left behind."""
    import errno

    real, muxed = VideoRecorder._mux, []

    def fills_up(self, packet):
        muxed.append(packet)
        if len(muxed) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, packet)

    rate = 8000
    (tmp_path / "take.mp4").write_bytes(b"yesterday's take")
    rec = VideoRecorder(tmp_path / "take.mp4", audio=np.zeros(rate, np.float32), audio_sample_rate=rate)
    rec.open(64, 64, FPS)
    monkeypatch.setattr(VideoRecorder, "_mux", fills_up)
    for k in range(8):
        rec.submit(Frame(torch.full((64, 64, 3), 30 * k, dtype=torch.uint8), k / FPS, k))
    rec.close(10)
    assert [p.name for p in tmp_path.iterdir()] == ["take.mp4"]
    assert (tmp_path / "take.mp4").read_bytes() == b"yesterday's take"
