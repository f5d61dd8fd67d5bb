"""Audio capture: sounddevice (PortAudio) into a preallocated ring buffer, features in a worker.

Threads and what each owns (DESIGN.md section 4):

- the PortAudio callback (`_Capture.callback`) owns the ring's write counter, the overflow
  counters and the arrival stamps. It copies the block into the ring and returns: no numpy
  allocation, no feature maths, no locks, no logging. (A Python callback still makes a few small
  Python objects, slice views and floats; nothing proportional to the block.)
- the features thread (`FeatureWorker`, run by `AudioInput`) owns the ring's read counter and the
  `FeatureExtractor`. It takes whole blocks, mixes or picks channels, repairs NaN/inf/clipped
  samples, runs the extractor, publishes the newest `Features` into a single slot (one reference
  assignment, atomic under the GIL) and appends onset events to a bounded deque. It also watches
  the stream and reopens the device every `retry_s` seconds when it is lost.
- the engine reads `latest()` and `drain_onsets()`; neither blocks or takes a lock the callback
  could want.

`BlockSource` feeds an array or a WAV file through the very same callback and worker code,
deterministically, for tests and offline rendering; its timestamps are stream time (frame / rate).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import wave
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..clock import Clock, MonotonicClock
from ..errors import DeviceError

log = logging.getLogger(__name__)

__all__ = [
    "AudioDeviceError",
    "AudioInput",
    "AudioStatus",
    "BlockSource",
    "FeatureWorker",
    "OnsetEvent",
    "RingBuffer",
    "find_input_device",
    "list_input_devices",
    "read_wav",
]

# Features fields that are onset events -> the event's kind (the mapping's feature names)
ONSET_KINDS = (("onset", "onset"), ("onset_low", "onset.low"), ("onset_mid", "onset.mid"),
               ("onset_high", "onset.high"))
_STAMPS = 64  # arrival stamps kept (power of two); the worker only needs the newest


class AudioDeviceError(DeviceError):
    """An audio input device that is not there or cannot be opened; names it and lists the others."""


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


@dataclass(frozen=True, slots=True)
class AudioStatus:
    """What the HUD shows. `state`: "off", "running", "lost" (retrying), "no_device"."""

    state: str
    message: str
    device: str = ""
    sample_rate: int = 0
    blocks: int = 0
    overflows: int = 0
    dropped_frames: int = 0
    bad_blocks: int = 0
    clipped_blocks: int = 0
    extractor_errors: int = 0
    onsets_dropped: int = 0
    reopens: int = 0


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
    `time_of(frame)`: the clock time of a ring frame. Everything here runs on one thread (the
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
        self._time_of = time_of
        self._block = np.zeros((self.block_size, ring.channels), np.float32)  # [frames, ch]
        self._mono = np.zeros(self.block_size, np.float32)  # [frames]
        self._latest: Any = None
        self._onsets: deque[OnsetEvent] = deque(maxlen=max_onsets)
        self.blocks = 0
        self.bad_blocks = 0  # blocks with NaN/inf (repaired to 0 / +-1)
        self.clipped_blocks = 0  # blocks reaching full scale (clipped to [-1, 1])
        self.extractor_errors = 0
        self.onsets_dropped = 0
        self.last_error = ""

    # engine side
    def latest(self) -> Any:
        """The newest Features, or None before the first block (or after the input was lost)."""
        return self._latest

    def drain_onsets(self) -> list[OnsetEvent]:
        """Onset events since the last call, oldest first."""
        out = []
        while True:
            try:
                out.append(self._onsets.popleft())
            except IndexError:
                return out

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
                if len(self._onsets) == self._onsets.maxlen:
                    self.onsets_dropped += 1  # the deque drops the oldest; the engine is not draining
                self._onsets.append(OnsetEvent(t, frame, kind, strength))


def _default_extractor(sample_rate: int, block_size: int) -> Extractor:
    from .features import FeatureExtractor  # numpy-only, but keep imports lazy and explicit

    return FeatureExtractor(sample_rate, block_size)


# -- devices ---------------------------------------------------------------------------------
def _sounddevice() -> Any:
    """Import sounddevice; PortAudio missing -> AudioDeviceError (an OSError) saying what to install."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise AudioDeviceError(
            f"audio input unavailable: {exc} (install the sounddevice package and PortAudio, "
            "e.g. Debian/Ubuntu `libportaudio2`)"
        ) from None
    return sounddevice


def list_input_devices(backend: Any = None) -> list[dict]:
    """Input devices as dicts: index, name, hostapi (name), channels, default_samplerate."""
    sd = backend if backend is not None else _sounddevice()
    apis = [h["name"] for h in sd.query_hostapis()]
    out = []
    for index, dev in enumerate(sd.query_devices()):
        if dev["max_input_channels"] > 0:
            api = dev.get("hostapi", 0)
            out.append({
                "index": index, "name": dev["name"],
                "hostapi": apis[api] if 0 <= api < len(apis) else str(api),
                "channels": int(dev["max_input_channels"]),
                "default_samplerate": float(dev["default_samplerate"]),
            })
    return out


def _describe(devices: list[dict]) -> str:
    if not devices:
        return "no input devices exist"
    return "input devices: " + "; ".join(
        f"[{d['index']}] {d['name']} ({d['hostapi']}, {d['channels']} ch)" for d in devices)


def find_input_device(device: str | int | None, backend: Any = None) -> dict | None:
    """The input device asked for: an index, a name (exact, else case-insensitive substring of
    "name" or "name, host API"), or None for the system default. Returns its dict (as in
    `list_input_devices`), None when `device` is None and there is no input at all. Raises
    AudioDeviceError naming the device and listing those that exist.
    """
    sd = backend if backend is not None else _sounddevice()
    devices = list_input_devices(sd)
    if device is None:
        try:
            default = sd.default.device[0]
        except Exception:
            default = -1
        default = -1 if default is None else int(default)
        for d in devices:
            if d["index"] == default:
                return d
        return devices[0] if devices else None
    if isinstance(device, (int, np.integer)) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        for d in devices:
            if d["index"] == index:
                return d
        raise AudioDeviceError(f"audio input device {index} not found or has no inputs; {_describe(devices)}")
    want = str(device).strip().lower()
    for d in devices:
        if d["name"].lower() == want:
            return d
    for d in devices:
        if want in d["name"].lower() or want in f"{d['name']}, {d['hostapi']}".lower():
            return d
    raise AudioDeviceError(f"audio input device {device!r} not found; {_describe(devices)}")


# -- live capture ----------------------------------------------------------------------------
class AudioInput:
    """Live audio features from an input device.

    `device`: index, name substring or None (system default). `channels`: input channels
    (0-based) to mix to mono; one channel picks it; None mixes the first two (or the only one).
    `sample_rate`: None for the device's default; a rate the device refuses falls back to its
    default and the extractor is built for the rate actually running (`status().message` says so).
    `block_size`: frames per analysis block. `extractor`: factory (sample_rate, block_size) ->
    extractor, default `features.FeatureExtractor`. `backend`: the sounddevice module or a stand-in.

    `start()` returns False, and the instrument goes on without audio, when there is no input
    device at all or PortAudio is missing; a named device that does not exist raises
    AudioDeviceError. A stream that errors or stops delivering (device unplugged, JACK gone)
    marks the input "lost", clears `latest()`, and is reopened every `retry_s` seconds.
    """

    def __init__(self, device: str | int | None = None, *, channels: Sequence[int] | None = None,
                 sample_rate: int | None = None, block_size: int = 256, extractor: Callable | None = None,
                 clock: Clock | None = None, backend: Any = None, ring_s: float = 1.0,
                 retry_s: float = 2.0, stall_s: float = 1.0, latency: str | float = "low",
                 max_onsets: int = 256):
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1 frames, got {block_size}")
        self.device = device
        self.channels = None if channels is None else tuple(int(c) for c in channels)
        if self.channels is not None and (not self.channels or min(self.channels) < 0):
            raise ValueError(f"channels must be 0-based input channel numbers, got {channels}")
        self.requested_rate = None if sample_rate is None else int(sample_rate)
        self.block_size = int(block_size)
        self.clock = clock or MonotonicClock()
        self.retry_s, self.stall_s, self.ring_s = float(retry_s), float(stall_s), float(ring_s)
        self.latency = latency
        self._factory = extractor or _default_extractor
        self._backend = backend
        self._max_onsets = max_onsets
        self._stream: Any = None
        self._capture: _Capture | None = None
        self._worker: FeatureWorker | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._state, self._message = "off", "audio input not started"
        self._device_name, self._rate = "", 0
        self._reopens = 0
        self._next_retry = 0.0
        self._poll_s = 0.002
        self._sensitivity: float | None = None

    # -- engine side ----------------------------------------------------------------------
    def latest(self) -> Any:
        """The newest Features, or None (not started, no device, input lost)."""
        worker = self._worker
        return worker.latest() if worker is not None and self._state == "running" else None

    def drain_onsets(self) -> list[OnsetEvent]:
        """Onset events since the last call, oldest first."""
        worker = self._worker
        return worker.drain_onsets() if worker is not None else []

    @property
    def sample_rate(self) -> int:
        return self._rate

    def set_sensitivity(self, value: float) -> None:
        """Onset sensitivity 0..1 (more onsets when higher), live from the engine thread: the
        extractor reads it as one float store. Kept for an extractor built on reopening."""
        self._sensitivity = min(max(float(value), 0.0), 1.0)
        worker = self._worker
        if worker is not None and hasattr(worker.extractor, "sensitivity"):
            worker.extractor.sensitivity = self._sensitivity

    def status(self) -> AudioStatus:
        w, c = self._worker, self._capture
        ring = c.ring if c is not None else None
        return AudioStatus(
            self._state, self._message, self._device_name, self._rate,
            blocks=w.blocks if w else 0,
            overflows=(ring.overflows if ring else 0) + (c.status_overflows if c else 0),
            dropped_frames=ring.dropped_frames if ring else 0,
            bad_blocks=w.bad_blocks if w else 0, clipped_blocks=w.clipped_blocks if w else 0,
            extractor_errors=w.extractor_errors if w else 0,
            onsets_dropped=w.onsets_dropped if w else 0, reopens=self._reopens)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> bool:
        """Open the device and start the features thread; False (and said so) without a device."""
        if self._thread is not None:
            return self._state == "running"
        try:
            sd = self._backend if self._backend is not None else _sounddevice()
            info = find_input_device(self.device, sd)
        except AudioDeviceError as exc:
            if self.device is not None and "unavailable" not in str(exc):
                raise
            return self._no_device(str(exc))
        if info is None:
            return self._no_device("no audio input device found")
        self._backend = sd
        self._info = info
        try:
            self._open(info)
        except Exception as exc:
            raise AudioDeviceError(f"could not open audio input {info['name']!r}: {exc}") from exc
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ganinstrument-audio-features", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the features thread, then the stream, each within `timeout` s; True if both ended."""
        self._stop.set()
        ok = True
        if self._thread is not None:
            self._thread.join(timeout)
            ok = not self._thread.is_alive()
            if not ok:
                log.warning("audio features thread did not end within %.1f s", timeout)
            self._thread = None
        ok = self._close_stream(timeout) and ok
        if self._state != "no_device":
            self._state, self._message = "off", "audio input stopped"
        return ok

    def __enter__(self) -> AudioInput:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside ----------------------------------------------------------------------------
    def _no_device(self, why: str) -> bool:
        self._state = "no_device"
        self._message = f"{why}; running without audio features"
        log.warning("audio: %s", self._message)
        return False

    def _channels_for(self, info: dict) -> tuple[int, list[int]]:
        """(channels to open, channels to mix) for this device."""
        have = info["channels"]
        sel = list(self.channels) if self.channels is not None else list(range(min(2, have)))
        if max(sel) >= have:
            raise AudioDeviceError(f"audio input {info['name']!r} has {have} channels; asked for channel "
                                   f"{max(sel)} (0-based)")
        return max(sel) + 1, sel

    def _pick_rate(self, info: dict, n_open: int) -> tuple[int, str]:
        default = int(round(info["default_samplerate"]))
        if self.requested_rate is None or self.requested_rate == default:
            return default, ""
        try:
            self._backend.check_input_settings(device=info["index"], channels=n_open,
                                               samplerate=self.requested_rate, dtype="float32")
            return self.requested_rate, ""
        except Exception:
            return default, (f"; {info['name']} does not run at {self.requested_rate} Hz, "
                             f"analysing at its {default} Hz")

    def _open(self, info: dict) -> None:
        n_open, sel = self._channels_for(info)
        rate, note = self._pick_rate(info, n_open)
        if self._worker is None or rate != self._rate:
            capacity = max(4 * self.block_size, int(self.ring_s * rate))
            ring = RingBuffer(capacity, n_open)
            self._capture = _Capture(ring, self.clock)
            capture = self._capture
            self._worker = FeatureWorker(
                ring, self._factory(rate, self.block_size), self.block_size, channels=sel,
                time_of=lambda frame: capture.time_of(frame, rate), sample_rate=rate,
                max_onsets=self._max_onsets)
            if self._sensitivity is not None:
                self.set_sensitivity(self._sensitivity)
        capture = self._capture
        capture.failed = False
        capture.stamps = 0  # a reopened stream starts a new time line (the callback is not running)
        capture.last_callback_s = self.clock.now()
        stream = self._backend.InputStream(
            device=info["index"], channels=n_open, samplerate=rate, blocksize=self.block_size,
            dtype="float32", latency=self.latency, callback=capture.callback)
        stream.start()
        self._stream, self._rate = stream, rate
        self._device_name = f"{info['name']} ({info['hostapi']})"
        self._poll_s = min(max(self.block_size / rate / 2, 0.001), 0.01)
        self._state = "running"
        self._message = f"audio from {self._device_name}, {rate} Hz, channels {sel}{note}"
        log.info("audio: %s", self._message)

    def _close_stream(self, timeout: float) -> bool:
        """Close the stream from a helper thread: a dead device can hang PortAudio's close."""
        stream, self._stream = self._stream, None
        if stream is None:
            return True

        def close() -> None:
            try:
                stream.close(ignore_errors=True)
            except TypeError:
                stream.close()
            except Exception as exc:
                log.debug("audio: closing the stream failed: %r", exc)

        closer = threading.Thread(target=close, name="ganinstrument-audio-close", daemon=True)
        closer.start()
        closer.join(timeout)
        if closer.is_alive():
            log.warning("audio: the input stream did not close within %.1f s", timeout)
            return False
        return True

    def _healthy(self) -> bool:
        stream, capture = self._stream, self._capture
        if stream is None or capture is None or capture.failed:
            return False
        try:
            if not stream.active:
                return False
        except Exception:
            return False
        return self.clock.now() - capture.last_callback_s < self.stall_s

    def _lose(self) -> None:
        self._state = "lost"
        self._message = (f"audio input {self._device_name or self.device!r} lost; "
                         f"retrying every {self.retry_s:g} s, picture goes on without audio")
        log.warning("audio: %s", self._message)
        if self._worker is not None:
            self._worker.clear()
        self._close_stream(1.0)
        self._next_retry = self.clock.now() + self.retry_s

    def _retry(self) -> None:
        self._next_retry = self.clock.now() + self.retry_s
        try:
            info = find_input_device(self.device if self.device is not None else self._info["name"],
                                     self._backend)
            if info is None:
                return
            self._open(info)
            self._reopens += 1
        except Exception as exc:
            self._close_stream(1.0)
            self._message = (f"audio input {self._device_name or self.device!r} lost ({exc}); "
                             f"retrying every {self.retry_s:g} s")

    def _run(self) -> None:
        worker = self._worker
        while not self._stop.is_set():
            if self._state == "running" and not self._healthy():
                self._lose()
            if self._state == "lost" and self.clock.now() >= self._next_retry:
                self._retry()
            worker = self._worker
            done = worker.process_available(64) if worker is not None else 0
            if done == 0:
                self._stop.wait(self._poll_s if self._state == "running" else 0.05)


# -- offline: arrays and files through the same path ----------------------------------------
class BlockSource:
    """An array (or WAV file) played through the same ring, callback and worker as live input.

    `samples`: float [frames] or [frames, channels]; `channels` as in AudioInput (None: mix
    all). Time is stream time: `advance_to(t_s)` processes every block that has ended by
    `t_s`; onset times are the end of the firing block in seconds from the start. `latest()`
    and `drain_onsets()` behave as AudioInput's, so the engine takes either.
    """

    def __init__(self, samples: np.ndarray, sample_rate: int, *, block_size: int = 256,
                 channels: Sequence[int] | None = None, extractor: Callable | None = None,
                 chunk: int | None = None):
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
        self.worker = FeatureWorker(ring, factory(self.sample_rate, self.block_size), self.block_size,
                                    channels=channels, time_of=lambda f: f / self.sample_rate,
                                    sample_rate=self.sample_rate)
        self._fed = 0
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
        return self.worker.latest()

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


def wait_until(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.005) -> bool:
    """Poll `predicate` until true or `timeout_s` passes (tests, startup); returns the last result."""
    end = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return bool(predicate())
        time.sleep(poll_s)
