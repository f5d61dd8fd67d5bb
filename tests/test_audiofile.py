"""Reading music files: formats, channels kept, the resampling rule, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ganinstrument.sources.audio.file import AudioFileError, read_audio


def test_rates_outside_the_extractors_range_go_to_48k(tmp_path):
    t = np.arange(16000) / 16000
    path = tmp_path / "low.flac"
    sf.write(path, np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], 1) * 0.5, 16000)
    data, rate = read_audio(path)
    assert rate == 48000 and data.shape == (48000, 2) and data.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(data[:, 0]))
    assert abs(np.argmax(spectrum) * 48000 / len(data) - 440) < 2  # same pitch after resampling


def test_rates_inside_are_kept_unless_asked(tmp_path):
    path = tmp_path / "ok.wav"
    sf.write(path, np.zeros((4410, 1)), 44100)
    assert read_audio(path)[1] == 44100
    data, rate = read_audio(path, sample_rate=22050, dtype="float64")
    assert rate == 22050 and data.shape == (2205, 1) and data.dtype == np.float64


def test_unreadable_file_names_itself(tmp_path):
    bad = tmp_path / "song.mp3"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(AudioFileError, match="song.mp3"):
        read_audio(bad)


def _encode_m4a(path, samples, rate):
    """`samples` [frames, channels] as AAC in an .m4a file."""
    import av

    layout = "mono" if samples.shape[1] == 1 else "stereo"
    with av.open(str(path), "w") as out:
        a = out.add_stream("aac", rate=rate)
        a.layout = layout
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.T.astype(np.float32)), format="fltp",
                                           layout=layout)
        frame.sample_rate = rate
        out.mux(a.encode(frame))
        out.mux(a.encode(None))


@pytest.mark.parametrize("channels", [1, 2])
def test_aac_in_m4a_is_read_through_ffmpeg(tmp_path, channels):
    rate = 44100
    t = np.arange(rate) / rate
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 880 * t)], 1)[:, :channels]
    path = tmp_path / "song.m4a"
    _encode_m4a(path, x, rate)
    data, got_rate = read_audio(path)
    assert got_rate == rate and data.shape[1] == channels and data.dtype == np.float32
    assert abs(len(data) - rate) <= 2048  # AAC pads to whole 1024-sample frames
    for ch, hz in enumerate((440, 880)[:channels]):
        spectrum = np.abs(np.fft.rfft(data[:rate, ch]))
        assert abs(np.argmax(spectrum) * rate / len(data[:rate]) - hz) < 2
    assert np.sqrt(np.mean(data[4410:-4410, 0] ** 2)) == pytest.approx(0.5 / np.sqrt(2), abs=0.02)


def test_the_sound_of_a_recorded_take_is_read(tmp_path):
    import torch

    from ganinstrument.common.frame import Frame
    from ganinstrument.outputs.live_audio import AudioTap
    from ganinstrument.outputs.recorder import VideoRecorder

    tap = AudioTap()
    tap.configure(48000, 1)
    rec = VideoRecorder(tmp_path / "take.mp4", live_audio=tap, crash_safe=True, on_full="wait")
    rec.open(32, 32, 10)
    for i in range(20):
        t = np.arange(4800 * i, 4800 * (i + 1)) / 48000
        tap.push((0.5 * np.sin(2 * np.pi * 440 * t))[:, None], i / 10)
        rec.submit(Frame(torch.zeros(32, 32, 3, dtype=torch.uint8), i / 10, i))
    assert rec.close(10)
    data, rate = read_audio(tmp_path / "take.mp4")
    assert rate == 48000 and data.shape[1] == 1 and len(data) / rate == pytest.approx(2.0, abs=0.1)


def test_a_video_without_sound_and_a_missing_file_say_so(tmp_path):
    import av

    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        vf = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
        out.mux(v.encode(vf))
        out.mux(v.encode(None))
    with pytest.raises(AudioFileError, match="silent.mp4: has no audio"):
        read_audio(path)
    with pytest.raises(AudioFileError, match="nothere.wav: no such audio file"):
        read_audio(tmp_path / "nothere.wav")
