"""Recording: H.264 video files (PyAV), with the live audio input (live_audio.py) or a sound
file muxed in at the end (mux.py). PNG frame folders are frames.py.

A sound file that cannot be added leaves the video without sound at the path, and says so.

The recording's frame rate is the real one. Each frame's presentation time is its own
`frame.timestamp` (relative to the first frame) on a 1/90000 s time base, so a live take whose
frame rate wandered plays back with the timing it had on stage, and the stream's average rate
is the measured one. An offline render, whose timestamps are exactly i / fps, gives a
constant-rate file. B-frames are off: the mp4 muxer then needs no edit list, and the file's
duration is the last frame's time plus its duration (the previous frame interval).

The encoder is NVENC (`h264_nvenc`) where it opens, else libx264, always yuv420p (what every
player and VJ host reads), which needs an even width and height: an odd last row or column is
cropped. The encoder opens when the recording starts; with `codec="auto"`, an NVENC that
probed fine but will not open now (e.g. the GeForce limit on concurrent sessions, with OBS
encoding too) falls back to libx264 with a warning.

Colour: RGB is converted to YUV with the BT.709 matrix, limited range (CUDA frames on the GPU,
outputs/yuv.py: half the download and no conversion on the host; CPU frames by swscale), and
the stream is tagged BT.709 (primaries, transfer, matrix) and limited range, which is what
players assume for HD anyway; untagged BT.601 YUV would play with a slight colour shift.

Crash-safe (`crash_safe=True`, what `perform` uses): an .mp4/.mov is written as fragmented MP4
with a keyframe and a fragment every second, so a show that dies (a driver crash, the power)
leaves a file that plays up to its last second. A plain MP4 keeps its index (the moov box) for
the end and is unreadable without it. Offline renders write plain MP4.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from .base import SinkError, SinkUnavailableError, ThreadedSink
from .mux import import_av, mux_audio
from .readback import producer_event

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)  # MPEG's clock: fine enough for any frame rate
AUTO_CODECS = ("h264_nvenc", "libx264")  # what codec="auto" tries, in order
FALLBACK_CODEC = "libx264"  # what an "auto" choice falls back to when it will not open
# BT.709, limited ("tv") range: generic AVCodecContext options, so every encoder writes them
# into the H.264 VUI and the muxer into the mp4's colr box.
COLOR_OPTIONS = {"color_primaries": "bt709", "color_trc": "bt709", "colorspace": "bt709",
                 "color_range": "tv"}
# What each encoder said when tried, and when: (opened, time). An encoder that did not open is
# tried again after PROBE_RETRY_S (NVENC refuses while other programs hold its sessions, and
# takes later in the show should get it back once they let go).
_codec_probe: dict[tuple[str, int, int], tuple[bool, float]] = {}
PROBE_RETRY_S = 60.0
_clock = time.monotonic
# The mp4 muxer's options for a file that plays after a crash: the index up front (empty), a
# fragment at every keyframe, each fragment self-contained, and every packet handed to the
# file at once (else up to 32 KiB waits in FFmpeg's buffer and dies with the process). With a
# live audio track, the muxer holds video packets until the audio of their time arrives: at
# most 1 s (not FFmpeg's 10), should the audio input go quiet (unplugged).
FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1",
                  "max_interleave_delta": "1000000"}
FRAGMENTABLE = (".mp4", ".mov", ".m4v")


class _EncoderOpenError(Exception):
    """The video encoder did not open (the reason is the `__cause__`)."""


def _encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    if codec == "h264_nvenc":
        # Constant quality: the target bit rate must be 0, or VBR caps at it (PyAV < 18 sets
        # 1,024,000 on a new stream).
        return {"preset": "p4", "rc": "vbr", "cq": str(crf + 1), "b": "0", "bf": "0"}
    if codec == "libx264":
        return {"crf": str(crf), "preset": preset, "bf": "0"}
    return {"bf": "0"}


def codec_opens(codec: str, width: int, height: int, fps: float = 30.0) -> bool:
    """True if `codec` can encode `width` x `height` here (NVENC needs an NVIDIA driver)."""
    key = (codec, width, height)
    tried = _codec_probe.get(key)
    if tried is None or (not tried[0] and _clock() - tried[1] >= PROBE_RETRY_S):
        av = import_av()
        ok = codec in av.codecs_available
        if ok:
            try:
                cc = av.CodecContext.create(codec, "w")
                cc.width, cc.height, cc.pix_fmt = width, height, "yuv420p"
                cc.time_base = Fraction(1, max(1, round(fps)))
                cc.options = _encoder_options(codec, 18, "veryfast")
                cc.open()  # freed when collected
            except Exception as err:  # av raises OSError/PermissionError/ValueError flavours
                log.debug("encoder %s does not open here: %s", codec, err)
                ok = False
        _codec_probe[key] = (ok, _clock())
    return _codec_probe[key][0]


def pick_video_codec(codec: str, width: int, height: int, fps: float) -> str:
    """`"auto"`: the first of `AUTO_CODECS` (h264_nvenc, libx264) that opens. A named codec
    must open."""
    if codec == "auto":
        for name in AUTO_CODECS:
            if codec_opens(name, width, height, fps):
                return name
        raise SinkUnavailableError(
            f"record: none of {' / '.join(AUTO_CODECS)} is available in PyAV")
    if not codec_opens(codec, width, height, fps):
        raise SinkUnavailableError(f"record: the encoder {codec!r} does not open here")
    return codec


def _even(n: int) -> int:
    return n - n % 2


def next_free_path(path: Path, taken=()) -> Path:
    """`path` with the first "-N" (N = 2, 3, ...) that names no existing file (nor one in
    `taken`)."""
    n = 2
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists() or candidate in taken:
        n += 1
    return candidate


# errnos that mean the output cannot be written (the disk or the quota is full, the file too large)
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EIO, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


class VideoRecorder(ThreadedSink):
    """Writes frames to an H.264 file on its own thread, through a bounded FIFO.

    `audio` (a file path, or a float32 array [samples] / [samples, channels] in [-1, 1] with
    `audio_sample_rate`) is muxed in as AAC when the recording closes. `live_audio` (an
    outputs/live_audio.AudioTap) records the live audio input alongside, as it arrives.

    `convert`: where RGB becomes YUV: "auto" (on the GPU for CUDA frames, on the host for CPU
    frames), "device" (always with outputs/yuv.py) or "host" (always swscale).
    `crash_safe`: fragmented MP4 with a keyframe every second, playable after a crash (see
    the module's docstring). `reopen`: after a failure (the disk, the encoder), the file so far
    is kept and recording goes on in a new one (the live `record:` output); offline, a failure
    ends the recording.
    """

    def __init__(self, path: str | os.PathLike, *, codec: str = "auto", crf: int = 18,
                 preset: str = "veryfast", audio=None, audio_sample_rate: int | None = None,
                 queue_size: int = 32, on_full: str = "drop", name: str = "record",
                 crash_safe: bool = False, convert: str = "auto", live_audio=None,
                 reopen: bool = False):
        super().__init__(name, queue_size=queue_size, on_full=on_full, drain_on_close=True)
        self.path = Path(path)
        self.codec_request = codec
        self.codec: str | None = None  # the encoder chosen at open
        self.crf, self.preset = crf, preset
        self.crash_safe = crash_safe
        if convert not in ("auto", "device", "host"):
            raise ValueError(f"convert must be 'auto', 'device' or 'host', got {convert!r}")
        self.convert = convert
        self.audio, self.audio_sample_rate = audio, audio_sample_rate
        if audio is not None and live_audio is not None:
            raise ValueError("record: an audio file or the live audio input, not both")
        self.live_audio = live_audio
        self.restart = reopen
        self._first_path = self.path
        self._new_file()

    def _new_file(self) -> None:
        """The state of one file, owned by the sink thread."""
        self._container = self._stream = None
        self._t0: float | None = None
        self._last_pts = -1
        self._interval = 0  # the last frame interval, in TIME_BASE ticks
        self._held = None  # the newest packet: muxed once the next one tells its duration
        self._frames = 0
        self._reformatter = None
        self._i420 = None  # I420Download: CUDA frames converted on their device
        self._feed = None  # live_audio.Feed: the audio input's blocks since the recording opened
        self.first_timestamp = self.last_timestamp = None  # of the frames written (read after close)
        self.audio_track = None  # live_audio.LiveAudioTrack, from the first frame

    def _before_reopen(self) -> None:
        """After a failure (`reopen`): what was recorded is finished and kept; the recording
        goes on in a new file beside it, "name-2.mp4" (or -3, ...), never over a file."""
        self.path = next_free_path(self._first_path)
        self._new_file()

    def _reopened(self) -> str:
        return f"{self.name}: recording goes on in {self.path.name}"

    def _start(self) -> None:
        av = import_av()
        if not self.path.parent.is_dir():
            raise SinkError(f"record: the folder {self.path.parent} does not exist")
        width, height = _even(self.width), _even(self.height)
        if width < 2 or height < 2:
            raise SinkError(f"record: {self.width}x{self.height} is too small to encode")
        self.codec = pick_video_codec(self.codec_request, width, height, self.fps)
        target = self._video_path()
        while True:
            try:
                self._container, self._stream = self._open_video(av, target, width, height)
                break
            except _EncoderOpenError as err:
                if self.codec_request != "auto" or self.codec == FALLBACK_CODEC:
                    raise SinkError(f"record: the encoder {self.codec} does not open for "
                                    f"{self.path}: {err.__cause__}") from err.__cause__
                log.warning("record: %s: %s does not open (%s); falling back to %s", self.path,
                            self.codec, err.__cause__, FALLBACK_CODEC)
                self.codec = FALLBACK_CODEC
        self._reformatter = av.video.reformatter.VideoReformatter()
        if self.live_audio is not None:
            self._feed = self.live_audio.subscribe()  # from now, so the first frame has its sound
        self._interval = round(1 / (self.fps * TIME_BASE))
        log.info("record: %s, %s %dx%d", self.path, self.codec, width, height)

    def _open_video(self, av, target: Path, width: int, height: int):
        """(container, stream) for `target` with `self.codec` opened now, not at the first
        frame, so a failure shows at start. Raises `_EncoderOpenError` (the cause attached)
        when the encoder will not open; the container is then closed and nothing written."""
        fragmented = self.crash_safe and target.suffix.lower() in FRAGMENTABLE
        try:
            container = av.open(str(target), "w", options=dict(FRAGMENTED_MP4) if fragmented else None)
        except Exception as err:
            raise SinkError(f"record: cannot write {target}: {err}") from err
        try:
            rate = Fraction(self.fps).limit_denominator(1001)
            stream = container.add_stream(self.codec, rate=rate)
            cc = stream.codec_context
            cc.width, cc.height, cc.pix_fmt = width, height, "yuv420p"
            cc.time_base = TIME_BASE
            stream.time_base = TIME_BASE
            cc.options = {**_encoder_options(self.codec, self.crf, self.preset),
                          **COLOR_OPTIONS}
            if self.crash_safe:
                cc.gop_size = max(1, round(self.fps))  # a keyframe, so a fragment, every second
            try:
                cc.open()
            except Exception as err:  # av raises OSError/PermissionError/ValueError flavours
                raise _EncoderOpenError() from err
        except BaseException:
            container.close()  # header not written yet: no file is left behind
            raise
        return container, stream

    def _video_path(self) -> Path:
        if self.audio is None:
            return self.path
        return self.path.with_name(self.path.stem + ".video-only" + self.path.suffix)

    def _prepare(self, frame):
        # On the engine thread: where a CUDA frame's pixels are complete (see readback.py), for
        # the conversion on the device; the host path needs none
        return frame, (None if self.convert == "host" else producer_event(frame.pixels))

    def _write(self, item) -> None:
        frame, event = item
        stream = self._stream
        vf = self._video_frame(frame, event, stream.width, stream.height)
        if self._t0 is None:
            self._t0 = frame.timestamp
            self._start_audio_track()
            self.first_timestamp = frame.timestamp  # (after: the HUD reads the track once this is set)
        self.last_timestamp = frame.timestamp
        pts = round((frame.timestamp - self._t0) / TIME_BASE)
        if pts <= self._last_pts:  # a repeated or backwards timestamp: keep time moving
            pts = self._last_pts + 1
        if self._last_pts >= 0:
            self._interval = pts - self._last_pts
        self._last_pts = pts
        vf.pts, vf.time_base = pts, TIME_BASE
        for packet in stream.encode(vf):
            self._mux(packet)
        self._frames += 1
        if self.audio_track is not None:
            self._audio_step(self.audio_track.write)

    def _start_audio_track(self) -> None:
        feed, tap = self._feed, self.live_audio
        if feed is None:
            return
        if not tap.sample_rate:
            log.info("record: %s: no audio input is running; recording the picture only", self.path)
            self._drop_feed()
            return
        from .live_audio import LiveAudioTrack

        try:
            self.audio_track = LiveAudioTrack(import_av(), self._container, feed, tap.sample_rate,
                                              tap.channels, self._t0)
        except Exception as err:  # av raises OSError/ValueError flavours
            log.warning("record: %s: the audio track did not open (%s); recording the picture only",
                        self.path, err)
            self._drop_feed()

    def _audio_step(self, step, *args) -> None:
        """An audio track that fails is dropped (said once); the picture goes on."""
        try:
            step(*args)
        except Exception as err:
            log.warning("record: %s: writing the audio failed (%s); the rest is picture only",
                        self.path, err)
            self.audio_track = None
            self._drop_feed()

    def _drop_feed(self) -> None:
        if self._feed is not None:
            self.live_audio.unsubscribe(self._feed)
            self._feed = None

    def _video_frame(self, frame, event, width: int, height: int):
        """The frame as yuv420p of the stream's size, converted on its device (CUDA frames;
        outputs/yuv.py) or on the host (swscale)."""
        import av

        pixels = frame.pixels  # [H, W, 3] uint8 on the render device
        same_size = (int(pixels.shape[0]), int(pixels.shape[1])) == (self.height, self.width)
        on_device = self.convert == "device" or (self.convert == "auto" and pixels.is_cuda)
        if on_device and same_size:
            pixels = pixels[:height, :width]  # crop odd sizes to even
            if self._i420 is None or not self._i420.fits(pixels):
                from .yuv import I420Download

                if self._i420 is not None:
                    self._i420.synchronize()
                self._i420 = I420Download(pixels)
            return av.VideoFrame.from_ndarray(self._i420(pixels, event), format="yuv420p")
        img = frame.image  # [H, W, 3] uint8
        if same_size:
            img = img[:height, :width]  # crop odd sizes to even
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        # Scale if the size changed, and convert with BT.709 (limited range is swscale's
        # default for YUV); left to the encoder, PyAV would use BT.601.
        return self._reformatter.reformat(vf, width, height, "yuv420p", dst_colorspace="itu709")

    def _mux(self, packet) -> None:
        held, self._held = self._held, packet
        if held is not None:
            held.duration = max(1, packet.pts - held.pts)
            self._container.mux(held)

    def _finish(self) -> None:
        if self._i420 is not None:
            self._i420.synchronize()  # no conversion may still use the buffers we drop
            self._i420 = None
        container = self._container
        if container is None:
            self._drop_feed()
            return
        target = self._video_path()
        try:
            try:
                if self._frames:
                    for packet in self._stream.encode(None):
                        self._mux(packet)
                    if self._held is not None:
                        self._held.duration = max(1, self._interval)
                        container.mux(self._held)
                        self._held = None
                    if self.audio_track is not None:
                        self._audio_step(self.audio_track.finish, float((self._last_pts + self._interval) * TIME_BASE))
            finally:
                self._drop_feed()
                self._container = None
                container.close()
        except BaseException:
            if target != self.path:  # (a full disk: the picture-only intermediate, unfinished, is not left behind)
                with contextlib.suppress(OSError):
                    target.unlink()
            raise
        if not self._frames:
            log.warning("record: no frames arrived; %s not written", self.path)
            target.unlink(missing_ok=True)
            return
        if self.audio is not None:
            self._add_sound(target)

    def _add_sound(self, video: Path) -> None:
        """The sound file muxed into the finished `video` at `self.path`; where the sound
        cannot be added, the picture is kept there without it (said in one line)."""
        try:
            mux_audio(video, self.audio, self.path, sample_rate=self.audio_sample_rate)
        except Exception as err:  # av raises FFmpegError flavours; SinkError, ValueError
            if isinstance(err, OSError) and err.errno in _DISK_FULL:  # not the sound's fault: the video
                with contextlib.suppress(OSError):  # cannot be written either, and a half one is no take
                    self.path.unlink()
                raise
            where = os.fspath(self.audio) if isinstance(self.audio, (str, os.PathLike)) else "the audio"
            why = str(err) if where in str(err) else f"{where}: {err}"
            log.warning("record: the sound could not be added (%s); the video is kept without sound", why)
            os.replace(video, self.path)
        finally:
            video.unlink(missing_ok=True)  # (gone already where it was kept)
