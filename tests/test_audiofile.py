"""Reading music files: formats, channels kept, the resampling rule, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ganinstrument.sources.audiofile import AudioFileError, read_audio


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
