"""NDI output: frames over the network to Resolume, TouchDesigner, OBS, vMix... on any OS.

NDI is the network counterpart of Spout (and, unlike Spout, it also runs on macOS and Linux):
a named source that receivers on the local network find and subscribe to. We send through
`ndi-python` (the NDI SDK's own C API, `NDIlib`, with the NDI runtime inside its wheels). The
sender is made and used on the sink's own thread; each frame becomes uint8 RGBX on its device
and is copied into host memory (CPU frames: a reused buffer; CUDA frames: the pinned
readback Spout uses, outputs/readback.py), then `send_send_video_v2`, which compresses the
frame for the network before returning. The sender is not clocked (`clock_video=False`): the
engine paces the frames, and latest wins when a send is slow.

With `live_audio` (outputs/live_audio.AudioTap), the audio input goes out with the picture:
after each frame, the blocks that arrived since, as one planar float audio frame. Then every
frame carries its time on the show clock as its NDI timecode (100 ns units), sound and picture
alike, so a receiver lines them up as they were heard and shown; without audio, NDI
synthesizes the timecodes.

Receivers find the source by mDNS (Avahi on Linux) as "HOST (NAME)". Where discovery does not
work (no Avahi, another subnet), a receiver can connect by address, or use an NDI Discovery
Server. NDI® is a registered trademark of Vizrt NDI AB (https://ndi.video).
"""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np

from .base import SinkError, SinkUnavailableError, ThreadedSink
from .readback import RgbaReadback, producer_event

log = logging.getLogger(__name__)


def import_ndi():
    """The `NDIlib` module (ndi-python), or `SinkUnavailableError` saying why not."""
    try:
        import NDIlib
    except ImportError as err:
        raise SinkUnavailableError("ndi: ndi-python is not installed (pip install ganinstrument[ndi])") from err
    except OSError as err:  # the bundled runtime did not load
        raise SinkUnavailableError(f"ndi: the NDI runtime did not load: {err}") from err
    return NDIlib


class NdiSink(ThreadedSink):
    """An NDI source named `source_name` (receivers see "HOST (source_name)"); latest wins."""

    def __init__(self, source_name: str = "ganinstrument", *, name: str = "ndi", live_audio=None):
        super().__init__(name, queue_size=1)
        self.source_name = source_name
        self.live_audio = live_audio
        self._feed = None  # live_audio.Feed, while the sender runs
        self._audio = None  # the NDI audio frame, reused
        self.audio_frames = 0  # sent (sink thread)
        self.full_name: str | None = None  # "HOST (source_name)", once started
        # Owned by the sink thread:
        self._ndi = None
        self._sender = None
        self._video = None
        self._readback: RgbaReadback | None = None
        self._connections = 0  # counted on the sink thread after each send

    def _prepare(self, frame):
        return frame, producer_event(frame.pixels)  # engine thread: no waiting, see readback.py

    def _start(self) -> None:
        ndi = import_ndi()
        if not ndi.initialize():
            raise SinkUnavailableError("ndi: the NDI runtime did not start (it needs a CPU with SSE4.2)")
        settings = ndi.SendCreate()
        settings.ndi_name = self.source_name
        settings.clock_video = False
        settings.clock_audio = False
        sender = ndi.send_create(settings)
        if sender is None:
            raise SinkError(f"ndi: could not create the source {self.source_name!r} "
                            "(is the name already used by another program here?)")
        self._ndi, self._sender = ndi, sender
        self.full_name = ndi.send_get_source_name(sender).ndi_name or self.source_name
        video = ndi.VideoFrameV2()
        video.FourCC = ndi.FOURCC_VIDEO_TYPE_RGBX
        video.frame_format_type = ndi.FRAME_FORMAT_TYPE_PROGRESSIVE
        video.timecode = ndi.SEND_TIMECODE_SYNTHESIZE  # the binding's default is 0 for every frame
        rate = Fraction(self.fps).limit_denominator(1001)
        video.frame_rate_N, video.frame_rate_D = rate.numerator, rate.denominator
        self._video = video
        if self.live_audio is not None:
            self._audio = ndi.AudioFrameV2()
            self._feed = self.live_audio.subscribe()
        log.info("ndi: sending as %r%s", self.full_name, " with the audio input" if self._feed else "")

    def _write(self, item) -> None:
        frame, event = item
        pixels = frame.pixels  # [H, W, 3] uint8 on the render device
        if self._readback is None or not self._readback.fits(pixels):
            if self._readback is not None:
                self._readback.synchronize()  # no copy may still use the buffers we drop
            self._readback = RgbaReadback(pixels)
        rgbx = self._readback.wait(self._readback.start(pixels, event))
        video = self._video
        video.data = rgbx  # sets the size and the line stride too
        video.picture_aspect_ratio = rgbx.shape[1] / rgbx.shape[0]
        if self._feed is not None:
            video.timecode = _timecode(frame.timestamp)
        self._ndi.send_send_video_v2(self._sender, video)
        if self._feed is not None:
            self._send_audio(self._feed.drain())
        self._connections = int(self._ndi.send_get_no_connections(self._sender, 0))

    def _send_audio(self, blocks) -> None:
        """The blocks since the last frame, as few audio frames as their rates and channel
        counts allow, each stamped with its first block's time."""
        while blocks:
            time_s, rate, first = blocks[0]
            same = 1
            while same < len(blocks) and blocks[same][1] == rate and blocks[same][2].shape[1] == first.shape[1]:
                same += 1
            samples = np.concatenate([b[2] for b in blocks[:same]]) if same > 1 else first  # [n, ch]
            audio = self._audio
            audio.sample_rate = int(rate)
            audio.data = np.ascontiguousarray(samples.T)  # planar [ch, n]; sets the counts and stride
            audio.timecode = _timecode(time_s)
            self._ndi.send_send_audio_v2(self._sender, audio)
            self.audio_frames += 1
            blocks = blocks[same:]

    def hud_lines(self) -> dict[str, str]:
        """Who is watching."""
        n = self._connections
        return {self.name: f"{n} receiver{'' if n == 1 else 's'}"}

    @property
    def connections(self) -> int:
        """How many receivers were connected at the last send (any thread: the sender itself is
        only ever touched on the sink's thread, so a failing sink cannot free it under us)."""
        return self._connections

    def _finish(self) -> None:
        if self._feed is not None:
            self.live_audio.unsubscribe(self._feed)
            self._feed = None
        sender, self._sender = self._sender, None
        self._connections = 0
        if self._readback is not None:
            self._readback.synchronize()
        if sender is not None:
            self._ndi.send_destroy(sender)


def _timecode(seconds: float) -> int:
    """NDI's timecode: 100 ns units."""
    return int(round(seconds * 1e7))
