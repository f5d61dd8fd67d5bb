"""Reading music files for offline analysis and rendering: one rule for every caller."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from ..errors import GanInstrumentError

EXTRACTOR_RATES = (22050, 96000)  # the sample rates the feature extractor is made for
FALLBACK_RATE = 48000


class AudioFileError(GanInstrumentError, ValueError):
    """An audio file could not be read; names the file."""


def read_audio(path, *, sample_rate: float | None = None, dtype: str = "float32") -> tuple[np.ndarray, int]:
    """A music file -> samples [frames, channels] and rate.

    What libsndfile reads (wav, flac, ogg, mp3) it reads; anything else with an audio stream
    FFmpeg decodes goes through PyAV: AAC in .m4a, the sound of a video (.mp4, .mov, .mkv: a
    take recorded by `perform` included). More than two channels are mixed down to stereo.
    Resampled (scipy's polyphase `resample_poly`, exact rational ratio) to `sample_rate` when
    given, else to 48000 Hz only when the file's rate is outside 22050..96000 Hz.
    """
    import soundfile as sf

    if not os.path.isfile(path):
        raise AudioFileError(f"{path}: no such audio file")
    try:
        data, rate = sf.read(os.fspath(path), dtype=dtype, always_2d=True)
    except Exception as exc:  # libsndfile's errors are RuntimeError/LibsndfileError/OSError
        data, rate = _read_with_ffmpeg(path, dtype, why=str(exc))
    target = int(round(sample_rate)) if sample_rate is not None else (
        int(rate) if EXTRACTOR_RATES[0] <= rate <= EXTRACTOR_RATES[1] else FALLBACK_RATE)
    if target != int(rate):
        from scipy.signal import resample_poly

        ratio = Fraction(target, int(rate))
        data = resample_poly(data, ratio.numerator, ratio.denominator, axis=0).astype(dtype)
        rate = target
    return data, int(rate)


def _read_with_ffmpeg(path, dtype: str, why: str) -> tuple[np.ndarray, int]:
    """The first audio stream of `path` through PyAV (FFmpeg), as float [frames, channels]."""
    try:
        import av
    except ImportError:
        raise AudioFileError(f"{path}: cannot read this audio file ({why})") from None
    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.audio:
                raise AudioFileError(f"{path}: has no audio in it (libsndfile: {why})")
            stream = container.streams.audio[0]
            channels = 1 if stream.channels == 1 else 2
            rate = stream.rate
            resampler = av.AudioResampler(format="flt", layout="mono" if channels == 1 else "stereo", rate=rate)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1, channels))  # packed: [1, n * ch]
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1, channels))
    except AudioFileError:
        raise
    except Exception as exc:  # av raises FFmpegError flavours, OSError, ValueError
        raise AudioFileError(f"{path}: cannot read this audio file (libsndfile: {why}; FFmpeg: {exc})") from None
    if not chunks or not rate:
        raise AudioFileError(f"{path}: its audio stream holds no samples")
    return np.concatenate(chunks).astype(dtype, copy=False), int(rate)
