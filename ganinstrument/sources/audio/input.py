"""Audio capture: sounddevice (PortAudio) into a preallocated ring buffer, features in a worker.

Threads and what each owns (docs/architecture.md, "Threads and processes"):

- the PortAudio callback (`_Capture.callback`) owns the ring's write counter, the overflow
  counters and the arrival stamps. It copies the block into the ring and returns: no numpy
  allocation, no feature maths, no locks, no logging. (A Python callback still makes a few small
  Python objects, slice views and floats; nothing proportional to the block.)
- the features thread (`FeatureWorker`, run by `AudioInput`) owns the ring's read counter and the
  `FeatureExtractor`. It takes whole blocks, mixes or picks channels, repairs NaN/inf/clipped
  samples, runs the extractor, publishes the newest `Features` into a single slot (one reference
  assignment, atomic under the GIL) and puts onset events into a DropQueue (queues.py: the
  oldest dropped and counted when the engine is not draining). It also watches
  the stream and reopens the device every `retry_s` seconds when it is lost.
- the engine reads `latest()` and `drain_onsets()`; neither blocks or takes a lock the callback
  could want (the onset queue's lock is the features thread's and the engine's, held for a deque
  operation).

`BlockSource` feeds an array or a WAV file through the very same callback and worker code,
deterministically, for tests and offline rendering; its timestamps are stream time (frame / rate).

The ring, callback and worker live in `pipeline.py`, `BlockSource` and the WAV helpers in
`offline.py`; this module holds the devices and `AudioInput`, and re-exports the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...common.clock import Clock, MonotonicClock
from ...common.errors import DeviceError
from .offline import BlockSource, read_wav, write_wav  # noqa: F401  (re-exported)
from .pipeline import FeatureWorker, OnsetEvent, RingBuffer, _Capture, _default_extractor

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
    "write_wav",
]

class AudioDeviceError(DeviceError):
    """An audio input device that is not there or cannot be opened; names it and lists the others."""


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
    `tap` (outputs/live_audio.AudioTap): the analysed channels, for live recordings.

    `start()` returns False, and the instrument goes on without audio, when there is no input
    device at all or PortAudio is missing; a named device that does not exist raises
    AudioDeviceError. A stream that errors or stops delivering (device unplugged, JACK gone)
    marks the input "lost", clears `latest()`, and is reopened every `retry_s` seconds.
    """

    def __init__(self, device: str | int | None = None, *, channels: Sequence[int] | None = None,
                 sample_rate: int | None = None, block_size: int = 256, extractor: Callable | None = None,
                 clock: Clock | None = None, backend: Any = None, ring_s: float = 1.0,
                 retry_s: float = 2.0, stall_s: float = 1.0, latency: str | float = "low",
                 max_onsets: int = 256, tap=None):
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
        self.tap = tap

    # -- engine side ----------------------------------------------------------------------
    def latest(self) -> Any:
        """The newest Features, or None (not started, no device, input lost)."""
        worker = self._worker
        return worker.latest() if worker is not None and self._state == "running" else None

    def drain_onsets(self) -> list[OnsetEvent]:
        """Onset events since the last call, oldest first."""
        worker = self._worker
        return worker.drain_onsets() if worker is not None else []

    messages: tuple[str, ...] = ()  # (what it says goes to the log and `hud_lines`)

    def hud_lines(self) -> dict[str, str]:
        """While no features come: why (no device, input lost, reopening)."""
        return {} if self.latest() is not None else {"audio": (self.status().message or "no input")[:80]}

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

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop the features thread, then the stream, each within `timeout_s`; True if both ended."""
        self._stop.set()
        ok = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            ok = not self._thread.is_alive()
            if not ok:
                log.warning("audio features thread did not end within %.1f s", timeout_s)
            self._thread = None
        ok = self._close_stream(timeout_s) and ok
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
        self._worker.tap = self.tap
        if self.tap is not None:
            self.tap.configure(rate, len(sel))
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

    def _close_stream(self, timeout_s: float) -> bool:
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
        closer.join(timeout_s)
        if closer.is_alive():
            log.warning("audio: the input stream did not close within %.1f s", timeout_s)
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


def wait_until(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.005) -> bool:
    """Poll `predicate` until true or `timeout_s` passes (tests, startup); returns the last result."""
    end = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return bool(predicate())
        time.sleep(poll_s)
