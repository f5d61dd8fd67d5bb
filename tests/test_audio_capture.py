"""Audio capture without a sound card: the ring, the callback, the features thread, devices.

The PortAudio side is replaced by a stand-in backend with sounddevice's surface
(query_devices, query_hostapis, default, check_input_settings, InputStream); the features are
the real FeatureExtractor. The real PortAudio path is in test_audio_capture_jack.py.
"""

from __future__ import annotations

import threading
import types

import numpy as np
import pytest

from ganinstrument.sources.audio.features import FeatureExtractor
from ganinstrument.sources.audio.input import (
    AudioDeviceError,
    AudioInput,
    BlockSource,
    RingBuffer,
    find_input_device,
    list_input_devices,
    read_wav,
    wait_until,
    write_wav,
)

RATE = 48000


# -- a stand-in for the sounddevice module ----------------------------------------------------
class FakeStream:
    def __init__(self, backend, *, device, channels, samplerate, blocksize, dtype, latency, callback):
        self.backend, self.device, self.channels = backend, device, channels
        self.samplerate, self.blocksize, self.callback = samplerate, blocksize, callback
        self.active = False
        self.closed = False

    def start(self):
        self.active = True

    def push(self, frames, overflow=False):
        """Play the PortAudio thread: hand `frames` [n, channels] to the callback."""
        status = types.SimpleNamespace(input_overflow=overflow)
        self.callback(np.ascontiguousarray(frames, np.float32), len(frames), None, status if overflow else None)

    def close(self, ignore_errors=True):
        if self.backend.close_blocks is not None:
            self.backend.close_blocks.wait()
        self.active = False
        self.closed = True


class FakeBackend:
    def __init__(self, devices=None, rates=(48000,)):
        self.devices = devices if devices is not None else [
            {"name": "Fake Mic", "max_input_channels": 2, "default_samplerate": 48000.0, "hostapi": 0},
            {"name": "Fake Speakers", "max_input_channels": 0, "default_samplerate": 48000.0, "hostapi": 0},
        ]
        self.rates = rates
        self.default = types.SimpleNamespace(device=(0, 1))
        self.streams: list[FakeStream] = []
        self.close_blocks: threading.Event | None = None

    def query_hostapis(self):
        return [{"name": "Fake API"}]

    def query_devices(self):
        return list(self.devices)

    def check_input_settings(self, device=None, channels=None, samplerate=None, dtype=None):
        if samplerate not in self.rates:
            raise ValueError(f"Invalid sample rate {samplerate}")

    def InputStream(self, **kwargs):
        stream = FakeStream(self, **kwargs)
        self.streams.append(stream)
        return stream


def clicks(times_s, length_s, rate=RATE, amp=0.8):
    """Short decaying noise bursts at `times_s` in silence: float32 [frames]."""
    rng = np.random.default_rng(5)
    x = np.zeros(int(length_s * rate), np.float32)
    n = int(0.01 * rate)
    burst = (rng.standard_normal(n) * np.exp(-np.arange(n) / (0.002 * rate)) * amp).astype(np.float32)
    for t in times_s:
        i = int(t * rate)
        x[i:i + n] += burst[: len(x) - i]
    return x


class Recorder:
    """An extractor stand-in that keeps every block it is given (to check the data path)."""

    def __init__(self, sample_rate, block_size):
        self.blocks = []

    def process(self, block):
        self.blocks.append(block.copy())
        return types.SimpleNamespace(onset=False, time_s=0.0)


# -- the ring -------------------------------------------------------------------------------
def test_ring_wraps_with_odd_sizes():
    ring = RingBuffer(17, 1)
    src = np.arange(1000, dtype=np.float32)
    out = np.empty((5, 1), np.float32)
    got, pos = [], 0
    while pos < 300:
        while pos < 300 and ring.capacity - ring.available() >= 3:
            assert ring.write(src[pos:pos + 3, None])
            pos += 3
        while ring.read_into(out):
            got.append(out[:, 0].copy())
    got = np.concatenate(got)
    assert ring.overflows == 0
    np.testing.assert_array_equal(got, src[: len(got)])
    assert len(got) == 300 // 5 * 5 and ring.written == 300 and ring.available() == 0


def test_ring_overflow_drops_whole_writes_and_counts():
    ring = RingBuffer(8, 2)
    a = np.ones((3, 2), np.float32)
    assert ring.write(a) and ring.write(2 * a)
    assert not ring.write(3 * a)  # 6 + 3 > 8: dropped, never overwrites unread frames
    assert (ring.overflows, ring.dropped_frames, ring.available()) == (1, 3, 6)
    out = np.empty((6, 2), np.float32)
    assert ring.read_into(out)
    np.testing.assert_array_equal(out[:, 0], [1, 1, 1, 2, 2, 2])
    assert not ring.read_into(out)  # nothing left: the reader never reads stale data


def test_block_source_odd_callbacks_deliver_every_sample_in_order():
    # 17-frame blocks arriving 3 frames per callback: every sample reaches the extractor once.
    x = np.sin(np.arange(17 * 40) * 0.01).astype(np.float32)
    rec = []
    src = BlockSource(x, RATE, block_size=17, chunk=3,
                      extractor=lambda rate, block: rec.append(Recorder(rate, block)) or rec[-1])
    assert sum(1 for _ in src.blocks()) == 40
    np.testing.assert_array_equal(np.concatenate(rec[0].blocks), x)
    assert src.worker.ring.overflows == 0


def test_block_source_mixes_or_picks_channels():
    left = np.full(256, 0.5, np.float32)
    right = np.full(256, -0.25, np.float32)
    stereo = np.stack([left, right], axis=1)
    for channels, want in ((None, 0.125), ([1], -0.25), ([0], 0.5)):
        rec = []
        src = BlockSource(stereo, RATE, channels=channels,
                          extractor=lambda rate, block: rec.append(Recorder(rate, block)) or rec[-1])
        list(src.blocks())
        np.testing.assert_allclose(rec[0].blocks[0], want)


# -- features through the worker --------------------------------------------------------------
def test_block_source_finds_clicks_at_their_times():
    times = [0.3, 0.75, 1.1, 1.6]
    src = BlockSource(clicks(times, 2.0), RATE)
    src.advance_to(2.0)
    onsets = [e for e in src.drain_onsets() if e.kind == "onset"]
    assert len(onsets) == len(times)
    for e, t in zip(onsets, times):
        assert 0.0 <= e.time_s - t < 0.03
        assert e.frame == pytest.approx(e.time_s * RATE, abs=1)
    assert src.latest() is not None and src.time_s == pytest.approx(2.0, abs=256 / RATE)


def test_nan_inf_and_clipped_input_is_repaired():
    x = clicks([0.2], 0.5)
    x[5000:5300] = np.nan
    x[6000:6100] = np.inf
    x[7000:7100] = 4.0
    rec = []

    def factory(rate, block):
        rec.append(Recorder(rate, block))
        return rec[-1]

    src = BlockSource(x, RATE, extractor=factory)
    list(src.blocks())
    data = np.concatenate(rec[0].blocks)
    assert np.isfinite(data).all() and np.abs(data).max() <= 1.0
    assert src.worker.bad_blocks >= 2 and src.worker.clipped_blocks >= 1
    # And the real extractor keeps giving finite features through it.
    real = BlockSource(x, RATE)
    feats = [f for f, _ in real.blocks()]
    assert all(np.isfinite(f.rms_db) and np.isfinite(f.onset_strength) for f in feats)


def test_wav_round_trip(tmp_path):
    x = (0.5 * np.sin(np.arange(4800) * 0.05)).astype(np.float32)
    write_wav(tmp_path / "a.wav", x, 44100)
    y, rate = read_wav(tmp_path / "a.wav")
    assert rate == 44100 and y.shape == (4800, 1)
    np.testing.assert_allclose(y[:, 0], x, atol=1 / 32767)
    src = BlockSource.from_wav(str(tmp_path / "a.wav"))
    assert src.sample_rate == 44100


# -- live input with a stand-in backend ---------------------------------------------------------
def started(backend, **kwargs):
    inp = AudioInput("Fake Mic", backend=backend, **kwargs)
    assert inp.start()
    return inp, backend.streams[-1]


def test_features_thread_publishes_features_and_onsets():
    backend = FakeBackend()
    inp, stream = started(backend, channels=[0])
    try:
        assert stream.channels == 1 and stream.samplerate == RATE and stream.blocksize == 256
        x = clicks([0.2, 0.5], 0.8)
        for i in range(0, len(x), 256):
            stream.push(x[i:i + 256, None])
            # the engine polls meanwhile; nothing here waits on the callback
        assert wait_until(lambda: inp.status().blocks == len(x) // 256, 5.0)
        assert inp.latest() is not None
        onsets = [e for e in inp.drain_onsets() if e.kind == "onset"]
        assert [round(e.frame / RATE, 1) for e in onsets] == [0.2, 0.5]
        assert inp.drain_onsets() == []
        st = inp.status()
        assert st.state == "running" and st.overflows == 0 and "Fake Mic" in st.device
    finally:
        assert inp.stop(timeout_s=2.0)
    assert stream.closed and inp.status().state == "off"


def test_callback_counts_portaudio_overflows_and_ring_overruns():
    backend = FakeBackend()
    inp, stream = started(backend, ring_s=0.0)  # the smallest ring: 4 blocks
    try:
        stream.push(np.zeros((256, 2)), overflow=True)
        assert inp.status().overflows == 1
        inp._stop.set()  # pause the reader so the ring fills (the thread ends; stop() still joins)
        inp._thread.join(2.0)
        for _ in range(6):
            stream.push(np.zeros((256, 2)))
        st = inp.status()
        assert st.dropped_frames >= 256 and st.overflows >= 2
    finally:
        assert inp.stop(timeout_s=2.0)


def test_stop_returns_within_its_timeout_when_parts_hang():
    backend = FakeBackend()
    release = threading.Event()

    class Hanging:
        def __init__(self, rate, block):
            pass

        def process(self, block):
            release.wait(10.0)
            return types.SimpleNamespace(onset=False)

    inp, stream = started(backend, extractor=Hanging)
    backend.close_blocks = release
    try:
        stream.push(np.zeros((256, 2)))
        assert wait_until(lambda: inp._worker.ring.read == 256, 2.0)  # the worker is stuck in process()
        import time

        t0 = time.monotonic()
        assert inp.stop(timeout_s=0.3) is False  # said, not hung: both the thread and close() time out
        assert time.monotonic() - t0 < 1.5
    finally:
        release.set()


def test_shutdown_is_prompt_and_repeatable():
    import time

    backend = FakeBackend()
    inp, stream = started(backend)
    t0 = time.monotonic()
    assert inp.stop(timeout_s=2.0)
    assert time.monotonic() - t0 < 0.5
    assert inp.stop(timeout_s=2.0)  # a second stop is harmless
    assert not any(t.name == "ganinstrument-audio-features" for t in threading.enumerate())


def test_device_lost_then_reopened():
    backend = FakeBackend()
    inp, stream = started(backend, retry_s=0.05, stall_s=0.2)
    try:
        stream.push(np.full((256, 2), 0.3, np.float32))
        assert wait_until(lambda: inp.latest() is not None, 2.0)
        device = backend.devices.pop(0)  # unplugged: the stream dies and the device is gone
        stream.active = False
        assert wait_until(lambda: inp.status().state == "lost", 2.0)
        assert inp.latest() is None  # no stale loud value held through the outage
        assert "lost" in inp.status().message and "retrying" in inp.status().message
        n = len(backend.streams)
        assert wait_until(lambda: "not found" in inp.status().message, 2.0)  # retries, says why
        assert len(backend.streams) == n
        backend.devices.insert(0, device)  # plugged back in
        assert wait_until(lambda: inp.status().state == "running", 2.0)
        assert inp.status().reopens == 1 and backend.streams[-1] is not stream
        backend.streams[-1].push(np.full((256, 2), 0.3, np.float32))
        assert wait_until(lambda: inp.latest() is not None, 2.0)
    finally:
        assert inp.stop(timeout_s=2.0)


def test_silent_stall_counts_as_lost():
    backend = FakeBackend()
    inp, stream = started(backend, retry_s=10.0, stall_s=0.1)  # active, but no callbacks come
    try:
        # The worker marks the input lost, then closes the stream: wait for both.
        assert wait_until(lambda: inp.status().state == "lost", 2.0)
        assert wait_until(lambda: stream.closed, 2.0)
    finally:
        inp.stop(timeout_s=2.0)


# -- devices ---------------------------------------------------------------------------------
def test_missing_named_device_names_it_and_lists_the_others():
    with pytest.raises(AudioDeviceError) as info:
        AudioInput("Scarlett", backend=FakeBackend()).start()
    text = str(info.value)
    assert "'Scarlett' not found" in text and "[0] Fake Mic (Fake API, 2 ch)" in text
    assert "Speakers" not in text  # outputs are not inputs
    assert isinstance(info.value, OSError)
    with pytest.raises(AudioDeviceError, match="device 7 not found"):
        find_input_device(7, FakeBackend())


def test_no_device_at_all_runs_without_audio_and_says_so():
    inp = AudioInput(backend=FakeBackend(devices=[]))
    assert inp.start() is False
    st = inp.status()
    assert st.state == "no_device" and "running without audio features" in st.message
    assert inp.latest() is None and inp.drain_onsets() == []
    assert inp.stop(timeout_s=1.0)


def test_portaudio_missing_runs_without_audio(monkeypatch):
    import ganinstrument.sources.audio.input as audio

    def missing():
        raise AudioDeviceError("audio input unavailable: PortAudio library not found (install libportaudio2)")

    monkeypatch.setattr(audio, "_sounddevice", missing)
    inp = AudioInput()
    assert inp.start() is False and "libportaudio2" in inp.status().message


def test_device_by_substring_index_and_default():
    backend = FakeBackend()
    assert find_input_device("fake mic", backend)["index"] == 0
    assert find_input_device("mic", backend)["index"] == 0
    assert find_input_device(0, backend)["index"] == 0
    assert find_input_device("0", backend)["index"] == 0
    assert find_input_device(None, backend)["index"] == 0
    assert [d["name"] for d in list_input_devices(backend)] == ["Fake Mic"]


def test_unsupported_rate_falls_back_and_builds_the_extractor_for_it():
    rates = []

    def factory(rate, block):
        rates.append(rate)
        return FeatureExtractor(rate, block)

    inp, stream = started(FakeBackend(rates=(48000,)), sample_rate=44100, extractor=factory)
    try:
        assert stream.samplerate == 48000 and rates == [48000] and inp.sample_rate == 48000
        assert "does not run at 44100 Hz" in inp.status().message
    finally:
        inp.stop()


def test_channel_out_of_range_is_an_error():
    with pytest.raises(AudioDeviceError, match="has 2 channels"):
        AudioInput("Fake Mic", channels=[3], backend=FakeBackend()).start()


def test_sensitivity_reaches_the_extractor_live():
    inp, _ = started(FakeBackend())
    try:
        inp.set_sensitivity(0.9)
        assert inp._worker.extractor.sensitivity == pytest.approx(0.9)
        inp.set_sensitivity(7)
        assert inp._worker.extractor.sensitivity == 1.0
    finally:
        inp.stop()


def test_a_block_source_is_freed_without_the_cycle_collector():
    """No reference cycle: a BlockSource (render makes one per file; a looping source makes one
    per loop) and its analysis buffers go as soon as the last reference does, not at the next
    full collection (the engine benchmark's click loop left ~1.6 MB per loop to the GC)."""
    import gc
    import weakref

    from ganinstrument.sources.audio.input import BlockSource

    gc.collect()
    gc.disable()
    try:
        src = BlockSource(np.zeros(4800, np.float32), 48000)
        src.advance_to(0.05)
        gone = [weakref.ref(src), weakref.ref(src.worker)]
        del src
        assert [ref() for ref in gone] == [None, None]
    finally:
        gc.enable()


def test_a_recording_hears_the_analysed_channels_stamped_with_their_arrival():
    from ganinstrument.common.clock import FakeClock
    from ganinstrument.outputs.live_audio import AudioTap

    clock, tap = FakeClock(), AudioTap()
    inp, stream = started(FakeBackend(), channels=[1, 0], clock=clock, tap=tap)  # swapped, on purpose
    try:
        assert (tap.sample_rate, tap.channels) == (RATE, 2)
        feed = tap.subscribe()
        blocks = 8
        for k in range(blocks):
            clock.set(10.0 + (k + 1) * 256 / RATE)  # each callback runs as its block ends
            stream.push(np.stack([np.full(256, k, np.float32), np.full(256, -k, np.float32)], axis=1) / 10)
        assert wait_until(lambda: inp.status().blocks == blocks, 5.0)
        got = feed.drain()
        assert [round(t, 9) for t, _, _ in got] == [round(10.0 + k * 256 / RATE, 9) for k in range(blocks)]
        assert all(rate == RATE for _, rate, _ in got)
        for k, (_, _, block) in enumerate(got):
            np.testing.assert_allclose(block, np.tile([-k / 10, k / 10], (256, 1)), atol=1e-7)  # [1, 0]
        tap.unsubscribe(feed)
        stream.push(np.zeros((256, 2), np.float32))
        assert wait_until(lambda: inp.status().blocks == blocks + 1, 5.0) and feed.drain() == []
    finally:
        assert inp.stop(timeout_s=2.0)
