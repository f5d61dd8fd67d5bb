"""Recordings checked with PyAV: codec, frame count, size, frame times that follow the real
timestamps, audio muxed as AAC, BT.709 colour, the fallback from an encoder that will not open;
PNG frame folders."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import torch

from ganinstrument.common.frame import Frame
from ganinstrument.outputs import SinkError, SinkUnavailableError, recorder
from ganinstrument.outputs.frames import FrameDirSink
from ganinstrument.outputs.mux import mux_audio
from ganinstrument.outputs.recorder import VideoRecorder, codec_opens, pick_video_codec


def pattern(i: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A frame whose colour says its number, with a white top-left block (orientation)."""
    img = np.zeros((height, width, 3), np.uint8)
    img[...] = (20 * i % 256, 100, 200)
    img[: height // 4, : width // 4] = 255
    return img


def frame(i: int, t: float, img: np.ndarray | None = None) -> Frame:
    return Frame(torch.from_numpy(pattern(i) if img is None else img), t, i)


def record(path, frames, size=(64, 48), fps=30.0, **kwargs) -> VideoRecorder:
    rec = VideoRecorder(path, on_full="wait", **kwargs)
    rec.open(*size, fps)
    for f in frames:
        assert rec.submit(f)
    assert rec.close(10)
    assert rec.stats.errors == 0, rec.stats.last_error
    return rec


def probe(path):
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        info = {
            "codec": video.codec_context.name, "pix_fmt": video.codec_context.pix_fmt,
            "size": (video.width, video.height), "frames": video.frames,
            "duration": float(video.duration * video.time_base),
            "audio": [(a.codec_context.name, float(a.duration * a.time_base))
                      for a in c.streams.audio],
        }
        info["times"] = [float(f.time) for f in c.decode(video=0)]
    return info


def test_variable_rate_take_keeps_its_real_frame_times(tmp_path):
    times = [100.0, 100.031, 100.070, 100.101, 100.2, 100.25, 100.29]  # a jittery live take
    rec = record(tmp_path / "take.mp4", [frame(i, t) for i, t in enumerate(times)])
    assert rec.codec in ("libx264", "h264_nvenc")
    info = probe(tmp_path / "take.mp4")
    assert (info["codec"], info["pix_fmt"], info["size"], info["frames"]) == \
        ("h264", "yuv420p", (64, 48), 7)
    assert info["times"] == pytest.approx([t - 100.0 for t in times], abs=1e-4)
    # the last frame lasts as long as the interval before it
    assert info["duration"] == pytest.approx(0.29 + 0.04, abs=1e-3)


def test_demo_render_at_constant_rate(tmp_path):
    from ganinstrument import Instrument

    inst = Instrument("demo", device="cpu")
    first = inst.step(1 / 30)
    frames = [first] + [inst.step(1 / 30) for _ in range(11)]
    rec = record(tmp_path / "demo.mp4", frames, size=first.size, fps=30)
    info = probe(tmp_path / "demo.mp4")
    assert info["codec"] == "h264" and info["frames"] == 12 and info["size"] == first.size
    assert info["duration"] == pytest.approx(12 / 30, abs=1e-3)
    with av.open(str(tmp_path / "demo.mp4")) as c:
        assert c.streams.video[0].average_rate == 30
        decoded = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(decoded.astype(int) - first.image.astype(int)).mean() < 6  # lossy, close
    assert rec.stats.written == 12 and rec.stats.dropped == 0


def test_odd_sizes_are_cropped_to_even(tmp_path):
    img = np.zeros((49, 65, 3), np.uint8)
    record(tmp_path / "odd.mp4", [frame(0, 0.0, img), frame(1, 0.05, img)], size=(65, 49))
    assert probe(tmp_path / "odd.mp4")["size"] == (64, 48)


def test_recorder_muxes_an_audio_array(tmp_path):
    rate = 44100
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)).astype(np.float32)
    frames = [frame(i, i / 20) for i in range(10)]
    record(tmp_path / "av.mp4", frames, fps=20, audio=tone, audio_sample_rate=rate)
    info = probe(tmp_path / "av.mp4")
    assert info["frames"] == 10 and info["duration"] == pytest.approx(0.5, abs=1e-3)
    assert [name for name, _ in info["audio"]] == ["aac"]
    assert info["audio"][0][1] == pytest.approx(0.5, abs=0.05)
    assert not list(tmp_path.glob("*video-only*"))


def write_wav(path, seconds: float, rate: int = 48000) -> None:
    samples = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(rate * seconds)) / rate) * 32767)
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=rate)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(samples.astype(np.int16)[None, :], format="s16",
                                       layout="mono")
        f.sample_rate = rate
        for p in s.encode(f):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def test_mux_audio_file_into_a_finished_video(tmp_path):
    record(tmp_path / "v.mp4", [frame(i, i / 10) for i in range(5)], fps=10)
    write_wav(tmp_path / "track.wav", 1.5)
    mux_audio(tmp_path / "v.mp4", tmp_path / "track.wav", tmp_path / "full.mp4")
    mux_audio(tmp_path / "v.mp4", tmp_path / "track.wav", tmp_path / "short.mp4", shortest=True)
    full, short = probe(tmp_path / "full.mp4"), probe(tmp_path / "short.mp4")
    assert full["frames"] == short["frames"] == 5 and full["codec"] == "h264"
    assert full["audio"][0][0] == "aac" and full["audio"][0][1] == pytest.approx(1.5, abs=0.05)
    assert short["audio"][0][1] == pytest.approx(0.5, abs=0.05)
    with pytest.raises(SinkError, match="cannot read audio"):
        mux_audio(tmp_path / "v.mp4", tmp_path / "nope.wav", tmp_path / "x.mp4")


def test_missing_folder_fails_at_open(tmp_path):
    rec = VideoRecorder(tmp_path / "no" / "such" / "take.mp4")
    with pytest.raises(SinkError, match="does not exist"):
        rec.open(64, 48, 30)


def test_no_frames_leaves_no_file(tmp_path, caplog):
    rec = VideoRecorder(tmp_path / "empty.mp4")
    rec.open(64, 48, 30)
    with caplog.at_level(logging.WARNING):
        assert rec.close(5)
    assert not (tmp_path / "empty.mp4").exists()
    assert "no frames" in caplog.text


def test_codec_choice_falls_back_to_libx264():
    chosen = pick_video_codec("auto", 64, 48, 30)
    assert chosen == ("h264_nvenc" if codec_opens("h264_nvenc", 64, 48) else "libx264")
    with pytest.raises(SinkUnavailableError, match="does not open"):
        pick_video_codec("no_such_codec", 64, 48, 30)


def test_nvenc_is_constant_quality_without_a_bit_rate_cap():
    assert recorder._encoder_options("h264_nvenc", 18, "veryfast")["b"] == "0"
    assert "b" not in recorder._encoder_options("libx264", 18, "veryfast")  # crf rules there


def test_an_encoder_that_did_not_open_is_tried_again_a_minute_later(monkeypatch):
    if "libx264rgb" not in av.codecs_available:
        pytest.skip("libx264rgb is not in this PyAV")
    now = [1000.0]
    monkeypatch.setattr(recorder, "_clock", lambda: now[0])
    monkeypatch.setattr(recorder, "_codec_probe", {})
    assert not codec_opens("libx264rgb", 64, 48)  # (it never opens for yuv420p)
    assert recorder._codec_probe[("libx264rgb", 64, 48)] == (False, 1000.0)
    now[0] += 30.0
    assert not codec_opens("libx264rgb", 64, 48)
    assert recorder._codec_probe[("libx264rgb", 64, 48)] == (False, 1000.0)  # still the first answer
    now[0] += 31.0
    assert not codec_opens("libx264rgb", 64, 48)
    assert recorder._codec_probe[("libx264rgb", 64, 48)] == (False, 1061.0)  # asked again
    assert codec_opens("libx264", 64, 48)
    now[0] += 1e6
    assert codec_opens("libx264", 64, 48) and recorder._codec_probe[("libx264", 64, 48)][1] == 1061.0


def pretend_it_probed_fine(monkeypatch, codec: str) -> None:
    """`codec` comes first for "auto" and its (cached) probe says it opens, as when NVENC
    probed fine earlier and now hits the GeForce session limit."""
    monkeypatch.setattr(recorder, "AUTO_CODECS", (codec, "libx264"))
    monkeypatch.setitem(recorder._codec_probe, (codec, 64, 48), (True, 0.0))


# libx264rgb is in PyAV everywhere and never opens for yuv420p; h264_nvenc is the real case
# wherever there is no NVIDIA GPU.
@pytest.mark.parametrize("first", ["libx264rgb", "h264_nvenc"])
def test_auto_encoder_that_will_not_open_falls_back_to_libx264(tmp_path, monkeypatch, caplog,
                                                               first):
    if first not in av.codecs_available:
        pytest.skip(f"{first} is not in this PyAV")
    if first == "h264_nvenc" and codec_opens(first, 64, 48):
        pytest.skip("NVENC opens here")
    pretend_it_probed_fine(monkeypatch, first)
    assert pick_video_codec("auto", 64, 48, 30) == first
    path = tmp_path / "take.mp4"
    with caplog.at_level(logging.WARNING, logger=recorder.__name__):
        rec = record(path, [frame(i, i / 30) for i in range(5)])
    assert rec.codec == "libx264"
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(path) in warning and f"{first} does not open" in warning
    assert "falling back to libx264" in warning
    info = probe(path)
    assert (info["codec"], info["pix_fmt"], info["size"], info["frames"]) == \
        ("h264", "yuv420p", (64, 48), 5)
    assert b"x264 - core" in path.read_bytes()  # libx264's own SEI: it really encoded


def test_named_encoder_that_will_not_open_is_an_error(tmp_path, monkeypatch):
    pretend_it_probed_fine(monkeypatch, "libx264rgb")
    rec = VideoRecorder(tmp_path / "take.mp4", codec="libx264rgb")
    with pytest.raises(SinkError, match=r"encoder libx264rgb does not open for .*take\.mp4: "):
        rec.open(64, 48, 30)
    assert rec.codec == "libx264rgb"  # no fallback for a codec the user named
    assert not list(tmp_path.iterdir())


PATCHES = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "grey": (128, 128, 128)}


@pytest.mark.parametrize("convert", ["host", "device"])  # swscale, or outputs/yuv.py (CUDA frames' path)
def test_colour_is_bt709_and_tagged(tmp_path, convert):
    img = np.zeros((48, 64, 3), np.uint8)
    for k, rgb in enumerate(PATCHES.values()):
        img[:, 16 * k: 16 * (k + 1)] = rgb
    record(tmp_path / "colour.mp4", [frame(i, i / 30, img) for i in range(3)], convert=convert)
    with av.open(str(tmp_path / "colour.mp4")) as c:
        cc = c.streams.video[0].codec_context
        # AVCOL_PRI_BT709, AVCOL_TRC_BT709, AVCOL_SPC_BT709, AVCOL_RANGE_MPEG (limited)
        assert (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range) == (1, 1, 1, 1)
        decoded = next(c.decode(video=0))
    tolerance = 6

    def errors(matrix: str) -> dict[str, int]:
        rgb = decoded.reformat(format="rgb24", src_colorspace=matrix).to_ndarray().astype(int)
        # the middle of each patch, away from the chroma edges
        return {name: int(np.abs(rgb[8:40, 16 * k + 4: 16 * k + 12] - want).max())
                for k, (name, want) in enumerate(PATCHES.items())}

    assert max(errors("itu709").values()) <= tolerance, errors("itu709")
    # read with BT.601 (what untagged YUV gets), the colours are visibly off
    assert max(errors("itu601").values()) > tolerance, errors("itu601")


def test_png_folder(tmp_path):
    sink = FrameDirSink(tmp_path / "frames", on_full="wait")
    sink.open(64, 48, 30)
    frames = [frame(i, i / 30) for i in range(3)]
    for f in frames + [frames[-1]]:  # an unchanged picture still takes its own slot
        sink.submit(f)
    assert sink.close(5)
    files = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert files == [f"frame_{i:06d}.png" for i in range(4)]
    for i, f in enumerate(frames):
        with av.open(str(tmp_path / "frames" / files[i])) as c:
            got = next(c.decode(video=0)).to_ndarray(format="rgb24")
        np.testing.assert_array_equal(got, f.image)  # PNG is lossless


_DIE_WHILE_RECORDING = """
import os, signal, sys
import numpy as np, torch
from ganinstrument.common.frame import Frame
from ganinstrument.outputs.recorder import VideoRecorder
from ganinstrument.outputs.live_audio import AudioTap
tap = AudioTap()
tap.configure(48000, 1)
rec = VideoRecorder(sys.argv[1], codec="libx264", crash_safe=sys.argv[2] == "1", on_full="wait",
                    live_audio=tap if sys.argv[3:] == ["audio"] else None)
rec.open(64, 48, 30)
for i in range(100):
    for k in range(1600 * i, 1600 * (i + 1), 320):  # the audio input: a tone, 320-sample blocks
        tap.push(0.5 * np.sin(2 * np.pi * 440 * (k + np.arange(320)) / 48000)[:, None], k / 48000)
    rec.submit(Frame(torch.full((48, 64, 3), (7 * i) % 256, dtype=torch.uint8), i / 30, i))
assert rec.wait_idle(30)
os.kill(os.getpid(), signal.SIGKILL)  # the show dies: no close, no trailer
"""


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="needs SIGKILL")
def test_a_live_recording_survives_the_show_dying(tmp_path):
    import subprocess
    import sys

    decoded = {}
    for safe in (True, False):
        path = tmp_path / f"take-{int(safe)}.mp4"
        done = subprocess.run([sys.executable, "-c", _DIE_WHILE_RECORDING, str(path), str(int(safe))],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == -9, done.stderr
        assert path.stat().st_size > 0
        try:
            with av.open(str(path)) as c:
                decoded[safe] = [f.to_ndarray(format="rgb24")[0, 0, 0] for f in c.decode(video=0)]
        except av.error.FFmpegError:
            decoded[safe] = []
    # Fragmented: everything up to the last whole second (a keyframe and fragment a second),
    # minus what the encoder still held, plays, in order.
    assert 55 <= len(decoded[True]) <= 100
    assert all(abs(int(v) - (7 * i) % 256) <= 3 for i, v in enumerate(decoded[True]))
    assert decoded[False] == []  # a plain MP4 without its trailer does not open at all


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="needs SIGKILL")
def test_a_live_recording_with_sound_survives_the_show_dying(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "take.mp4"
    done = subprocess.run([sys.executable, "-c", _DIE_WHILE_RECORDING, str(path), "1", "audio"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    with av.open(str(path)) as c:
        pictures = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        sound = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)[0]
    assert 55 <= pictures <= 100
    # the sound up to about the same second plays too (the muxer holds at most 1 s back)
    assert abs(sound.size / 48000 - pictures / 30) < 1.0
    assert np.abs(sound[4800:-4800]).max() == pytest.approx(0.5, abs=0.05)


def test_live_outputs_record_crash_safe_and_renders_plain(tmp_path):
    from ganinstrument.outputs.spec import make_sink, parse_output_spec

    (item,) = parse_output_spec(f"record:{tmp_path / 'take.mp4'}")
    assert make_sink(item).crash_safe and not make_sink(item, offline=True).crash_safe
    sink = record(tmp_path / "safe.mp4", [frame(i, i / 30) for i in range(45)], crash_safe=True)
    assert sink.stats.written == 45
    with av.open(str(tmp_path / "safe.mp4")) as c:
        frames = list(c.decode(video=0))
        keys = [f.key_frame for f in frames]
    at = [i for i, k in enumerate(keys) if k] + [len(keys)]
    assert len(frames) == 45 and at[0] == 0
    assert max(b - a for a, b in zip(at, at[1:])) <= 30  # a keyframe at least every second (x264 alone: 250)


def test_device_conversion_crops_odd_sizes_and_follows_a_size_change(tmp_path):
    """The on-device path (what CUDA frames take) with odd sizes and a frame of another size
    (which goes through swscale to be scaled)."""
    odd = [frame(i, i / 30, pattern(i, 49, 65)) for i in range(4)]
    other = [frame(4 + i, (4 + i) / 30, pattern(i, 24, 32)) for i in range(2)]
    rec = record(tmp_path / "odd.mp4", odd + other, size=(65, 49), convert="device")
    assert rec.stats.written == 6
    info = probe(tmp_path / "odd.mp4")
    assert info["size"] == (64, 48) and len(info["times"]) == 6
    with av.open(str(tmp_path / "odd.mp4")) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    assert np.abs(first - odd[0].image[:48, :64]).mean() < 6
