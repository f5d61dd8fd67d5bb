"""Muxing a finished recording with a sound file or samples (what `render` does with its
music): the video is copied as it is, the audio encoded as AAC beside it."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from .base import SinkError, SinkUnavailableError

log = logging.getLogger(__name__)

AUDIO_BIT_RATE = 192_000
# FFmpeg's usual layout for each channel count, for arrays of samples
LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


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
    [-1, 1] with `sample_rate`; any rate and channel count (the AAC track gets a rate AAC takes,
    in mono or stereo: see `AacWriter`). Audio starts at time 0, like the video. With
    `shortest`, audio past the video's end is cut. A file that stops decoding part way gives
    the sound up to there (said once). Raises `SinkError` naming the unreadable input.
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
        frames, rate, channels = _audio_frames(av, audio, sample_rate)
        with av.open(str(out_path), "w") as out:
            vout = out.add_stream_from_template(vin)
            aac = AacWriter(av, out, rate, channels, bit_rate)
            for packet in src.demux(vin):
                if packet.dts is None:  # the demuxer's empty end-of-stream packet
                    continue
                packet.stream = vout
                out.mux(packet)
            limit = round(video_s * aac.rate) if (shortest and video_s) else None
            for frame in frames:
                aac.write(frame)
                aac.encode(limit=limit)
            aac.close(limit=limit)
    return out_path


def aac_rate(rate: int, supported=None) -> int:
    """The sample rate an AAC track gets for audio at `rate`: the same where the encoder takes
    it (8000..96000 Hz in the usual steps), else 44100 for the CD family above 48 kHz (176400),
    48000 for the rest above (192000), and the next rate up below (7000 -> 7350, 37800 -> 44100)."""
    if supported is None:
        supported = _aac_rates()
    rate = int(rate)
    if not supported or rate in supported:
        return rate
    if rate > 48000:
        return 44100 if rate % 44100 == 0 else 48000
    return min((r for r in supported if r >= rate), default=48000)


def _aac_rates() -> tuple[int, ...]:
    import av

    return tuple(av.codec.Codec("aac", "w").audio_rates or ())


class AacWriter:
    """An AAC stream added to `container`, fed audio frames of any length, format, rate and
    channel count: an `av.AudioResampler` turns them into what the encoder takes (the rate by
    `aac_rate`, mono or stereo: more channels are mixed down), and a FIFO hands the encoder whole
    AAC frames, each timed by the samples before it. The live audio track and `mux_audio` both
    write through this.

    `rate`, `channels`: the input's; `self.rate`, `self.layout`: the track's. The encoder is
    opened on its own first, so one that will not open raises before the container holds a
    stream it could never write."""

    def __init__(self, av, container, rate: int, channels: int, bit_rate: int = AUDIO_BIT_RATE):
        self.container = container
        self.rate = aac_rate(rate)
        self.layout = "mono" if channels <= 1 else "stereo"
        probe = av.CodecContext.create("aac", "w")
        probe.rate, probe.layout, probe.format, probe.bit_rate = self.rate, self.layout, "fltp", bit_rate
        probe.open()  # raises here, before the container is touched
        del probe
        stream = container.add_stream("aac", rate=self.rate)
        stream.layout = self.layout
        stream.bit_rate = bit_rate
        stream.time_base = Fraction(1, self.rate)
        stream.codec_context.open()
        self.stream = stream
        self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self._fifo = av.AudioFifo()
        self.encoded = 0  # samples handed to the encoder (at self.rate)

    @property
    def queued(self) -> int:
        """Samples written and not encoded yet (at the track's rate)."""
        return self._fifo.samples

    @property
    def seconds(self) -> float:
        """What went to the encoder, in seconds."""
        return self.encoded / self.rate

    def write(self, frame) -> None:
        """`frame`: an AudioFrame in any format, rate and layout (the same from one to the next)."""
        frame.pts = None  # the FIFO's output is timed by `encoded`
        for converted in self._resampler.resample(frame):
            converted.pts = None
            self._fifo.write(converted)

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
        """Encode what is left (up to `limit`, at the track's rate) and flush the encoder."""
        for converted in self._resampler.resample(None):
            converted.pts = None
            self._fifo.write(converted)
        self.encode(limit=limit, final=True)
        for packet in self.stream.encode(None):
            self.container.mux(packet)


def _audio_frames(av, audio, sample_rate):
    """(iterator of AudioFrames, sample rate, channels) from a path or an array."""
    if isinstance(audio, (str, os.PathLike)):
        try:
            container = av.open(os.fspath(audio))
            stream = container.streams.audio[0]
        except Exception as err:
            raise SinkError(f"{audio}: cannot read audio: {_why(err)}") from err
        rate, channels = stream.codec_context.rate, stream.codec_context.channels

        def decoded():
            seconds = 0.0
            with container:
                try:
                    for frame in container.decode(stream):
                        seconds += frame.samples / (frame.sample_rate or rate or 1)
                        yield frame
                except Exception as err:  # av raises FFmpegError flavours
                    if not seconds:
                        raise SinkError(f"{audio}: cannot decode its audio: {_why(err)}") from err
                    # (said at info: a music file cut short has been reported when it was read)
                    log.info("%s: the audio stops decoding after %.2f s (%s); the sound ends "
                             "there", audio, seconds, _why(err))

        return decoded(), rate, channels
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2 or samples.shape[1] not in LAYOUTS or not len(samples):
        raise ValueError(f"audio must be [samples] or [samples, 1..8] with samples, got "
                         f"shape {np.shape(audio)}")
    if not sample_rate:
        raise ValueError("an audio array needs its sample_rate")
    channels = samples.shape[1]
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.T), format="fltp",
                                       layout=LAYOUTS[channels])
    frame.sample_rate = int(sample_rate)
    return iter([frame]), int(sample_rate), channels


def _why(err: Exception) -> str:
    """What went wrong, without the file's name FFmpeg's errors repeat."""
    return getattr(err, "strerror", None) or str(err) or type(err).__name__
