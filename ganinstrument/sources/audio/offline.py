"""Offline audio: arrays and WAV files through the same ring, callback and worker as live
input (tests and `render`), and small WAV helpers."""

from __future__ import annotations

import logging
import math
import wave
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ...common.clock import Clock
from .pipeline import FeatureWorker, OnsetEvent, RingBuffer, _Capture, _default_extractor

log = logging.getLogger(__name__)


# -- offline: arrays and files through the same path ----------------------------------------
class BlockSource:
    """An array (or WAV file) played through the same ring, callback and worker as live input.

    `samples`: float [frames] or [frames, channels]; `channels` as in AudioInput (None: mix
    all). Time is stream time: `advance_to(t_s)` processes every block that has ended by
    `t_s`; onset times are the end of the firing block in seconds from the start. `latest()`
    and `drain_onsets()` behave as AudioInput's, so the engine takes either. `follow`: a clock
    whose time (from 0 at the first sample) `latest()` first advances to (render's), so the
    engine drives it as it drives a live input.
    """

    messages: tuple[str, ...] = ()

    def __init__(self, samples: np.ndarray, sample_rate: int, *, block_size: int = 256,
                 channels: Sequence[int] | None = None, extractor: Callable | None = None,
                 chunk: int | None = None, follow: Clock | None = None):
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] < 1:
            raise ValueError(f"samples must be [frames] or [frames, channels], got shape {np.shape(samples)}")
        self.samples = np.ascontiguousarray(x)  # [frames, channels]
        self.sample_rate = int(sample_rate)
        self.block_size = int(block_size)
        self._chunk = int(chunk or block_size)  # frames per simulated callback
        self.clock = _StreamClock(self.sample_rate)
        ring = RingBuffer(max(2 * self.block_size, 2 * self._chunk) + self.block_size, x.shape[1])
        self._capture = _Capture(ring, self.clock)
        factory = extractor or _default_extractor
        rate = self.sample_rate  # (not `self` in the lambda: that cycle left every BlockSource to the GC)
        self.worker = FeatureWorker(ring, factory(self.sample_rate, self.block_size), self.block_size,
                                    channels=channels, time_of=lambda f: f / rate,
                                    sample_rate=self.sample_rate)
        self._fed = 0
        self.follow = follow
        padded = -(-len(self.samples) // self.block_size) * self.block_size
        self.frames_total = padded

    @classmethod
    def from_wav(cls, path: str, **kwargs: Any) -> BlockSource:
        samples, rate = read_wav(path)
        return cls(samples, rate, **kwargs)

    @property
    def time_s(self) -> float:
        """Stream time analysed so far."""
        return self.worker.ring.read / self.sample_rate

    @property
    def done(self) -> bool:
        return self._fed >= self.frames_total and self.worker.ring.available() < self.block_size

    def latest(self) -> Any:
        if self.follow is not None:
            self.advance_to(self.follow.now())
        return self.worker.latest()

    def hud_lines(self) -> dict[str, str]:
        return {}

    def stop(self, timeout_s: float = 2.0) -> bool:
        return True  # (no thread, no device)

    def drain_onsets(self) -> list[OnsetEvent]:
        return self.worker.drain_onsets()

    def advance_to(self, t_s: float) -> int:
        """Feed and analyse every block that ends at or before `t_s`; returns blocks processed."""
        target = min(self.frames_total, int(math.floor(t_s * self.sample_rate + 1e-6)))
        target -= target % self.block_size
        done = 0
        while self.worker.ring.read < target and self._fed < self.frames_total:
            self._feed_chunk()
            done += self.worker.process_available()
        return done

    def blocks(self) -> Iterator[tuple[Any, list[OnsetEvent]]]:
        """(Features, onsets of that block) for every block to the end."""
        while not self.done:
            self._feed_chunk()
            while self.worker.process_available(1):
                yield self.worker.latest(), self.worker.drain_onsets()

    def _feed_chunk(self) -> None:
        start = self._fed
        if start >= self.frames_total:
            return
        n = min(self._chunk, self.frames_total - start)
        chunk = self.samples[start:start + n]
        if chunk.shape[0] < n:  # the last block, padded with silence
            chunk = np.concatenate([chunk, np.zeros((n - chunk.shape[0], chunk.shape[1]), np.float32)])
        self.clock.t = (start + n) / self.sample_rate
        self._capture.callback(chunk, n, None, None)
        self._fed = start + n


class _StreamClock:
    """Stream time for BlockSource: set by the feeder."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.t = 0.0

    def now(self) -> float:
        return self.t


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """A PCM WAV (8/16/24/32-bit integer) as float32 [frames, channels] in [-1, 1], and its rate."""
    with wave.open(str(path), "rb") as f:
        n_ch, width, rate, n = f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
        raw = f.readframes(n)
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        i = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16))
        i = np.where(i >= 1 << 23, i - (1 << 24), i)
        x = i.astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"{path}: unsupported WAV sample width {width} bytes")
    return x.reshape(-1, n_ch), rate


def write_wav(path: str, samples: np.ndarray, sample_rate: int) -> None:
    """float [frames] or [frames, channels] in [-1, 1] -> 16-bit PCM WAV (tests, fixtures)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(x.shape[1])
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(pcm.tobytes())

