"""Adversarial OSC: hostile packets and values sent as real UDP datagrams to the real server.

Nothing a sender does may reach stderr as a traceback, stop or stall the server thread, or flood
the log: each problem is one line naming the sender and the address (issue 13, item 8).
"""

from __future__ import annotations

import logging
import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jack_helpers import wait_for
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from ganinstrument.common.events import ParamUpdate
from ganinstrument.sources.complaints import BURST
from ganinstrument.sources.osc import OscServer
from ganinstrument.state.params import ActionSpec, Registry, TargetSpec

pytestmark = pytest.mark.timeout(120)

REGISTRY = Registry.build([TargetSpec("psi", -1.0, 2.0, 1.0)],
                          [ActionSpec("seed.next"), ActionSpec("preset.recall", takes_value=True)])
PSI = ParamUpdate("psi", 0.5, source="osc")


@pytest.fixture
def server():
    srv = OscServer(REGISTRY, port=0).start()
    try:
        yield srv
    finally:
        assert srv.close(timeout_s=2.0)


@pytest.fixture
def no_traceback(capfd):
    """Checks that nothing reached stderr (socketserver prints its tracebacks there, from the
    server thread) and that the server thread still runs."""
    def check(srv: OscServer) -> None:
        err = capfd.readouterr().err
        assert "Traceback" not in err, err
        assert srv._thread.is_alive()
    return check


def sendto(port: int, *datagrams: bytes) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data in datagrams:
            s.sendto(data, ("127.0.0.1", port))
        return s.getsockname()[1]


def still_playing(srv: OscServer) -> bool:
    """A valid message sent now arrives. It is sent again every 0.2 s: after a flood, the kernel
    may drop datagrams while the socket's buffer is full (UDP promises nothing)."""
    client, got, sent = SimpleUDPClient("127.0.0.1", srv.port), [], [0.0]

    def arrived():
        now = time.monotonic()
        if now - sent[0] > 0.2:
            client.send_message("/ganinstrument/psi", 0.5)
            sent[0] = now
        got.extend(srv.drain())
        return PSI in got

    return bool(wait_for(arrived, 10.0))


def message(address: str, *args, types: str | None = None) -> bytes:
    b = OscMessageBuilder(address)
    for i, arg in enumerate(args):
        b.add_arg(arg, types[i] if types else None)
    return b.build().dgram


def raw_message(address: bytes, tags: bytes = b",", payload: bytes = b"") -> bytes:
    def pad(b: bytes) -> bytes:
        b += b"\0"
        return b + b"\0" * (-len(b) % 4)
    return pad(address) + pad(tags) + payload


def test_undecodable_packets_are_counted_in_one_line_per_sender(server, no_traceback, caplog):
    caplog.set_level(logging.WARNING, "ganinstrument.osc")
    # An address that is not UTF-8: python-osc raises UnicodeDecodeError, which used to escape
    # from the server thread as a traceback; then truncated and non-OSC packets.
    bad = raw_message(b"/\xff\xfe", b",f", struct.pack(">f", 1.0))
    port = sendto(server.port, *[bad] * 32)
    sendto(server.port, b"", b"garbage", b"/x\x00\x00,i\x00\x00", b"#bundle\x00" + b"\xff" * 9)
    assert still_playing(server)
    no_traceback(server)
    assert server.stats().malformed == 36
    lines = [r.getMessage() for r in caplog.records]
    ours = [m for m in lines if f"127.0.0.1:{port}" in m]
    assert len(ours) == 1 and "malformed packet" in ours[0] and "UnicodeDecodeError" in ours[0]
    assert list(server.messages)[-len(lines):] == lines  # the HUD sees the same lines


HOSTILE = [  # (message, what its one line says)
    (message("/ganinstrument/psi", float("nan")), "needs a finite number, got (nan)"),
    (message("/ganinstrument/psi", float("inf"), types="d"), "needs a finite number, got (inf)"),
    (message("/td/fader", float("-inf")), "needs a finite number, got (-inf)"),  # router addresses too
    (message("/ganinstrument/psi", "x" * 20000), "needs one number (the psi value), got ('xxxx"),
    (message("/ganinstrument/psi", b"\x00\x01blob"), r"got (b'\x00\x01blob')"),
    (message("/ganinstrument/psi"), "needs one number (the psi value), got no arguments"),
    (message("/ganinstrument/psi", 0.1, 0.2), "needs one number (the psi value), got (0.1"),
    (message("/ganinstrument/psi", [0.1, 0.2]), "needs one number (the psi value), got ([0.1"),
    (message("/ganinstrument/seed.next", "now"), "takes at most one number, got ('now')"),
    (message("/ganinstrument/preset.recall"), "needs a number, got no arguments"),
    (message("/many", *range(200)), "200 arguments (at most 64)"),
    (message("/ganinstrument/psi\x07\x1b[2J", 0.3), "control characters in the address"),
    (message("/" + "a" * 5000, 0.3), "an address of 5001 characters (at most 256)"),
    (message("/ganinstrument/no.such.target", 1.0), "no target or action 'no.such.target'"),
]


@pytest.mark.parametrize(("packet", "says"), HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_values_are_refused_in_one_line_with_the_sender(server, no_traceback, packet, says):
    port = sendto(server.port, packet)
    assert still_playing(server)
    assert server.stats().rejected == 1 and server.stats().received == 1  # only the valid one
    no_traceback(server)
    [line] = server.messages
    assert says in line and f"from 127.0.0.1:{port} refused" in line
    assert line.isprintable() and len(line) < 300


def test_control_characters_are_made_visible(server):
    sendto(server.port, message("/ganinstrument/psi\x07\x1b[2J", 0.3))
    assert still_playing(server)
    assert server.messages[-1].startswith("OSC /ganinstrument/psi\\x07\\x1b[2J from 127.0.0.1:")


def bundle(*dgrams: bytes, timetag: int = 1) -> bytes:
    """An OSC bundle (time tag 1: "immediately") of the given messages."""
    return b"#bundle\x00" + struct.pack(">Q", timetag) + b"".join(
        struct.pack(">i", len(d)) + d for d in dgrams)


def test_a_flood_of_one_problem_is_one_line_then_a_count(server):
    sendto(server.port, bundle(*[message("/ganinstrument/psy", 0.5)] * 500))  # one datagram: none lost
    assert still_playing(server)
    assert server.stats().rejected == 500
    assert sum("psy" in m for m in server.messages) == 1
    assert wait_for(lambda: "OSC /ganinstrument/psy: 499 more refused" in server.messages, 5.0)


def test_many_different_problems_say_a_few_lines_then_a_count(server):
    sendto(server.port, bundle(*[message(f"/ganinstrument/nothing{i}", 0.5) for i in range(100)]))
    assert still_playing(server)
    assert server.stats().rejected == 100
    assert len(server.messages) == BURST
    assert wait_for(lambda: f"OSC: {100 - BURST} more problems in the last 2 s not shown" in server.messages, 5.0)


def test_a_far_future_bundle_plays_at_once(server):
    # A time tag in 2106: python-osc's dispatcher slept until then, stalling the server thread.
    sendto(server.port, bundle(message("/ganinstrument/psi", 1.5), timetag=0xFFFFFFFF_00000000))
    got: list = []
    assert wait_for(lambda: got.extend(server.drain()) or got, 5.0)
    assert got == [ParamUpdate("psi", 1.5, source="osc")]


@pytest.mark.parametrize("sizes", [[-4], [-8, 8], [0], [1000]])
def test_a_bundle_with_unsound_element_sizes_does_not_stall_the_server(server, no_traceback, sizes):
    # python-osc's parser went back and forth forever on a negative size, stalling the thread.
    sendto(server.port, bundle() + b"".join(struct.pack(">i", n) for n in sizes) + b"\0" * 8)
    assert still_playing(server)
    no_traceback(server)
    assert server.stats().malformed == 1
    assert "bundle element of" in server.messages[-1]


def test_deeply_nested_bundles_are_refused(server, no_traceback):
    packet = message("/ganinstrument/psi", 1.0)
    for _ in range(2000):
        packet = bundle(packet)
    sendto(server.port, packet)
    assert still_playing(server)
    no_traceback(server)
    assert server.stats().malformed == 1 and "nested" in server.messages[-1]


_OSC_LIKE = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda a, t, p: raw_message(b"/" + a, b"," + t, p),
              st.binary(max_size=40), st.binary(max_size=12), st.binary(max_size=64)),
    st.builds(lambda t, p: raw_message(b"/ganinstrument/psi", b"," + t, p),
              st.text("ifdsbhtTFNIrm[]c", max_size=8).map(str.encode), st.binary(max_size=64)),
    st.builds(lambda n, body: b"#bundle\x00" + b"\0" * 8 + struct.pack(">i", n) + body,
              st.integers(-2 ** 31, 2 ** 31 - 1), st.binary(max_size=128)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(packets=st.lists(_OSC_LIKE, min_size=1, max_size=8))
def test_fuzzed_datagrams_never_raise_or_stop_the_server(server, no_traceback, packets):
    sendto(server.port, *packets)
    assert still_playing(server)  # every packet before it has been handled
    no_traceback(server)
