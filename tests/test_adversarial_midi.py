"""Adversarial MIDI through a real JACK server: garbage bytes, invalid status bytes, running
status, sysex, floods. Nothing may raise into the reader, kill the MIDI input process or reach
the engine as anything but counted, well-formed events; each kind of problem is one line
(issue 13, item 8)."""

from __future__ import annotations

import time

import pytest
from jack_helpers import JACK_BACKEND, JackSender, wait_for

from ganinstrument.sources.midi.input import MidiInput, bytes_shown

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def rig(jack_server, request):
    queue_size = getattr(request, "param", 8192)
    with JackSender("adv-ctl") as sender:
        inp = MidiInput("adv-ctl", backend=JACK_BACKEND, poll_s=0.05, queue_size=queue_size).start()
        try:
            assert wait_for(lambda: inp.open_ports, 5.0), list(inp.messages)
            yield inp, sender
        finally:
            assert inp.close(timeout_s=2.0)


def arrives(inp: MidiInput, sender: JackSender, value: int) -> list:
    """Send CC 7 = value; everything drained up to and including it (None if it never came)."""
    got: list = []
    sender.cc(7, value)
    ok = wait_for(lambda: got.extend(inp.drain()) or any(e.number == 7 and e.value == value for e in got), 5.0)
    return got if ok else None


GARBAGE = [
    [0x3C, 0x40],        # running status: data bytes without a status byte
    [0x3C, 0x40, 0x41],
    [0x00],
    [0x90, 0x90, 0x90],  # data bytes >= 128
    [0xB0, 7],           # too short
    [0xC0, 200],
    [0x90, 60],
    [0xFF],              # reset: a system message
    [0xF4], [0xF5], [0xF7], [0xF9], [0xFD],  # undefined status bytes
    [0xF0, 0x90, 0xFF, 0x01],  # a "sysex" with bytes >= 128 and no end
    [0xF0] + [0x7F] * 500 + [0xF7],  # a long sysex (RtMidi drops sysex)
]


def test_garbage_is_counted_said_once_and_the_stream_goes_on(rig):
    inp, sender = rig
    pid = inp.backend.input_process.pid
    for data in GARBAGE:
        sender.send(*data)
    got = arrives(inp, sender, 99)
    assert got is not None
    assert [(e.kind, e.number, e.value) for e in got] == [("control_change", 7, 99)]
    stats = inp.stats()
    assert stats.malformed == 7 and stats.ignored == 6 and stats.received == 1
    said = [m for m in inp.messages if "malformed" in m]
    assert said == ["MIDI adv-ctl:out: malformed message [3C 40] ignored (a faulty device or cable?)"]
    # ... and the other six are counted, said once by the hot-plug poller after the window.
    assert wait_for(lambda: "MIDI adv-ctl:out: 6 more malformed messages ignored" in inp.messages, 5.0)
    assert inp.backend.input_process.pid == pid and inp.backend.input_process.restarts == 0


@pytest.mark.parametrize("rig", [50], indirect=True)  # the queue holds 50 events
def test_program_change_flood_is_bounded_and_the_stream_goes_on(rig):
    inp, sender = rig
    for i in range(400):
        sender.send(0xC0 | (i % 16), i % 128)
        if i % 50 == 49:
            time.sleep(0.01)  # JACK carries ~120 events per period: let it
    assert wait_for(lambda: inp.stats().received + inp.stats().dropped >= 400, 5.0)
    got = inp.drain()
    assert len(got) == 50 and all(e.kind == "program_change" for e in got)
    assert inp.stats().dropped == 350 and inp.stats().malformed == 0
    assert arrives(inp, sender, 5) is not None
    assert inp.backend.input_process.restarts == 0


def test_a_failing_callback_never_stops_the_reader(rig):
    inp, sender = rig
    host = inp.backend.input_process
    [callback] = host._callbacks.values()
    calls = []

    def broken(data):
        calls.append(data)
        if len(calls) == 1:
            raise RuntimeError("a bug in on_bytes")
        callback(data)

    [port_id] = host._callbacks
    host._callbacks[port_id] = broken
    sender.cc(1, 1)
    assert arrives(inp, sender, 42) is not None  # the reader went on after the exception
    assert host.callback_errors == 1 and host.restarts == 0


def test_bytes_shown():
    assert bytes_shown([0x90, 60, 127]) == "[90 3C 7F]"
    assert bytes_shown([0xF0] + [1] * 20) == "[F0 01 01 01 01 01 01 01 ... (21 bytes)]"
