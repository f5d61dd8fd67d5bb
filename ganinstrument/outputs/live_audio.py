"""The live audio input in live recordings: what the audience heard, beside what they saw.

The features thread (sources/audio/pipeline.FeatureWorker) pushes every block it analyses into
an `AudioTap`, with the clock time of the block's first sample (the jitter-free arrival time the
onsets use), but only while some recording listens: the tap costs nothing otherwise. The
channels recorded are the ones the analysis uses: one is a mono track, two or more give the
first two as stereo.

A recording (`record:` in `perform`, and every take) subscribes when it opens and gets a `Feed`,
a bounded queue the features thread appends to and the recorder's thread drains. At each video
frame the recorder's `LiveAudioTrack` writes what has arrived as AAC into the same file, each
block placed by its clock time against the time of the recording's first frame, on the clock the
frames' timestamps use: sound and picture line up in the file as they did on stage (the
picture's reaction to a beat comes its processing latency after the beat, as it did live).

Blocks are written back to back; the clock times only steer. The sound card's clock and the
computer's drift apart (tens of parts per million: a few tenths of a second an hour), so once
the track is more than `DEADBAND_S` off the clock, each block gains or loses one sample until it
is back (a slip no one hears). A jump of more than `RESYNC_S` (blocks dropped in the ring, the
device lost and reopened) re-aligns at once: silence fills a gap, an overlap is cut. Blocks at
another sample rate than the track's (a device reopened at another rate) are left out, and said
once. The input may run at any rate: the AAC track gets one the encoder takes (192 kHz becomes
48 kHz; outputs/mux.AacWriter resamples), with the placing done at the input's rate.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from ..common.queues import DropQueue
from .mux import AUDIO_BIT_RATE, AacWriter

log = logging.getLogger(__name__)

DEADBAND_S = 0.010  # the track may be this far off the blocks' clock times before it slips samples
RESYNC_S = 0.050  # further off than this, it re-aligns at once (silence, or a cut)
FEED_BLOCKS = 1024  # a feed holds this many blocks (~5 s of 256-frame blocks at 48 kHz)


class Feed(DropQueue[tuple[float, int, np.ndarray]]):
    """One listener's queue of (time_s, sample_rate, block [n, channels] float32); the oldest
    block goes (and is counted in `dropped`) when a full feed gets a new one."""

    __slots__ = ()

    def __init__(self, max_blocks: int = FEED_BLOCKS):
        super().__init__(max_blocks, drop="oldest")


class AudioTap:
    """Fans the audio input's blocks out to the recordings listening (see the module's docstring).

    `configure` (the audio input, when its stream opens) and `push` (the features thread) on one
    side; `subscribe` / `unsubscribe` (recorders' threads) on the other. The list of feeds is
    replaced, never changed in place, so `push` reads it without a lock.
    """

    def __init__(self) -> None:
        self.sample_rate = 0  # of the running input; 0 before it opens
        self.channels = 0  # 1 or 2: what a recording's track gets
        self._feeds: tuple[Feed, ...] = ()
        self._lock = threading.Lock()

    def configure(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = int(sample_rate)
        self.channels = 1 if channels <= 1 else 2

    @property
    def wanted(self) -> bool:
        return bool(self._feeds)

    def subscribe(self, max_blocks: int = FEED_BLOCKS) -> Feed:
        feed = Feed(max_blocks)
        with self._lock:
            self._feeds = (*self._feeds, feed)
        return feed

    def unsubscribe(self, feed: Feed) -> None:
        with self._lock:
            self._feeds = tuple(f for f in self._feeds if f is not feed)

    def push(self, block: np.ndarray, time_s: float) -> None:
        """Features thread: `block` [n, channels] (the analysed channels, at most the first two
        are kept) whose first sample arrived at `time_s`. Copied once for every listener."""
        feeds = self._feeds
        if not feeds:
            return
        samples = np.array(block[:, :2], dtype=np.float32)  # a copy: the worker reuses its block
        if not np.isfinite(samples).all():
            np.nan_to_num(samples, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
        np.clip(samples, -1.0, 1.0, out=samples)
        item = (float(time_s), self.sample_rate, samples)
        for feed in feeds:
            feed.put(item)


class LiveAudioTrack:
    """One recording's audio track, written on the recorder's thread.

    `container`: the recording's open PyAV output (nothing muxed yet); `t0`: the clock time of
    its first video frame, which is the track's time 0. `write()` places what the feed holds;
    `finish(end_s)` writes the rest up to the video's end and flushes the encoder.
    """

    def __init__(self, av, container, feed: Feed, sample_rate: int, channels: int, t0: float, *,
                 bit_rate: int = AUDIO_BIT_RATE, deadband_s: float = DEADBAND_S,
                 resync_s: float = RESYNC_S):
        self._av = av
        self.feed = feed
        self.sample_rate = int(sample_rate)
        self.channels = 1 if channels <= 1 else 2
        self.layout = "mono" if self.channels == 1 else "stereo"
        self.t0 = float(t0)
        self.deadband = round(deadband_s * self.sample_rate)
        self.resync = round(resync_s * self.sample_rate)
        self.aac = AacWriter(av, container, self.sample_rate, self.channels, bit_rate)
        self._placed = 0  # samples put into the track (the FIFO's end), from time 0
        self.resyncs = 0  # re-alignments after the first
        self.slips = 0  # samples gained or lost following the clock
        self.silence_s = 0.0  # silence written into gaps (and before a late first block)
        self.cut_s = 0.0  # audio left out where blocks overlapped the track
        self.wrong_rate_blocks = 0

    @property
    def seconds(self) -> float:
        """The track's length so far (what went to the encoder)."""
        return self.aac.seconds

    def write(self) -> None:
        """Place every block waiting in the feed, and encode whole AAC frames."""
        for time_s, rate, block in self.feed.drain():
            self._place(time_s, rate, block)
        self.aac.encode()

    def finish(self, end_s: float) -> None:
        """Write what is left, up to `end_s` on the track's time line, and flush the encoder."""
        for time_s, rate, block in self.feed.drain():
            self._place(time_s, rate, block)
        if self._placed == 0:  # no sound ever came (the input stalled): silence, not an empty track
            self._silence(max(0, round(end_s * self.sample_rate)))
        self.aac.close(limit=max(0, round(end_s * self.aac.rate)))
        log.info("record: audio %.1f s; re-aligned %d times (%.3f s of silence, %.3f s cut), %d "
                 "samples slipped, %d blocks dropped by the feed, %d at another sample rate",
                 self.seconds, self.resyncs, self.silence_s, self.cut_s,
                 self.slips, self.feed.dropped, self.wrong_rate_blocks)

    # -- inside ---------------------------------------------------------------------------
    def _place(self, time_s: float, rate: int, block: np.ndarray) -> None:
        if rate != self.sample_rate:
            if not self.wrong_rate_blocks:
                log.warning("record: the audio input now runs at %d Hz, the recording's track at %d Hz; "
                            "its audio is left out of this recording", rate, self.sample_rate)
            self.wrong_rate_blocks += 1
            return
        at = round((time_s - self.t0) * self.sample_rate)  # where the clock puts the block
        drift = at - self._placed
        n = block.shape[0]
        if self._placed == 0 or abs(drift) > self.resync:  # the first block, or a jump
            if self._placed:
                self.resyncs += 1
            if drift > 0:
                self._silence(drift)
            elif drift < 0:
                if self._placed:  # (before the first frame is not a cut)
                    self.cut_s += min(-drift, n) / self.sample_rate
                if -drift >= n:
                    return  # wholly before the track's end (or its start)
                block = block[-drift:]
        elif drift > self.deadband:  # the card's clock runs slow: one sample more
            block = np.concatenate((block, block[-1:]))
            self.slips += 1
        elif drift < -self.deadband and n > 1:  # it runs fast: one sample fewer
            block = block[:-1]
            self.slips += 1
        self._append(block)

    def _silence(self, samples: int) -> None:
        self.silence_s += samples / self.sample_rate
        step = 4096
        while samples > 0:
            n = min(step, samples)
            self._append(np.zeros((n, self.channels), np.float32))
            samples -= n

    def _append(self, block: np.ndarray) -> None:
        if block.shape[1] != self.channels:  # the input's channels changed on a reopen
            block = block.mean(axis=1, keepdims=True) if self.channels == 1 else np.repeat(block[:, :1], 2, 1)
        frame = self._av.AudioFrame.from_ndarray(np.ascontiguousarray(block.T), format="fltp",
                                                 layout=self.layout)
        frame.sample_rate = self.sample_rate
        self.aac.write(frame)
        self._placed += block.shape[0]
