"""The NDI output, through the real NDI runtime (ndi-python): a receiver in this process
connects to our source by address (there is no mDNS daemon here to discover it by name) and
gets the frames, with their size and colours (NDI's codec is lossy: colours within a few
levels), a resize, and the receiver count."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from ganinstrument.common.frame import Frame
from ganinstrument.outputs.spec import open_sinks, parse_output_spec, unavailable_reason

ndi = pytest.importorskip("NDIlib", reason="ndi-python is in requirements-dev.txt; install it")


def _listening_ports() -> set[int]:
    """TCP ports this process listens on (Linux /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # 0A: LISTEN
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def _picture(height: int, width: int, shift: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 255 // max(1, width - 1) + shift) % 256, y * 255 // max(1, height - 1),
                    np.full_like(x, 90)], axis=-1)
    return img.astype(np.uint8)


class Receiver:
    def __init__(self, port: int):
        settings = ndi.RecvCreateV3()
        settings.color_format = ndi.RECV_COLOR_FORMAT_RGBX_RGBA
        self.recv = ndi.recv_create_v3(settings)
        source = ndi.Source()
        source.ndi_name = "test"
        source.url_address = f"127.0.0.1:{port}"
        ndi.recv_connect(self.recv, source)

    def next_frame(self, send, timeout_s=10.0):
        """Keep sending (`send()`) until a video frame arrives; returns it as [H, W, 4]."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            send()
            kind, video, _, _ = ndi.recv_capture_v2(self.recv, 100)
            if kind == ndi.FRAME_TYPE_VIDEO:
                try:
                    return np.array(video.data, copy=True), video.FourCC
                finally:
                    ndi.recv_free_video_v2(self.recv, video)
        raise AssertionError("no NDI frame arrived")

    def close(self):
        ndi.recv_destroy(self.recv)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds the source's port in /proc")
def test_frames_reach_an_ndi_receiver():
    before = _listening_ports()
    sinks = open_sinks("ndi:ganinstrument-test", 64, 48, 30)
    sink = sinks.get("ndi")
    frame = Frame(torch.from_numpy(_picture(48, 64, 0)), 0.0, 0)
    assert sink.submit(frame)
    deadline = time.monotonic() + 10
    while not (_listening_ports() - before - {5960}) and time.monotonic() < deadline:
        time.sleep(0.05)
    ports = sorted(_listening_ports() - before - {5960})
    assert ports, "the NDI source listens on no port"
    assert sink.full_name.endswith("(ganinstrument-test)")
    receiver = Receiver(ports[0])
    try:
        got, fourcc = receiver.next_frame(lambda: sink.submit(frame.again(time.monotonic())))
        assert fourcc in (ndi.FOURCC_VIDEO_TYPE_RGBX, ndi.FOURCC_VIDEO_TYPE_RGBA)
        assert got.shape == (48, 64, 4)
        error = np.abs(got[..., :3].astype(int) - frame.image.astype(int))
        assert error.mean() < 4 and np.percentile(error, 99) < 16
        deadline = time.monotonic() + 10  # counted after each send: the next sends see the receiver
        while sink.connections != 1 and time.monotonic() < deadline:
            sink.submit(frame.again(time.monotonic()))
            time.sleep(0.02)
        assert sink.connections == 1
        from ganinstrument.common.clock import FakeClock
        from ganinstrument.engine.loop import Engine
        from ganinstrument.instrument.facade import Instrument

        engine = Engine(Instrument("demo", device="cpu"), sinks=sinks, clock=FakeClock(), fps=None, trim_heap_s=None)
        assert engine.hud_values(0.0)["ndi"] == "1 receiver"  # the HUD says someone is watching
        # another size: the receiver follows
        big = Frame(torch.from_numpy(_picture(96, 128, 40)), 1.0, 1)
        for _ in range(50):
            got, _ = receiver.next_frame(lambda: sink.submit(big.again(time.monotonic())))
            if got.shape[:2] == (96, 128):
                break
        assert got.shape == (96, 128, 4)
        assert np.abs(got[..., :3].astype(int) - big.image.astype(int)).mean() < 4
    finally:
        receiver.close()
        assert sinks.close(5)
    st = sink.stats
    assert st.errors == 0 and st.written >= 2


def test_ndi_spec_and_availability(monkeypatch):
    (a,) = parse_output_spec("ndi")
    (b,) = parse_output_spec("ndi:Stage Left")
    assert a.option("source_name") == "ganinstrument" and b.option("source_name") == "Stage Left"
    assert unavailable_reason("ndi") is None
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "NDIlib" else real(name, *a))
    assert "pip install ganinstrument[ndi]" in unavailable_reason("ndi")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds the source's port in /proc")
def test_the_audio_input_goes_out_with_the_picture_on_one_clock():
    from ganinstrument.outputs.live_audio import AudioTap
    from ganinstrument.outputs.ndi import NdiSink

    tap = AudioTap()
    tap.configure(48000, 2)
    before = _listening_ports()
    sink = NdiSink("ganinstrument-audio-test", live_audio=tap)
    sink.open(64, 48, 30)
    picture = torch.from_numpy(_picture(48, 64, 0))
    block_times, frame_times = set(), set()
    state = {"block": 0, "frame": 0}

    def play():  # 1/30 s of a stereo tone (left = -right), then a frame, on the show clock from 100 s
        k = state["frame"]
        now = 100.0 + k / 30
        while 100.0 + (state["block"] + 1) * 256 / 48000 <= now:
            t = 100.0 + state["block"] * 256 / 48000
            x = 0.25 * np.sin(2 * np.pi * 440 * (t + np.arange(256) / 48000)).astype(np.float32)
            tap.push(np.stack([x, -x], axis=1), t)
            block_times.add(round(t * 1e7))
            state["block"] += 1
        sink.submit(Frame(picture, now, k))
        frame_times.add(round(now * 1e7))
        state["frame"] += 1
        time.sleep(0.005)

    try:
        deadline = time.monotonic() + 10
        while not (_listening_ports() - before - {5960}) and time.monotonic() < deadline:
            play()
        receiver = Receiver(sorted(_listening_ports() - before - {5960})[0])
        sounds, videos = [], []
        deadline = time.monotonic() + 20
        while (len(sounds) < 5 or not videos) and time.monotonic() < deadline:
            play()
            kind, video, audio, _ = ndi.recv_capture_v2(receiver.recv, 20)
            if kind == ndi.FRAME_TYPE_AUDIO:
                sounds.append((audio.timecode, audio.sample_rate, np.array(audio.data, copy=True)))
                ndi.recv_free_audio_v2(receiver.recv, audio)
            elif kind == ndi.FRAME_TYPE_VIDEO:
                videos.append(video.timecode)
                ndi.recv_free_video_v2(receiver.recv, video)
        receiver.close()
    finally:
        assert sink.close(5)
    assert len(sounds) >= 5 and videos, (len(sounds), len(videos))
    for timecode, rate, data in sounds:
        assert rate == 48000 and data.shape[0] == 2 and data.shape[1] % 256 == 0
        assert timecode in block_times  # each audio frame: the time its first block was heard
        assert np.abs(data[0]).max() == pytest.approx(0.25, abs=0.01)
        assert np.abs(data[0] + data[1]).max() < 1e-3  # the channels in their order
    assert set(videos) <= frame_times  # each picture: the time it was made, on the same clock
    assert not tap.wanted  # it stopped listening when it closed
