"""The live engine: frames flow from sources to sinks, errors keep the last good frame,
panic keys work, and shutdown closes everything in order."""

from __future__ import annotations

import json
import threading
import time

import pytest

from ganinstrument.common.clock import FakeClock, MonotonicClock
from ganinstrument.common.reporting import Quiet
from ganinstrument.engine.loop import Engine
from ganinstrument.instrument.facade import Instrument
from ganinstrument.modulation.audio import AudioFeatures
from ganinstrument.outputs.base import Sinks, ThreadedSink
from ganinstrument.sources.osc import OscServer


class Collect(ThreadedSink):
    """A real threaded sink that keeps what it was given (FIFO, waits: nothing dropped)."""

    def __init__(self):
        super().__init__("collect", queue_size=64, on_full="wait")
        self.frames = []

    def _start(self):
        pass

    def _write(self, frame):
        self.frames.append((frame.index, frame.image.copy()))


@pytest.fixture(scope="module")
def inst():
    return Instrument("demo", device="cpu")


def _engine(inst, **kw):
    sink = Collect()
    sink.open(256, 256, 30)
    clock = FakeClock()
    engine = Engine(inst, sinks=Sinks([sink]), clock=clock, fps=None, **kw)
    return engine, sink, clock


def test_frames_reach_the_sinks_and_shutdown_closes_them(inst):
    engine, sink, clock = _engine(inst, max_frames=4)
    stats = engine.run()
    assert stats.frames == 4 and stats.errors == 0
    assert len(sink.frames) == 4
    assert not sink._thread.is_alive()


def test_real_dt_drives_smoothing_and_params_are_logged(inst, tmp_path):
    log = tmp_path / "params.jsonl"
    engine, sink, clock = _engine(inst, log_params=log)
    inst.set("psi", 1.0, immediate=True)
    engine.frame()
    inst.set("psi", 0.0)
    for _ in range(3):
        clock.advance(0.05)
        engine.frame()
    engine.close()
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["frame"] for r in rows] == [0, 1, 2, 3]
    assert rows[-1]["t"] == pytest.approx(0.15)
    psi = [r["values"]["psi"] for r in rows]
    assert psi[0] == 1.0 and psi[1] > psi[2] > psi[3] > 0.0  # 60 ms smoothing, by real dt
    assert set(rows[0]["values"]) == set(inst.targets())


def test_osc_controls_a_target_through_the_engine(inst):
    from pythonosc.udp_client import SimpleUDPClient

    osc = OscServer(inst.registry, port=0).start()
    engine, sink, clock = _engine(inst, controls=[osc])
    try:
        SimpleUDPClient("127.0.0.1", osc.port).send_message("/ganinstrument/z.3", 2.0)
        deadline = time.monotonic() + 5
        while inst.state.target("z.3") != 2.0 and time.monotonic() < deadline:
            engine.frame()
            time.sleep(0.01)
        assert inst.state.target("z.3") == 2.0
        assert engine.stats.last_touched.startswith("z.3")
    finally:
        engine.close()
        inst.set("z.3", 0.0, immediate=True)
    assert not osc._thread.is_alive()


def test_an_exception_keeps_the_last_good_frame_up(inst, monkeypatch):
    engine, sink, clock = _engine(inst)
    good = engine.frame()
    real_step = inst.step
    calls = {"n": 0}

    def flaky(dt):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_step(dt)

    monkeypatch.setattr(inst, "step", flaky)
    clock.advance(0.1)
    shown = engine.frame()
    assert shown is good and engine.stats.errors == 1
    assert "out of memory" in engine.stats.last_error
    clock.advance(0.1)
    engine.frame()  # and the next frame renders again
    engine.close()
    assert [i for i, _ in sink.frames][:2] == [good.index, good.index]


def test_panic_freeze_and_blackout(inst):
    engine, sink, clock = _engine(inst)
    first = engine.frame()
    engine.key_action("panic.freeze")
    inst_target = inst.state.target("psi")
    clock.advance(0.1)
    assert engine.frame() is first and engine.frozen
    engine.key_action("panic.freeze")
    engine.key_action("panic.blackout")
    clock.advance(0.1)
    engine.frame()
    engine.key_action("quit")
    clock.advance(0.1)
    engine.frame()
    assert engine.stopping
    engine.close()
    assert sink.frames[-1][1].max() == 0 and sink.frames[0][1].max() > 0
    assert inst.state.target("psi") == inst_target


def test_run_stops_on_request_from_another_thread(inst):
    engine, sink, clock = _engine(inst)
    engine.clock = __import__("ganinstrument.common.clock", fromlist=["MonotonicClock"]).MonotonicClock()
    engine.fps = 100
    def stop_once_playing():  # (run() first freezes the startup objects: a big process takes a while)
        deadline = time.monotonic() + 30
        while engine.stats.frames < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        asked.append(time.monotonic())
        engine.request_stop()

    asked = []
    stopper = threading.Thread(target=stop_once_playing)
    stopper.start()
    stats = engine.run()
    returned = time.monotonic()
    stopper.join()
    assert stats.frames >= 2 and returned - asked[0] < 2.0
    assert not sink._thread.is_alive()


def test_the_show_runs_with_startup_objects_frozen_out_of_the_garbage_collector(inst):
    import gc

    seen = []

    class Watch(Collect):
        def submit(self, frame):
            seen.append(gc.get_freeze_count())
            return super().submit(frame)

    sink = Watch()
    sink.open(256, 256, 30)
    before = gc.get_freeze_count()
    Engine(inst, sinks=Sinks([sink]), clock=FakeClock(), fps=None, max_frames=3).run()
    # the model's tensors' Python objects and the registry are among the frozen
    assert len(seen) == 3 and min(seen) > before + 1000
    assert gc.get_freeze_count() == before            # given back to the collector at the end


def test_the_hud_says_what_the_sources_report(inst):
    """A missing controller or audio device, and news such as the MIDI process restarting, reach
    the HUD; news fades after NEWS_S seconds, the waiting state stays while it lasts."""

    from ganinstrument.engine.hud import NEWS_S
    from ganinstrument.sources.midi.input import MidiInput

    class Backend:  # lists no port at all (a real MidiInput, just nothing plugged in)
        def names(self, direction):
            return []

    class NoAudio(Quiet):
        def latest(self):
            return None

        def drain_onsets(self):
            return []

        def hud_lines(self):
            return {"audio": "no input device 'Line In'; running without audio features"}

    midi = MidiInput("nano", backend=Backend(), poll_s=60).start()
    clock = FakeClock()
    engine = Engine(inst, controls=[midi], modulation=[AudioFeatures(NoAudio())], clock=clock, fps=None)
    try:
        hud = engine.hud_values(clock.now())
        assert hud["midi"] == "waiting for 'nano'"
        assert "no MIDI input matches 'nano'" in hud["news"]
        assert hud["audio"].startswith("no input device 'Line In'")
        clock.advance(NEWS_S + 1)
        assert "news" not in engine.hud_values(clock.now())
        midi.messages.append("the MIDI input process died (signal 11); restarting it")
        assert "restarting" in engine.hud_values(clock.now())["news"]
    finally:
        midi.close()
        engine.close()


def test_the_show_watches_the_heap_while_it_runs(inst):
    engine = Engine(inst, clock=FakeClock(), fps=None, max_frames=40, trim_heap_s=0.001)
    engine.frame = _slow(engine.frame)
    engine.run()
    assert engine.heap_trimmer.checks >= 1  # (it trims only once memory has grown: test_heap.py)
    assert not engine.heap_trimmer._thread.is_alive()  # stopped with the show
    assert Engine(inst, trim_heap_s=None).heap_trimmer is None


def _slow(frame):
    def slower():
        time.sleep(0.002)  # the fake clock does not move; give the trimmer's timer real time
        return frame()
    return slower


def test_the_hud_shows_each_panic_as_news_even_when_it_repeats(inst):
    from ganinstrument.engine.hud import NEWS_S

    clock = FakeClock()
    engine = Engine(inst, clock=clock, fps=None, trim_heap_s=None)
    for _ in range(2):
        engine.key_action("panic.freeze")
        engine.frame()
        assert engine.hud_values(clock.now())["news"] == "frozen"
        engine.key_action("panic.freeze")
        engine.frame()
        assert engine.hud_values(clock.now())["news"] == "unfrozen"
        clock.advance(NEWS_S + 1)
        assert "news" not in engine.hud_values(clock.now())
    engine.close()


def test_a_frozen_picture_is_held_in_a_recording_for_as_long_as_it_was_frozen(inst, tmp_path):
    import av

    from ganinstrument.outputs.recorder import VideoRecorder

    rec = VideoRecorder(tmp_path / "frozen.mp4", on_full="wait", crash_safe=True)
    rec.open(256, 256, 10)
    clock = FakeClock(500.0)
    engine = Engine(inst, sinks=Sinks([rec]), clock=clock, fps=None)
    for k in range(20):
        if k in (5, 15):
            engine.key_action("panic.freeze")
        engine.frame()
        clock.advance(0.1)
    engine.close()
    with av.open(str(tmp_path / "frozen.mp4")) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    # the sinks get the show clock's time: a held picture does not stop the recording's clock
    assert len(times) == 20 and times[-1] - times[0] == pytest.approx(1.9, abs=1e-3)


def test_a_params_log_that_cannot_be_written_stops_and_the_show_goes_on(inst):
    engine, sink, clock = _engine(inst, log_params="/dev/full")  # fails once its 64 KiB buffer fills
    for _ in range(300):
        engine.frame()
        clock.advance(0.1)
    engine.close()
    assert engine.stats.errors == 0 and len(sink.frames) == 300
    assert any("--log-params stopped" in m for m in engine.messages)


def test_the_params_log_reaches_the_disk_within_a_second_of_show_time(inst, tmp_path):
    log = tmp_path / "params.jsonl"
    engine, sink, clock = _engine(inst, log_params=log)
    try:
        for _ in range(16):  # 1.5 s of show: far less than the log's 64 KiB buffer
            engine.frame()
            clock.advance(0.1)
        on_disk = [json.loads(line) for line in log.read_text().splitlines()]  # (not closed yet)
        assert on_disk and on_disk[-1]["t"] >= 0.5
    finally:
        engine.close()


def test_each_frame_says_where_its_time_went(inst):
    seen = []
    engine, sink, clock = _engine(inst)
    engine.on_frame.append(lambda frame, times: seen.append((frame, times)))
    engine.on_frame.insert(0, lambda frame, times: 1 / 0)  # a broken observer harms nothing
    writes = []
    sink.on_write.append(lambda began, ended: writes.append(ended - began))
    inst.set("z.1", 1.5)  # moving: every frame renders
    for _ in range(3):
        clock.advance(0.05)
        engine.frame()
    assert sink.wait_idle(5)
    engine.close()
    inst.set("z.1", 0.0, immediate=True)
    assert len(seen) == 3 and all(frame is not None for frame, _ in seen)
    for _, t in seen:
        parts = t.input_s + t.modulation_s + t.render_s + t.submit_s
        assert t.render_s > 0 and t.submit_s > 0 and 0 < parts <= t.total_s
    assert engine.stats.times == seen[-1][1] and engine.stats.frames == 3
    with pytest.raises(AttributeError):
        engine.stats.frames = 0  # a snapshot, not the engine's own counters
    assert len(writes) == 3 and sink.stats.write_s == writes[-1] > 0


def test_offline_pacing_moves_the_clock_exactly_one_frame_at_a_time():
    """render's clock: frame k is at origin + k / fps, the very number a live show's clock set
    to k / fps reads (so a session lands on the same frames), never a sum of roundings."""
    from ganinstrument.engine.pacing import OfflinePacing

    clock = FakeClock(0.0)
    pacing = OfflinePacing(clock, 30.0)
    pacing.start()
    times = []
    for _ in range(1000):
        pacing.wait()
        times.append(clock.now())
    assert times == [k / 30.0 for k in range(1, 1001)]
    assert sum([1 / 30.0] * 1000) != times[-1]  # (what adding 1/30 a frame would have drifted to)
    assert pacing.stamp(123.4, 7) == 7 / 30.0
    with pytest.raises(ValueError):
        OfflinePacing(MonotonicClock(), 30.0)  # a real clock cannot be moved


def test_a_frame_that_fails_without_drawing_is_counted_too(monkeypatch):
    """The pre-roll (and draw=False) fails like any frame: counted, said, and offline the run
    stops there."""
    inst = Instrument("demo", device="cpu")

    def broken(dt):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(inst, "advance", broken)
    clock = FakeClock()
    live = Engine(inst, clock=clock, fps=None, draw=False, max_frames=None, trim_heap_s=None)
    for _ in range(3):
        live.frame()
        clock.advance(0.1)
    assert live.stats.errors == 3 and "illegal memory access" in live.stats.last_error and not live.stopping
    offline = Engine(inst, clock=FakeClock(), fps=30, offline=True, pre_roll=5, max_frames=2, trim_heap_s=None)
    stats = offline.run()
    assert stats.errors == 1 and stats.frames == 0  # stopped at the first pre-roll frame
