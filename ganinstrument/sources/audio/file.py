"""Reading music files for offline analysis and rendering: one rule for every caller."""

from __future__ import annotations

import logging
import os
import struct
from fractions import Fraction

import numpy as np

from ...common.errors import GanInstrumentError

log = logging.getLogger(__name__)

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

    A file cut short (a WAV whose header promises more than is there, a file that stops
    decoding part way) gives what is there, and says so in one line: the length its header
    claims and the length read.
    """
    import soundfile as sf

    if not os.path.isfile(path):
        raise AudioFileError(f"{path}: no such audio file")
    try:
        data, rate = sf.read(os.fspath(path), dtype=dtype, always_2d=True)
        claimed = _wav_declared_frames(path)
    except Exception as exc:  # libsndfile's errors are RuntimeError/LibsndfileError/OSError
        data, rate, claimed = _read_with_ffmpeg(path, dtype, why=str(exc))
    if claimed is not None and claimed - len(data) > max(0.01 * claimed, 0.05 * rate):
        log.warning("%s: cut short: its header says %.2f s, only %.2f s could be read; using what "
                    "is there", path, claimed / rate, len(data) / rate)
    target = int(round(sample_rate)) if sample_rate is not None else (
        int(rate) if EXTRACTOR_RATES[0] <= rate <= EXTRACTOR_RATES[1] else FALLBACK_RATE)
    if target != int(rate):
        from scipy.signal import resample_poly

        ratio = Fraction(target, int(rate))
        data = resample_poly(data, ratio.numerator, ratio.denominator, axis=0).astype(dtype)
        rate = target
    return data, int(rate)


def _wav_declared_frames(path) -> int | None:
    """The frames a RIFF WAVE file's header declares (its data chunk's size over the fmt
    chunk's block size; libsndfile and FFmpeg both go by the file's real size instead), or None
    for another format or a header that does not say."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        block = 0
        while len(chunk := f.read(8)) == 8:
            kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if kind == b"data":
                return size // block if block and size not in (0, 0xFFFFFFFF) else None
            skip = size + (size & 1)  # chunks are padded to an even length
            if kind == b"fmt ":
                fmt = f.read(min(size, 16))
                if len(fmt) < 14:
                    return None
                block = struct.unpack("<H", fmt[12:14])[0]
                skip -= len(fmt)
            f.seek(skip, os.SEEK_CUR)
    return None


def _read_with_ffmpeg(path, dtype: str, why: str) -> tuple[np.ndarray, int, int | None]:
    """The first audio stream of `path` through PyAV (FFmpeg), as float [frames, channels],
    its rate, and the frames its header claims where the decoding broke off part way (else
    None): what decoded before that is kept."""
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
            chunks, claimed = [], None
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1, channels))  # packed: [1, n * ch]
            except av.FFmpegError:
                if not chunks:
                    raise
                claimed = _claimed_frames(container, stream, rate)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1, channels))
    except AudioFileError:
        raise
    except Exception as exc:  # av raises FFmpegError flavours, OSError, ValueError
        raise AudioFileError(f"{path}: cannot read this audio file (libsndfile: {why}; FFmpeg: {exc})") from None
    if not chunks or not rate:
        raise AudioFileError(f"{path}: its audio stream holds no samples")
    return np.concatenate(chunks).astype(dtype, copy=False), int(rate), claimed


def _claimed_frames(container, stream, rate: int) -> int | None:
    """The length the file's header gives its audio stream (or the whole file), in frames."""
    if stream.duration and stream.time_base:
        return round(stream.duration * stream.time_base * rate)
    if container.duration:
        return round(container.duration / 1_000_000 * rate)  # (AV_TIME_BASE)
    return None
