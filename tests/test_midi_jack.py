"""MIDI through a real JACK server (dummy driver): ports, streams, hot-plug, feedback, shutdown."""

from __future__ import annotations

import threading
import time

import pytest
from jack_helpers import JACK_BACKEND, FloodPlayer, JackReceiver, JackSender, wait_for

from ganinstrument.sources.midi.input import MidiInput, MidiOutput

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sender(jack_server):
    with JackSender("test-controller") as s:
        yield s


@pytest.fixture
def midi_in(jack_server, sender):
    inp = MidiInput("test-controller", backend=JACK_BACKEND, poll_s=0.05).start()
    try:
        assert wait_for(lambda: inp.open_ports, 5.0), inp.messages
        yield inp
    finally:
        assert inp.close(timeout_s=2.0)


def collect(inp: MidiInput, count: int, timeout: float = 5.0) -> list:
    got: list = []
    wait_for(lambda: got.extend(inp.drain()) or len(got) >= count, timeout)
    return got


def test_rtmidi_has_jack():
    import rtmidi

    assert rtmidi.API_UNIX_JACK in rtmidi.get_compiled_api()


def test_cc_stream_arrives_in_order_with_timestamps(midi_in, sender):
    t0 = midi_in.clock.now()
    for value in range(128):
        sender.cc(7, value, channel=3)
    got = collect(midi_in, 128)
    assert [e.value for e in got] == list(range(128))
    assert {(e.kind, e.channel, e.number, e.source) for e in got} == {
        ("control_change", 3, 7, "test-controller:out")}
    stamps = [e.timestamp for e in got]
    assert stamps == sorted(stamps) and t0 <= stamps[0] <= midi_in.clock.now()


def test_fourteen_bit_pairs_notes_relative_and_garbage(midi_in, sender):
    sender.cc(1, 64)   # MSB
    sender.cc(33, 5)   # LSB
    sender.note(60, 100)
    sender.note(60, 0)                # note off
    sender.send(0x90, 61, 0)          # note on velocity 0: kept as mido gives it
    sender.send(0xF0, 1, 2, 3, 0xF7)  # sysex: dropped inside RtMidi
    sender.send(0xF8)                 # clock
    sender.send(0xFE)                 # active sensing
    for tick in (1, 1, 2, 127, 126):  # a two's complement encoder, both ways
        sender.cc(16, tick)
    sender.send(0xE0, 0, 0x40)        # pitchwheel centre
    sender.send(0xC0, 5)              # program change
    got = collect(midi_in, 12)
    assert [(e.kind, e.number, e.value) for e in got] == [
        ("control_change", 1, 64), ("control_change", 33, 5),
        ("note_on", 60, 100), ("note_off", 60, 0), ("note_on", 61, 0),
        ("control_change", 16, 1), ("control_change", 16, 1), ("control_change", 16, 2),
        ("control_change", 16, 127), ("control_change", 16, 126),
        ("pitchwheel", 0, 0), ("program_change", 5, 5)]
    stats = midi_in.stats()
    assert stats.malformed == 0 and stats.dropped == 0


def test_flood_is_bounded_and_counted(jack_server):
    with FloodPlayer("bounded-ctl", 1000, 10000.0) as player:
        inp = MidiInput("bounded-ctl", backend=JACK_BACKEND, poll_s=0.05, queue_size=100).start()
        try:
            assert wait_for(lambda: inp.open_ports)
            player.start()
            assert wait_for(player.finished, 10.0)
            arrived = lambda: inp.stats().received + inp.stats().dropped  # noqa: E731
            wait_for(lambda: arrived() == 1000, 1.0)
            got, stats = inp.drain(), inp.stats()
        finally:
            inp.close()
    assert len(got) == stats.received == 100 and stats.dropped == arrived() - 100 > 0
    index = [e.number << 7 | int(e.value) for e in got]
    assert index == sorted(index) and index[0] < 100  # the oldest are kept, in order (JACK's)


def test_hot_plug_reopens_and_reports(jack_server):
    changes: list[tuple[str, str]] = []
    inp = MidiInput("/^hotplug-ctl:/", backend=JACK_BACKEND, poll_s=0.05,
                    on_change=lambda change, name: changes.append((change, name))).start()
    try:
        assert any("no MIDI input matches" in m for m in inp.messages)  # said at start, keeps running
        with JackSender("hotplug-ctl") as s:
            assert wait_for(lambda: inp.open_ports == ("hotplug-ctl:out",))
            s.cc(7, 1)
            assert [e.value for e in collect(inp, 1)] == [1]
        assert wait_for(lambda: not inp.open_ports)
        with JackSender("hotplug-ctl") as s:
            assert wait_for(lambda: inp.open_ports)
            s.cc(7, 2)
            assert [e.value for e in collect(inp, 1)] == [2]
        assert changes[:3] == [("opened", "hotplug-ctl:out"), ("lost", "hotplug-ctl:out"),
                               ("reopened", "hotplug-ctl:out")]
    finally:
        assert inp.close(timeout_s=2.0)


def test_backend_from_mido_environment_variable(jack_server, sender, monkeypatch):
    monkeypatch.setenv("MIDO_BACKEND", JACK_BACKEND)
    inp = MidiInput("TEST-CONTROLLER").start()  # case-insensitive substring
    try:
        assert inp.backend.describe() == JACK_BACKEND
        assert inp.open_ports == ("test-controller:out",)
    finally:
        inp.close()


def test_own_ports_never_chosen(jack_server, sender):
    out = MidiOutput("test-controller-never", backend=JACK_BACKEND).start()
    inp = MidiInput(None, backend=JACK_BACKEND).start()  # every input, but never ours
    try:
        assert inp.open_ports == ("test-controller:out",)
    finally:
        inp.close()
        out.close()


def test_output_sends_to_matching_port(jack_server):
    with JackReceiver("test-leds") as leds:
        out = MidiOutput("test-leds", backend=JACK_BACKEND, poll_s=0.05).start()
        try:
            assert out.open_ports == ("test-leds:in",)
            assert out.send([0xB0, 7, 127]) and out.send([0x90, 1, 1])
            assert wait_for(lambda: len(leds.received) >= 2), leds.received
            assert leds.received[:2] == [[0xB0, 7, 127], [0x90, 1, 1]], leds.received
        finally:
            assert out.close()


def test_shutdown_with_traffic_is_prompt(jack_server, sender):
    inp = MidiInput("test-controller", backend=JACK_BACKEND, poll_s=0.05).start()
    stop = threading.Event()

    def play():
        while not stop.is_set():
            sender.cc(1, 1)
            time.sleep(0.0005)

    player = threading.Thread(target=play)
    player.start()
    try:
        assert wait_for(lambda: inp.stats().received > 100)
        t0 = time.monotonic()
        assert inp.close(timeout_s=2.0)
        assert time.monotonic() - t0 < 2.0
        assert not any(t.name.startswith("midi-input") for t in threading.enumerate())
    finally:
        stop.set()
        player.join(5)


def test_feedback_resent_after_the_controller_returns(jack_server):
    from ganinstrument.sources.midi.feedback import MidiFeedback

    values = {"psi": 1.0, "z.0": 0.0}
    with JackReceiver("test-leds2") as leds:
        fb = None
        out = MidiOutput("test-leds2", backend=JACK_BACKEND, poll_s=0.05,
                         on_change=lambda change, name: fb and fb.resend_all())
        fb = MidiFeedback(out, [("cc", 0, 7, "psi"), ("note", 0, 1, "z.0")], lambda: values)
        out.start()
        try:
            assert fb.update() == 2
            assert wait_for(lambda: len(leds.received) == 2)
            assert leds.received == [[0xB0, 7, 127], [0x90, 1, 0]]
            assert fb.update() == 0
            leds.close()
            assert wait_for(lambda: not out.open_ports)
            with JackReceiver("test-leds2") as again:
                assert wait_for(lambda: out.open_ports)
                assert fb.update() == 2
                assert wait_for(lambda: len(again.received) == 2)
        finally:
            assert out.close()


def test_sustained_flood_from_another_process(jack_server):
    """10,000 messages/s for 1.5 s from another process, drained at ~60 fps: our queue drops
    nothing and keeps JACK's order. Each CC carries its message index (number = i >> 7,
    value = i & 127). JACK itself may lose (or repeat) events when its cycle runs late on a
    loaded machine (a port holds ~120 events per period), so delivery is reported, not
    demanded; the no-lost-edge property of our side is tested exactly in test_midi.py."""
    total = 15000
    with FloodPlayer("flood-ctl", total, 10000.0) as player:
        inp = MidiInput("flood-ctl", backend=JACK_BACKEND, poll_s=0.05).start()
        try:
            assert wait_for(lambda: inp.open_ports)
            player.start()
            got: list = []
            while not player.finished():
                got.extend(inp.drain())
                time.sleep(1 / 60)
            wait_for(lambda: got.extend(inp.drain()) or inp.stats().received == len(got) and not inp.stats().queued)
            stats = inp.stats()
        finally:
            assert inp.close()
    assert stats.dropped == 0 and stats.malformed == 0 and len(got) == stats.received
    index = [e.number << 7 | int(e.value) for e in got]
    # Non-decreasing, not strictly increasing: on a loaded machine the non-realtime dummy server
    # was seen repeating an event (a late cycle), which is JACK's doing, not ours.
    bad = [(k, index[k - 2:k + 3]) for k in range(1, len(index)) if index[k - 1] > index[k]]
    assert not bad, f"out of order at {bad[:5]} ({len(bad)} places)"
    assert len(got) >= total // 2, f"JACK delivered only {len(got)} of {total}"
    print(f"JACK delivered {len(got)} of {total} messages")
