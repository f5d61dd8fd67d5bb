"""The audio pipeline shared by live capture and offline analysis: the ring buffer the
PortAudio callback writes, the callback itself (`_Capture`), and the features worker that reads
whole blocks, runs the extractor and publishes the newest Features and onset events.

Threads and what each owns are described in `input.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ...common.clock import Clock
from ...common.queues import DropQueue

log = logging.getLogger(__name__)

# Features fields that are onset events -> the event's kind (the mapping's feature names)
ONSET_KINDS = (("onset", "onset"), ("onset_low", "onset.low"), ("onset_mid", "onset.mid"),
               ("onset_high", "onset.high"))
_STAMPS = 64  # arrival stamps kept (power of two); the worker only needs the newest


class Extractor(Protocol):
    """What the worker needs from `features.FeatureExtractor`."""

    def process(self, block: np.ndarray) -> Any:  # block: float32 [block_size]
        ...


@dataclass(frozen=True, slots=True)
class OnsetEvent:
    """One detected onset.

    `time_s`: when the analysis frame that fired ended, on the instrument's clock (live: the
    arrival time of the callback that delivered it, corrected by the frames after it; offline:
    stream time). `frame`: the same moment as a count of samples analysed (the stream position,
    minus any dropped blocks). `kind`: the mapping's feature name: "onset", "onset.low",
    "onset.mid" or "onset.high". `strength`: the block's onset_strength.
    """

    time_s: float
    frame: int
    kind: str = "onset"
    strength: float = 0.0


# -- the ring -------------------------------------------------------------------------------
class RingBuffer:
    """Fixed-size single-producer / single-consumer ring of float32 frames [capacity, channels].

    `_written` (frames ever written), `overflows` and `dropped_frames` belong to the producer;
    `_read` (frames ever read) to the consumer. Each side only reads the other's counter, and
    publishes its own after the data is in place, so under the GIL neither side can see a torn
    block. A write that does not fit is dropped whole and counted: the producer never waits
    and never touches data the consumer has not read yet.
    """

    def __init__(self, capacity: int, channels: int = 1):
        if capacity < 1 or channels < 1:
            raise ValueError(f"ring needs capacity >= 1 and channels >= 1, got {capacity}, {channels}")
        self.data = np.zeros((capacity, channels), np.float32)  # [frames, channels]
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._written = 0
        self._read = 0
        self.overflows = 0
        self.dropped_frames = 0

    @property
    def written(self) -> int:
        return self._written

    @property
    def read(self) -> int:
        return self._read

    def available(self) -> int:
        """Frames written and not yet read."""
        return self._written - self._read

    def write(self, frames: np.ndarray) -> bool:
        """Producer: copy `frames` [n, channels] in; False (and counted) when it does not fit."""
        n = frames.shape[0]
        w = self._written
        if n > self.capacity - (w - self._read):
            self.overflows += 1
            self.dropped_frames += n
            return False
        start = w % self.capacity
        first = min(n, self.capacity - start)
        self.data[start:start + first] = frames[:first]
        if first < n:
            self.data[:n - first] = frames[first:]
        self._written = w + n
        return True

    def read_into(self, out: np.ndarray) -> bool:
        """Consumer: fill `out` [n, channels] with the oldest n unread frames; False if fewer."""
        n = out.shape[0]
        r = self._read
        if self._written - r < n:
            return False
        start = r % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self.data[start:start + first]
        if first < n:
            out[first:] = self.data[:n - first]
        self._read = r + n
        return True


class _Capture:
    """The PortAudio side: the callback and the arrival stamps it owns."""

    def __init__(self, ring: RingBuffer, clock: Clock):
        self.ring = ring
        self.clock = clock
        self.stamp_frames = np.zeros(_STAMPS, np.int64)  # ring frames written after callback k
        self.stamp_times = np.zeros(_STAMPS, np.float64)  # clock time of callback k
        self.stamp_drops = np.zeros(_STAMPS, np.int64)  # ring frames dropped before callback k
        self.stamps = 0
        self.callbacks = 0
        self.status_overflows = 0  # PortAudio's input_overflow flags
        self.last_callback_s = clock.now()
        self.failed = False

    def callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """sounddevice's callback signature: copy, stamp, count; nothing else."""
        try:
            if status and status.input_overflow:
                self.status_overflows += 1
            self.ring.write(indata)
            now = self.clock.now()
            k = self.stamps & (_STAMPS - 1)
            self.stamp_frames[k] = self.ring._written
            self.stamp_times[k] = now
            self.stamp_drops[k] = self.ring.dropped_frames
            self.stamps += 1
            self.callbacks += 1
            self.last_callback_s = now
        except Exception:  # never let PortAudio abort the stream; the worker notices
            self.failed = True

    def time_of(self, frame: int, sample_rate: int) -> float:
        """Clock time of ring frame `frame`, taking the last frame of each callback as arriving
        when the callback ran.

        Callbacks run late (scheduling, xruns), never early, so each stamp gives a latest
        possible time origin (t_k - frames_k / rate) and the earliest over the recent stamps is
        the best one: jitter-free to the callback that ran on time. Only stamps since the last
        dropped block count (a drop shifts ring frames against real time). Called by the worker
        when an onset fires; the slot the callback may be writing is skipped.
        """
        count = self.stamps
        if count == 0:
            return self.clock.now()
        n = min(count - 1, _STAMPS - 2)
        newest = (count - 1) & (_STAMPS - 1)
        idx = (np.arange(count - 1 - n, count) & (_STAMPS - 1))
        same = self.stamp_drops[idx] == self.stamp_drops[newest]
        origin = np.min(self.stamp_times[idx][same] - self.stamp_frames[idx][same] / sample_rate)
        return float(origin) + frame / sample_rate


# -- the features worker ---------------------------------------------------------------------
class FeatureWorker:
    """Blocks from a ring -> sanitised mono -> extractor -> latest slot + onset events.

    `channels`: indices into the ring's channels to mix (mean), or one index to pick.
    `time_of(frame)`: the clock time of a ring frame. `tap` (outputs/live_audio.AudioTap): gets
    every block's chosen channels, while a recording listens. Everything here runs on one thread (the
    features thread, or the caller for `BlockSource`); `latest()` and `drain_onsets()` may be
    called from any one other thread.
    """

    def __init__(self, ring: RingBuffer, extractor: Extractor, block_size: int, *,
                 channels: Sequence[int] | None = None, time_of: Callable[[int], float],
                 sample_rate: float, max_onsets: int = 256):
        self.ring = ring
        self.sample_rate = float(sample_rate)
        self.extractor = extractor
        self.block_size = int(block_size)
        sel = list(range(ring.channels)) if channels is None else [int(c) for c in channels]
        if not sel or any(c < 0 or c >= ring.channels for c in sel):
            raise ValueError(f"channels {channels} not in the ring's 0..{ring.channels - 1}")
        self._sel = sel
        self._every_channel = sel == list(range(ring.channels))  # in order: the block as it is
        self._time_of = time_of
        self._block = np.zeros((self.block_size, ring.channels), np.float32)  # [frames, ch]
        self._mono = np.zeros(self.block_size, np.float32)  # [frames]
        self._latest: Any = None
        # the oldest onset goes when the engine is not draining: the newest are the ones to play
        self._onsets: DropQueue[OnsetEvent] = DropQueue(max_onsets, drop="oldest")
        self.blocks = 0
        self.bad_blocks = 0  # blocks with NaN/inf (repaired to 0 / +-1)
        self.clipped_blocks = 0  # blocks reaching full scale (clipped to [-1, 1])
        self.extractor_errors = 0
        self.last_error = ""
        self.tap = None

    # engine side
    def latest(self) -> Any:
        """The newest Features, or None before the first block (or after the input was lost)."""
        return self._latest

    @property
    def onsets_dropped(self) -> int:
        """Onsets lost (the oldest first) because the engine was not draining them."""
        return self._onsets.dropped

    def drain_onsets(self) -> list[OnsetEvent]:
        """Onset events since the last call, oldest first."""
        return self._onsets.drain()

    def clear(self) -> None:
        """Forget the published features (the input is gone: do not hold a loud value forever)."""
        self._latest = None

    # worker side
    def process_available(self, max_blocks: int | None = None) -> int:
        """Process whole blocks waiting in the ring; returns how many."""
        done = 0
        while (max_blocks is None or done < max_blocks) and self.ring.read_into(self._block):
            self._process_block()
            done += 1
        return done

    def _process_block(self) -> None:
        mono, block = self._mono, self._block
        if len(self._sel) == 1:
            np.copyto(mono, block[:, self._sel[0]])
        elif len(self._sel) == block.shape[1]:
            np.mean(block, axis=1, out=mono)
        else:
            np.mean(block[:, self._sel], axis=1, out=mono)
        if not np.isfinite(mono).all():
            self.bad_blocks += 1
            np.nan_to_num(mono, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
        peak = float(np.max(np.abs(mono)))
        if peak >= 1.0:
            self.clipped_blocks += 1
            np.clip(mono, -1.0, 1.0, out=mono)
        self.blocks += 1
        frame_end = self.ring.read
        tap = self.tap
        if tap is not None and tap.wanted:
            chosen = block if self._every_channel else block[:, self._sel]
            tap.push(chosen, self._time_of(frame_end - self.block_size))
        try:
            feats = self.extractor.process(mono)
        except Exception as exc:  # one bad block must not end the features thread
            self.extractor_errors += 1
            if self.extractor_errors == 1 or self.extractor_errors % 1000 == 0:
                log.warning("audio features: extractor failed (%d so far): %r", self.extractor_errors, exc)
            self.last_error = repr(exc)
            return
        self._latest = feats
        fired = [kind for field, kind in ONSET_KINDS if getattr(feats, field, False)]
        if fired:
            # The extractor says where in the block the firing frame ended (onset_time_s <= time_s).
            early_s = 0.0
            onset_t, block_t = getattr(feats, "onset_time_s", None), getattr(feats, "time_s", None)
            if onset_t is not None and block_t is not None and 0.0 <= block_t - onset_t < 1.0:
                early_s = block_t - onset_t
            frame = frame_end - int(round(early_s * self.sample_rate))
            t = self._time_of(frame)
            strength = float(getattr(feats, "onset_strength", 0.0) or 0.0)
            for kind in fired:
                self._onsets.put(OnsetEvent(t, frame, kind, strength))


def _default_extractor(sample_rate: int, block_size: int) -> Extractor:
    from .features import FeatureExtractor  # numpy-only, but keep imports lazy and explicit

    return FeatureExtractor(sample_rate, block_size)

