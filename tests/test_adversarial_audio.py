"""Issue 13, sound of any shape: music and live inputs at rates the AAC encoder refuses (192 kHz)
and with more channels than stereo still give a file with sound, resampled and mixed down by
PyAV; a sound track that cannot be made at all leaves the picture. Checked with PyAV."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_outputs_live_audio import T0, _bursts, _decode, _onset, _record

from ganinstrument.commands.cli import main
from ganinstrument.outputs import mux
from ganinstrument.outputs.live_audio import AudioTap
from ganinstrument.sources.audio.file import _wav_declared_frames
from ganinstrument.sources.audio.input import write_wav

SECONDS, FPS = 1.0, 4


def _streams(path):
    """{kind: (duration s, rate or None, channels or None)} of a media file."""
    with av.open(str(path)) as c:
        return {s.type: (float(s.duration * s.time_base), getattr(s, "rate", None),
                         getattr(s.codec_context, "channels", None))
                for s in c.streams if s.type in ("audio", "video")}


def _music(path, rate, channels, seconds=SECONDS):
    """A 440 Hz tone in every channel."""
    t = np.arange(int(rate * seconds)) / rate
    write_wav(path, np.repeat(0.3 * np.sin(2 * np.pi * 440 * t)[:, None], channels, 1), rate)
    return path


def _render(audio, out, *extra):
    return main(["render", "--audio", str(audio), "--out", str(out), "--fps", str(FPS),
                 "--size", "32x32", "--device", "cpu", *extra])


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 96000, 192000])
def test_render_muxes_music_of_any_rate_and_channel_count(tmp_path, rate):
    for channels in (1, 2, 6, 8):
        out = tmp_path / f"{rate}-{channels}.mp4"
        assert _render(_music(tmp_path / f"{rate}-{channels}.wav", rate, channels), out) == 0
        streams = _streams(out)
        video_s, (audio_s, audio_rate, audio_channels) = streams["video"][0], streams["audio"]
        assert video_s == pytest.approx(SECONDS, abs=1e-3)
        assert audio_s == pytest.approx(video_s, abs=0.03)
        assert audio_rate in av.codec.Codec("aac", "w").audio_rates
        assert audio_channels == (1 if channels == 1 else 2)
        with av.open(str(out)) as c:
            sound = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
        assert np.abs(sound).max() > 0.1  # the tone, not silence


def test_a_192k_six_channel_live_input_is_recorded_with_its_sound(tmp_path):
    tap = AudioTap()
    tap.configure(192000, 6)
    bursts = _bursts([T0 + 0.5], lambda s: 1)
    path = tmp_path / "take.mp4"
    rec = _record(path, 1.0, lambda t: np.pad(bursts(t), ((0, 0), (0, 4))), tap=tap, rate=192000)
    assert rec.stats.errors == 0 and rec.audio_track is not None
    times, audio, start, rate = _decode(path)
    assert len(times) == 30 and audio.shape[0] == 2 and rate == 48000
    assert audio.shape[1] / rate == pytest.approx(1.0, abs=0.03)
    # the burst heard with frame 15 is where that frame is shown, on its channel
    assert _onset(audio, 1, start, rate) == pytest.approx(times[15], abs=0.002)
    assert np.abs(audio[0]).max() < 0.05


def test_a_live_track_the_encoder_will_not_take_leaves_the_picture(tmp_path, monkeypatch, caplog):
    # Simulated (no real input is refused now): an AAC encoder given 192 kHz as it is. The
    # encoder is tried before the track joins the file, so the picture is still written.
    monkeypatch.setattr(mux, "aac_rate", lambda rate, supported=None: rate)
    tap = AudioTap()
    tap.configure(192000, 2)
    path = tmp_path / "take.mp4"
    with caplog.at_level(logging.WARNING, logger="ganinstrument.outputs.recorder"):
        rec = _record(path, 0.5, _bursts([], lambda s: 0), tap=tap, rate=192000)
    assert rec.stats.errors == 0 and rec.audio_track is None and not tap.wanted
    (line,) = [r.getMessage() for r in caplog.records if "picture only" in r.getMessage()]
    assert str(path) in line and "audio track did not open" in line
    with av.open(str(path)) as c:
        assert not c.streams.audio and c.streams.video[0].frames == 15


def test_music_ffmpeg_cannot_read_leaves_the_picture_without_sound(tmp_path, caplog):
    # A MATLAB sound file: libsndfile reads it (so it is analysed), FFmpeg does not (so it
    # cannot be muxed): the picture stays at --out, and one line says why it has no sound.
    music = tmp_path / "song.mat"
    sf.write(music, np.repeat(0.3 * np.sin(np.arange(8000) / 3)[:, None], 2, 1), 8000, format="MAT5")
    out = tmp_path / "song.mp4"
    with caplog.at_level(logging.WARNING, logger="ganinstrument.outputs.recorder"):
        assert _render(music, out) == 0
    assert set(_streams(out)) == {"video"} and _streams(out)["video"][0] == pytest.approx(1.0, abs=1e-3)
    (line,) = [r.getMessage() for r in caplog.records if "without sound" in r.getMessage()]
    assert line.count(str(music)) == 1 and "cannot read audio" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.mat", "song.mp4"]


def test_music_that_stops_decoding_part_way_is_rendered_with_the_sound_there_is(tmp_path, caplog):
    full = tmp_path / "full.flac"
    sf.write(full, 0.3 * np.random.default_rng(1).standard_normal((80000, 1)), 8000)  # 10 s
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 4])
    out = tmp_path / "cut.mp4"
    with caplog.at_level(logging.WARNING):
        assert _render(cut, out) == 0
    (line,) = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert str(cut) in line and "10.00 s" in line
    streams = _streams(out)
    assert 1.5 < streams["video"][0] < 3.5 and streams["audio"][0] == pytest.approx(streams["video"][0], abs=0.3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=st.binary(max_size=200), cut=st.integers(0, 80), data_size=st.integers(0, 2**32 - 1))
def test_a_wav_header_of_any_bytes_gives_a_length_or_none(tmp_path, tail, cut, data_size):
    # The header's claim is read by hand (FFmpeg and libsndfile go by the file's size): hostile
    # chunk sizes, cut headers and junk must give a length or None, never an error or a hang.
    head = (b"RIFF\xff\xff\xff\xffWAVE" + b"JUNK\x03\x00\x00\x00abc\x00"
            + b"fmt \x10\x00\x00\x00\x01\x00\x02\x00\x80\xbb\x00\x00\x00\xee\x02\x00\x04\x00\x10\x00"
            + b"data" + data_size.to_bytes(4, "little"))
    path = tmp_path / "x.wav"
    path.write_bytes(head[:len(head) - cut] + tail)
    frames = _wav_declared_frames(path)
    assert frames is None or (isinstance(frames, int) and 0 <= frames < 2**32 // 4)
    if cut == 0:  # the whole header: the odd-sized JUNK skipped with its pad byte, fmt read
        assert frames == (None if data_size in (0, 2**32 - 1) else data_size // 4)
