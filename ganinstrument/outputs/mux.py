"""Muxing a finished recording with a sound file or samples (what `render` does with its
music): the video is copied as it is, the audio encoded as AAC beside it."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from .base import SinkError, SinkUnavailableError

AUDIO_BIT_RATE = 192_000


def import_av():
    try:
        import av
    except ImportError as err:
        raise SinkUnavailableError(
            "record: PyAV is not installed (pip install av)") from err
    return av


def mux_audio(video_path: str | os.PathLike, audio, out_path: str | os.PathLike, *,
              sample_rate: int | None = None, shortest: bool = False,
              bit_rate: int = AUDIO_BIT_RATE) -> Path:
    """Copy the video of `video_path` (no re-encode) and add `audio` as AAC into `out_path`.

    `audio`: a file PyAV can read, or a float32 array [samples] or [samples, channels] in
    [-1, 1] with `sample_rate`. Audio starts at time 0, like the video. With `shortest`, audio
    past the video's end is cut. Raises `SinkError` naming the unreadable input.
    """
    av = import_av()
    video_path, out_path = Path(video_path), Path(out_path)
    if Path(out_path).resolve() == video_path.resolve():
        raise ValueError("mux_audio: out_path must differ from video_path")
    try:
        src = av.open(str(video_path))
    except Exception as err:
        raise SinkError(f"{video_path}: cannot read the video: {err}") from err
    with src:
        vin = src.streams.video[0]
        video_s = float(vin.duration * vin.time_base) if vin.duration else None
        frames, rate, layout = _audio_frames(av, audio, sample_rate)
        with av.open(str(out_path), "w") as out:
            vout = out.add_stream_from_template(vin)
            aout = out.add_stream("aac", rate=rate)
            aout.layout = layout
            aout.bit_rate = bit_rate
            for packet in src.demux(vin):
                if packet.dts is None:  # the demuxer's empty end-of-stream packet
                    continue
                packet.stream = vout
                out.mux(packet)
            limit = round(video_s * rate) if (shortest and video_s) else None
            _encode_audio(av, frames, aout, out, rate, layout, limit)
    return out_path


def _audio_frames(av, audio, sample_rate):
    """(iterator of AudioFrames, sample rate, layout name) from a path or an array."""
    if isinstance(audio, (str, os.PathLike)):
        try:
            container = av.open(os.fspath(audio))
            stream = container.streams.audio[0]
        except Exception as err:
            raise SinkError(f"{audio}: cannot read audio: {err}") from err
        rate = sample_rate or stream.rate
        layout = "mono" if stream.channels == 1 else "stereo"

        def decoded():
            with container:
                yield from container.decode(stream)

        return decoded(), rate, layout
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2 or samples.shape[1] not in (1, 2) or not len(samples):
        raise ValueError(f"audio must be [samples] or [samples, 1|2] with samples, got "
                         f"shape {np.shape(audio)}")
    if not sample_rate:
        raise ValueError("an audio array needs its sample_rate")
    layout = "mono" if samples.shape[1] == 1 else "stereo"
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.T), format="fltp",
                                       layout=layout)
    frame.sample_rate = int(sample_rate)
    return iter([frame]), int(sample_rate), layout


def _encode_audio(av, frames, aout, out, rate, layout, limit) -> None:
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    fifo = av.AudioFifo()
    written = 0

    def drain(final: bool) -> None:
        nonlocal written
        size = aout.codec_context.frame_size or 1024
        while fifo.samples >= size or (final and fifo.samples):
            chunk = fifo.read(min(size, fifo.samples))
            if limit is not None and written + chunk.samples > limit:
                if written >= limit:
                    return
                chunk = fifo_trim(av, chunk, limit - written, layout, rate)
            chunk.pts, chunk.time_base = written, Fraction(1, rate)
            written += chunk.samples
            for packet in aout.encode(chunk):
                out.mux(packet)

    for frame in frames:
        frame.pts = None  # the fifo re-times everything from 0
        for converted in resampler.resample(frame):
            fifo.write(converted)
        drain(False)
    for converted in resampler.resample(None):
        fifo.write(converted)
    drain(True)
    for packet in aout.encode(None):
        out.mux(packet)


def fifo_trim(av, chunk, keep: int, layout: str, rate: int):
    """The first `keep` samples of an fltp AudioFrame."""
    data = chunk.to_ndarray()[:, :keep]  # [channels, samples]
    trimmed = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp",
                                         layout=layout)
    trimmed.sample_rate = rate
    return trimmed
