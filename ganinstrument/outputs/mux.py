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
            aac = AacWriter(av, out, rate, layout, bit_rate)
            for packet in src.demux(vin):
                if packet.dts is None:  # the demuxer's empty end-of-stream packet
                    continue
                packet.stream = vout
                out.mux(packet)
            limit = round(video_s * rate) if (shortest and video_s) else None
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            for frame in frames:
                for converted in resampler.resample(frame):
                    aac.write(converted)
                aac.encode(limit=limit)
            for converted in resampler.resample(None):
                aac.write(converted)
            aac.close(limit=limit)
    return out_path


class AacWriter:
    """An AAC stream added to `container`, fed fltp frames of any length (at its rate and
    layout): a FIFO hands the encoder whole AAC frames, each timed by the samples before it.
    The live audio track and `mux_audio` both write through this."""

    def __init__(self, av, container, rate: int, layout: str, bit_rate: int = AUDIO_BIT_RATE):
        self.container = container
        stream = container.add_stream("aac", rate=rate)
        stream.layout = layout
        stream.bit_rate = bit_rate
        stream.time_base = Fraction(1, rate)
        stream.codec_context.open()  # fail here, not at the first samples
        self.stream = stream
        self._fifo = av.AudioFifo()
        self.encoded = 0  # samples handed to the encoder

    @property
    def queued(self) -> int:
        """Samples written and not encoded yet."""
        return self._fifo.samples

    def write(self, frame) -> None:
        frame.pts = None  # the FIFO's output is timed by `encoded`
        self._fifo.write(frame)

    def encode(self, *, limit: int | None = None, final: bool = False) -> None:
        """Encode the whole AAC frames waiting (and, `final`, the rest), never past sample
        `limit` of the stream."""
        size = self.stream.codec_context.frame_size or 1024
        while self._fifo.samples >= size or (final and self._fifo.samples):
            n = min(size, self._fifo.samples)
            if limit is not None:
                n = min(n, limit - self.encoded)
                if n <= 0:
                    return
            chunk = self._fifo.read(n)
            chunk.pts, chunk.time_base = self.encoded, self.stream.time_base
            self.encoded += chunk.samples
            for packet in self.stream.encode(chunk):
                self.container.mux(packet)

    def close(self, *, limit: int | None = None) -> None:
        """Encode what is left (up to `limit`) and flush the encoder."""
        self.encode(limit=limit, final=True)
        for packet in self.stream.encode(None):
            self.container.mux(packet)


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
