"""OSC input with real UDP packets on loopback (python-osc's own client)."""

from __future__ import annotations

import socket
import threading

import pytest
from jack_helpers import wait_for
from pythonosc.udp_client import SimpleUDPClient

from ganinstrument.common.clock import FakeClock
from ganinstrument.common.events import ControlEvent, ParamUpdate
from ganinstrument.sources.osc import OscError, OscServer
from ganinstrument.state.params import ActionSpec, Registry, TargetSpec

pytestmark = pytest.mark.timeout(60)

REGISTRY = Registry.build(
    [TargetSpec("psi", -1.0, 2.0, 1.0), TargetSpec("z.0", -3.0, 3.0, 0.0)],
    [ActionSpec("seed.next"), ActionSpec("preset.recall", takes_value=True)],
)


@pytest.fixture
def server():
    srv = OscServer(REGISTRY, port=0, clock=FakeClock(3.0)).start()
    try:
        yield srv
    finally:
        assert srv.close(timeout_s=2.0)


def collect(srv, count, timeout_s=5.0):
    got = []
    wait_for(lambda: got.extend(srv.drain()) or len(got) >= count, timeout_s)
    return got


def test_targets_actions_and_other_addresses_in_order(server):
    client = SimpleUDPClient("127.0.0.1", server.port)
    client.send_message("/ganinstrument/psi", 0.25)
    client.send_message("/ganinstrument/z.0", 2)  # an int is a number too
    client.send_message("/ganinstrument/seed.next", [])
    client.send_message("/ganinstrument/preset.recall", 3)
    client.send_message("/td/fader1", ["label", 0.75])
    client.send_message("/bang", [])
    got = collect(server, 6)
    assert got == [
        ParamUpdate("psi", 0.25, source="osc"),
        ParamUpdate("z.0", 2.0, source="osc"),
        ParamUpdate("seed.next", 0.0, action=True, source="osc"),
        ParamUpdate("preset.recall", 3.0, action=True, source="osc"),
        ControlEvent("osc", value=0.75, timestamp=3.0, source="osc", address="/td/fader1"),
        ControlEvent("osc", value=0.0, timestamp=3.0, source="osc", address="/bang"),
    ]


def test_bad_messages_are_rejected_once_with_did_you_mean(server):
    client = SimpleUDPClient("127.0.0.1", server.port)
    for _ in range(3):
        client.send_message("/ganinstrument/psy", 0.5)
    client.send_message("/ganinstrument/psi", "high")
    client.send_message("/ganinstrument/psi", float("nan"))
    client.send_message("/ganinstrument/preset.recall", [])
    client.send_message("/ganinstrument/psi", 1.5)  # still alive after all that
    assert collect(server, 1) == [ParamUpdate("psi", 1.5, source="osc")]
    assert server.stats().rejected == 6
    assert any("did you mean /ganinstrument/psi" in m for m in server.messages)
    assert sum("psy" in m for m in server.messages) == 1


def test_garbage_datagrams_do_not_stop_the_server(server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"", b"\x00\x01garbage", b"/x\x00\x00,f\x00\x00\x01", b"#bundle\x00" + b"\xff" * 9):
            s.sendto(junk, ("127.0.0.1", server.port))
    SimpleUDPClient("127.0.0.1", server.port).send_message("/ganinstrument/psi", 0.5)
    got = []
    assert wait_for(lambda: got.extend(server.drain()) or ParamUpdate("psi", 0.5, source="osc") in got)


def test_queue_is_bounded(server):
    server.queue_size = 10
    client = SimpleUDPClient("127.0.0.1", server.port)
    for i in range(50):
        client.send_message("/x", i)
    assert wait_for(lambda: server.stats().received + server.stats().dropped == 50)
    assert [e.value for e in server.drain()] == list(range(10))
    assert server.stats().dropped == 40


def test_port_in_use_is_a_clear_error(server):
    with pytest.raises(OscError, match=f"127.0.0.1:{server.port}.*--osc-port") as info:
        OscServer(REGISTRY, port=server.port).start()
    assert isinstance(info.value, OSError)


def test_close_stops_the_thread_promptly():
    srv = OscServer(REGISTRY, port=0).start()
    assert srv.close(timeout_s=2.0)
    assert not any(t.name == "osc-server" for t in threading.enumerate())


def test_drives_the_demo_instrument():
    from ganinstrument.instrument.facade import Instrument

    inst = Instrument("demo", device="cpu")
    with OscServer(inst.registry, port=0) as srv:
        client = SimpleUDPClient("127.0.0.1", srv.port)
        client.send_message("/ganinstrument/psi", 0.4)
        client.send_message("/ganinstrument/psi", 9.0)  # clamped by the target's range
        client.send_message("/ganinstrument/z.random", [])
        updates = collect(srv, 3)
    assert all(inst.apply(u) for u in updates)
    assert inst.state.target("psi") == inst.registry.targets["psi"].maximum
