"""`ganinstrument render`: deterministic, every frame written, audio muxed, automation applied."""

from __future__ import annotations

import av
import mido
import numpy as np
import pytest

from ganinstrument.commands.cli import main
from ganinstrument.commands.render import RenderError, parse_size
from ganinstrument.sources.audio.input import write_wav

FPS = 10


@pytest.fixture(scope="module")
def track(tmp_path_factory):
    """1.5 s: a quiet tone with four noise bursts (onsets) a third of a second apart."""
    sr = 48000
    t = np.arange(int(sr * 1.5)) / sr
    x = 0.1 * np.sin(2 * np.pi * 220 * t)
    for k in range(4):
        i = int((0.2 + k / 3) * sr)
        x[i:i + 3000] += 0.8 * np.random.default_rng(k).standard_normal(3000) * np.exp(-np.arange(3000) / 400)
    path = tmp_path_factory.mktemp("audio") / "track.wav"
    write_wav(path, np.clip(x, -1, 1), sr)
    return path


def _frames(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_render_is_deterministic_with_audio_and_the_right_frame_count(track, tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    for out in (a, b):
        assert main(["render", "--audio", str(track), "--out", str(out), "--fps", str(FPS), "--device", "cpu"]) == 0
    with av.open(str(a)) as c:
        kinds = sorted(s.type for s in c.streams)
        video = c.streams.video[0]
        assert kinds == ["audio", "video"] and video.codec_context.name == "h264"
        assert (video.width, video.height) == (256, 256)
    fa, fb = _frames(a), _frames(b)
    assert len(fa) == int(1.5 * FPS)
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
    # The generic mapping's audio routes move the picture with the music.
    assert max(np.abs(fa[i].astype(int) - fa[0].astype(int)).mean() for i in range(len(fa))) > 1.0


def test_midi_automation_goes_through_the_mapping(track, tmp_path):
    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    # The generic mapping puts CC 0..7 on z.0..z.7: sweep CC 0 to the top at 0.5 s.
    tr.append(mido.Message("control_change", control=0, value=64, time=0))
    tr.append(mido.Message("control_change", control=0, value=127, time=480))
    midi = tmp_path / "auto.mid"
    mid.save(midi)
    plain, auto = tmp_path / "plain", tmp_path / "auto"
    for out, extra in ((plain, []), (auto, ["--midi", str(midi)])):
        assert main(["render", "--audio", str(track), "--out", f"{out}/", "--fps", str(FPS),
                     "--device", "cpu", *extra]) == 0
    from PIL import Image

    p = sorted(plain.glob("*.png"))
    q = sorted(auto.glob("*.png"))
    assert len(p) == len(q) == int(1.5 * FPS)
    diffs = [np.abs(np.asarray(Image.open(x), int) - np.asarray(Image.open(y), int)).mean() for x, y in zip(p, q)]
    assert diffs[-1] > diffs[0] + 1.0  # the automation pulls the picture away as it plays


def test_size_option_and_errors(track, tmp_path, capsys):
    out = tmp_path / "small.mp4"
    assert main(["render", "--audio", str(track), "--out", str(out), "--fps", "4", "--size", "128x96",
                 "--device", "cpu"]) == 0
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (128, 96)
    with pytest.raises(RenderError):
        parse_size("big")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    assert main(["render", "--audio", str(bad), "--out", str(tmp_path / "x.mp4")]) == 1
    assert "bad.wav" in capsys.readouterr().err
