"""The sink protocol: submit never waits, drops are counted, close has a deadline, one broken
sink leaves the others running; `--output` specs and what this machine lacks."""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest
import torch

from ganinstrument.common.frame import Frame
from ganinstrument.outputs import (
    SinkError,
    Sinks,
    SinkSpecError,
    SinkUnavailableError,
    ThreadedSink,
    open_sinks,
    parse_output_spec,
    unavailable_reason,
)
from ganinstrument.outputs.null import NullSink


def make_frame(i: int, t: float | None = None) -> Frame:
    return Frame(torch.full((8, 8, 3), i % 256, dtype=torch.uint8), i / 30 if t is None else t, i)


class GatedSink(ThreadedSink):
    """Its writer blocks on `gate` until the test opens it: an arbitrarily slow output."""

    def __init__(self, queue_size=1, on_full="drop", fail_at=None, name="gated"):
        super().__init__(name, queue_size=queue_size, on_full=on_full)
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.written: list[int] = []
        self.fail_at = fail_at

    def _start(self):
        pass

    def _write(self, frame):
        self.writing.set()
        self.gate.wait(10)
        if frame.index == self.fail_at:
            raise RuntimeError("encoder exploded")
        self.written.append(frame.index)


def submit_timed(sink, frames) -> float:
    """Submit each frame; return the slowest submit in seconds."""
    worst = 0.0
    for f in frames:
        t0 = time.perf_counter()
        assert sink.submit(f)
        worst = max(worst, time.perf_counter() - t0)
    return worst


def test_latest_wins_never_blocks_and_delivers_the_newest():
    sink = GatedSink(queue_size=1)
    sink.open(8, 8, 30)
    sink.submit(make_frame(0))
    assert sink.writing.wait(5)  # frame 0 is being written; the writer is now stuck
    worst = submit_timed(sink, [make_frame(i) for i in range(1, 50)])
    assert worst < 0.05  # generous for a loaded 2-core CI box; a blocking submit takes 10 s
    sink.gate.set()
    assert sink.wait_idle(5)
    assert sink.close(2)
    assert sink.written == [0, 49]
    stats = sink.stats
    assert (stats.submitted, stats.written, stats.dropped, stats.errors) == (50, 2, 48, 0)


def test_bounded_fifo_drops_the_oldest_and_drains_on_close():
    sink = GatedSink(queue_size=4)
    sink.open(8, 8, 30)
    sink.submit(make_frame(0))
    assert sink.writing.wait(5)
    submit_timed(sink, [make_frame(i) for i in range(1, 10)])
    assert sink.stats.queued == 4
    sink.gate.set()
    assert sink.close(5)
    assert sink.written == [0, 6, 7, 8, 9]
    assert sink.stats.dropped == 5


def test_offline_wait_mode_keeps_every_frame():
    sink = GatedSink(queue_size=2, on_full="wait")
    sink.open(8, 8, 30)
    threading.Timer(0.2, sink.gate.set).start()
    t0 = time.perf_counter()
    for i in range(6):
        assert sink.submit(make_frame(i))
    assert time.perf_counter() - t0 >= 0.15  # it did wait for room
    assert sink.close(5)
    assert sink.written == list(range(6)) and sink.stats.dropped == 0


def test_close_gives_up_on_a_stuck_sink_within_its_timeout():
    sink = GatedSink()
    sink.open(8, 8, 30)
    sink.submit(make_frame(0))
    assert sink.writing.wait(5)
    t0 = time.perf_counter()
    assert sink.close(0.2) is False
    assert time.perf_counter() - t0 < 1.0
    assert not sink.submit(make_frame(1))  # closing: frames are refused, not queued
    sink.gate.set()


def test_a_failing_sink_goes_down_alone_is_logged_once_and_opens_again(caplog):
    broken = GatedSink(queue_size=8, fail_at=2, name="broken")
    broken.gate.set()
    null = NullSink(queue_size=8)
    sinks = Sinks([broken, null])
    for s in sinks:
        s.open(8, 8, 30)
    with caplog.at_level(logging.DEBUG, logger="ganinstrument.outputs"):
        for i in range(5):
            sinks.submit(make_frame(i))
            broken.wait_idle(2)
            null.wait_idle(2)
        assert sinks.submit(make_frame(5)) == 1  # broken is down: only null takes it
        assert broken.stats.dropped >= 1  # ... and the frame it missed is counted
        deadline = time.monotonic() + 2.0  # the promise: back within 2 s
        while not broken.stats.enabled and time.monotonic() < deadline:
            time.sleep(0.02)
        assert broken.stats.enabled and broken.stats.restarts == 1
        assert broken.submit(make_frame(6)) and broken.wait_idle(2)
    assert sinks.close(2)
    b, n = broken.stats, null.stats
    assert (b.errors, b.written) == (1, 3) and broken.written == [0, 1, 6]
    assert "encoder exploded" in b.last_error
    assert n.written == 6 and n.errors == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "broken" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage() and errors[0].exc_info is None  # one line, no traceback
    assert [m.split(":")[0] for m in broken.messages] == ["broken failed", "broken"]
    assert "open again" in broken.messages[-1]


def test_a_sink_that_will_not_open_again_backs_off_and_still_closes_at_once():
    class Flaky(GatedSink):
        starts = 0

        def _start(self):
            self.starts += 1
            if self.starts > 1:
                raise RuntimeError("device gone")

    sink = Flaky(fail_at=0, name="flaky")
    sink.gate.set()
    sink.open(8, 8, 30)
    sink.submit(make_frame(0))
    time.sleep(1.2)  # back-offs 0.25, 0.5, ...: two or three tries, not hundreds
    assert 2 <= sink.starts <= 5
    assert not sink.stats.enabled and "device gone" in sink.stats.last_error
    t0 = time.perf_counter()
    assert sink.close(2)
    assert time.perf_counter() - t0 < 0.5


def test_a_sink_that_fails_on_every_frame_backs_off_instead_of_reopening_at_once():
    class Broken(GatedSink):
        starts = 0

        def _start(self):
            self.starts += 1

        def _write(self, frame):
            raise RuntimeError("driver lost")

    sink = Broken(name="broken")
    sink.open(8, 8, 30)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:  # frames keep coming; each open fails on its first one
        sink.submit(make_frame(int((time.monotonic() - t0) * 100)))
        time.sleep(0.01)
    assert sink.close(2)
    # waits 0.25, 0.5, 1.0 s: three reopens in 2 s (eight, had it started afresh each time)
    assert 2 <= sink.stats.restarts <= 4 and sink.starts == sink.stats.restarts + 1


def test_a_sink_with_restart_off_stays_off():
    class Once(GatedSink):
        restart = False

    sink = Once(fail_at=0, name="once")
    sink.gate.set()
    sink.open(8, 8, 30)
    sink.submit(make_frame(0))
    time.sleep(0.6)
    assert not sink.stats.enabled and sink.stats.restarts == 0
    assert not sink.submit(make_frame(1))
    assert sink.close(1)


def test_latest_wins_counts_a_lost_picture_not_a_repeat_of_the_same_one():
    sink = GatedSink(queue_size=1)
    sink.open(8, 8, 30)
    first = make_frame(0)
    sink.submit(first)
    assert sink.writing.wait(5)  # the writer is stuck on frame 0
    still = make_frame(1)
    for k in range(20):  # an unchanged scene: the same picture, retimed, every frame
        sink.submit(still.again(1 + k / 30))
    assert sink.stats.dropped == 0
    sink.submit(make_frame(2))  # a new picture replaces the one never shown
    assert sink.stats.dropped == 1
    sink.gate.set()
    assert sink.wait_idle(5) and sink.close(2)
    assert sink.written == [0, 2]


def test_open_reports_a_sink_that_cannot_start():
    class NoStart(GatedSink):
        def _start(self):
            raise RuntimeError("no such device")

    sink = NoStart(name="nostart")
    with pytest.raises(SinkError, match="nostart: could not start: no such device"):
        sink.open(8, 8, 30)
    assert not sink.submit(make_frame(0))
    assert isinstance(SinkError("x"), OSError)


def test_null_sink_counts_demo_frames():
    from ganinstrument import Instrument

    inst = Instrument("demo", device="cpu")
    with Sinks([NullSink(copy_to_host=True, on_full="wait")]) as sinks:
        frame = inst.step(1 / 30)
        sinks.sinks[0].open(*frame.size, 30)
        for _ in range(5):
            sinks.submit(inst.step(1 / 30))
        sinks.sinks[0].wait_idle(5)
        assert sinks.stats()[0].written == 5


@pytest.mark.parametrize("spec, kinds", [
    ("null", ["null"]),
    ("spout,preview,record:out.mp4,null", ["spout", "preview", "record", "null"]),
    (" spout:Deck A , preview:fullscreen ", ["spout", "preview"]),
    ("record:frames/, frames:pngs", ["frames", "frames"]),
    (r"record:C:\gig\take.mp4", ["record"]),
])
def test_spec_kinds(spec, kinds):
    assert [item.kind for item in parse_output_spec(spec)] == kinds


def test_spec_options():
    spout, preview, record = parse_output_spec(
        "spout:Deck A,preview:monitor=1:size=800x600:vsync:nohud,record:C:\\x.mp4")
    assert spout.option("sender_name") == "Deck A"
    assert parse_output_spec("spout")[0].option("sender_name") == "ganinstrument"
    assert dict(preview.options) == {"monitor": 1, "size": (800, 600), "vsync": True,
                                     "nohud": True}
    assert record.option("path") == "C:\\x.mp4"


def test_spec_errors_are_listed_together():
    with pytest.raises(SinkSpecError) as info:
        parse_output_spec("spout,foo,record,preview:monitor=x,,spout")
    text = str(info.value)
    for part in ("unknown output 'foo'", "record needs a path", "unknown preview option",
                 "empty item", "'spout' repeats 'spout'"):
        assert part in text
    assert isinstance(info.value, ValueError)


@pytest.mark.skipif(sys.platform == "win32", reason="checks the message off Windows")
def test_spout_is_reported_unavailable_off_windows(monkeypatch):
    monkeypatch.delitem(sys.modules, "SpoutGL", raising=False)
    assert unavailable_reason("spout") == "spout: only on Windows (SpoutGL is Windows-only)"
    with pytest.raises(SinkUnavailableError, match="only on Windows"):
        open_sinks("null,spout", 8, 8, 30)
    sinks = open_sinks("null,spout", 8, 8, 30, required=False)  # defaults: skip, warn
    assert [s.name for s in sinks] == ["null"]
    sinks.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY is an X11 matter")
def test_preview_without_a_display_says_so(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "no display" in unavailable_reason("preview")


def test_open_sinks_closes_what_it_opened_when_one_fails(tmp_path):
    with pytest.raises(SinkError, match="does not exist"):
        open_sinks(f"null,record:{tmp_path}/missing/take.mp4", 64, 48, 30)
    sinks = open_sinks(f"null,record:{tmp_path}/take.mp4", 64, 48, 30, offline=True)
    assert [s.name for s in sinks] == ["null", "record"]
    sinks.submit(Frame(torch.zeros((48, 64, 3), dtype=torch.uint8), 0.0, 0))
    assert sinks.close(5)
    assert (tmp_path / "take.mp4").stat().st_size > 0
