"""Ableton Link's messages (sources/link/wire.py) against bytes Ableton's own Link sent.

The three messages below were captured from LinkPython-extern 1.3.0 (Ableton's Link 3 C++ code)
in a private network namespace: its alive message at 128 BPM, its pong to our ping (host time
123456789), and its bye-bye. Decoding them gives what that peer said; encoding what we decoded
gives the same bytes back, so ours are the bytes a Link peer reads.
"""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganinstrument.sources.link.timeline import Timeline
from ganinstrument.sources.link.wire import (
    ALIVE,
    BYEBYE,
    GHOST_TIME,
    HOST_TIME,
    PONG,
    StartStop,
    WireError,
    decode_discovery,
    decode_measurement,
    encode_discovery,
    encode_ping,
    encode_pong,
    pack,
    session_of,
    times,
)

REAL_ALIVE = bytes.fromhex(
    "5f617364705f7601010500006b6e493c7666314e746d6c6e00000018000000000007270e0000000000104bf100000000"
    "0000000073657373000000086b6e493c7666314e737473740000001100000000000000000000000000000000006d6570"
    "34000000067f000001a8e2")
REAL_PONG = bytes.fromhex(
    "5f6c696e6b5f76010273657373000000086b6e493c7666314e5f5f67740000000800000000000004135f5f6874000000"
    "0800000000075bcd15")
REAL_BYE = bytes.fromhex("5f617364705f7601030000006b6e493c7666314e")
NODE = b"knI<vf1N"


def test_an_alive_message_from_ableton_link_reads_and_writes_back_byte_for_byte():
    message = decode_discovery(REAL_ALIVE)
    assert (message.kind, message.ttl, message.node_id) == (ALIVE, 5, NODE)
    state = message.state
    assert state.session_id == NODE  # (a peer alone founds its own session)
    assert state.timeline == Timeline(468750, 1068017, 0)
    assert state.timeline.bpm == pytest.approx(128.0)
    assert state.start_stop == StartStop(False, 0, 0)
    assert state.endpoint == ("127.0.0.1", 43234)
    assert encode_discovery(ALIVE, 5, NODE, state) == REAL_ALIVE


def test_a_pong_and_a_byebye_from_ableton_link():
    kind, payload = decode_measurement(REAL_PONG)
    assert kind == PONG and session_of(payload) == NODE
    assert times(payload) == {GHOST_TIME: 0x413, HOST_TIME: 123456789}  # (our host time, echoed)
    ping = encode_ping(123456789)
    assert encode_pong(NODE, 0x413, decode_measurement(ping)[1]) == REAL_PONG
    bye = decode_discovery(REAL_BYE)
    assert (bye.kind, bye.node_id, bye.state) == (BYEBYE, NODE, None)
    assert encode_discovery(BYEBYE, 0, NODE) == REAL_BYE


def test_every_cut_of_a_real_message_is_refused_in_one_line():
    for end in range(len(REAL_ALIVE)):
        with pytest.raises(WireError) as info:
            decode_discovery(REAL_ALIVE[:end])
        assert "\n" not in str(info.value)


def _with_entry(message: bytes, key: bytes, value: bytes) -> bytes:
    return message + pack((key, value))


def _replace_timeline(mpb: int) -> bytes:
    at = REAL_ALIVE.index(b"tmln") + 8
    return REAL_ALIVE[:at] + struct.pack(">q", mpb) + REAL_ALIVE[at + 8:]


@pytest.mark.parametrize("bad, why", [
    (b"_asdp_v\x02" + REAL_ALIVE[8:], "header"),  # another protocol version
    (REAL_ALIVE[:8] + b"\x09" + REAL_ALIVE[9:], "kind 9"),
    (REAL_ALIVE[:10] + b"\x00\x01" + REAL_ALIVE[12:], "group 1"),
    (REAL_ALIVE + b"\x00" * (513 - len(REAL_ALIVE)), "longer than any"),
    (REAL_ALIVE[:-10] + b"\x00\x00\xff\xff" + REAL_ALIVE[-6:], "says 65535 bytes"),  # mep4's size lies
    (_replace_timeline(0), "outside 20 .. 999 BPM"),
    (_replace_timeline(-500000), "outside"),
    (_replace_timeline(60_000_000), "outside"),  # 1 BPM
    (_with_entry(REAL_ALIVE, b"sess", b"short"), "session id of 5 bytes"),
    (_with_entry(REAL_ALIVE, b"tmln", b"\x00" * 23), "has 23 bytes"),
    (_with_entry(REAL_ALIVE, b"stst", b"\x07" + b"\x00" * 16), "start/stop flag of 7"),
    (_with_entry(REAL_ALIVE, b"mep4", b"\x7f\x00\x00\x01\x00\x00"), "127.0.0.1:0"),
    (_with_entry(REAL_ALIVE, b"mep4", b"\xff\xff\xff\xff\x00\x09"), "255.255.255.255:9"),  # (pings to all)
    (_with_entry(REAL_ALIVE, b"mep4", b"\xe0\x4c\x4e\x4b\x51\x48"), "224.76.78.75"),  # (to the group)
    (_with_entry(REAL_ALIVE, b"tmln", struct.pack(">qqq", 500000, (1 << 63) - 1, 0)), "origin out of range"),
    (_with_entry(REAL_ALIVE, b"tmln", struct.pack(">qqq", 500000, 0, -(1 << 63))), "origin out of range"),
    (REAL_ALIVE[:REAL_ALIVE.index(b"mep4")], "without mep4"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_hostile_discovery_messages_are_refused_saying_why(bad, why):
    with pytest.raises(WireError, match=why):
        decode_discovery(bad)


def test_unknown_entries_are_skipped_and_a_repeated_one_counts_last():
    """Newer peers add entries (aep4, ...): they are skipped; the state is the same."""
    extra = _with_entry(REAL_ALIVE, b"aep4", b"\x7f\x00\x00\x01\x12\x34")
    assert decode_discovery(extra).state == decode_discovery(REAL_ALIVE).state
    again = _with_entry(REAL_ALIVE, b"tmln", struct.pack(">qqq", 500000, 7, 9))
    assert decode_discovery(again).state.timeline == Timeline(500000, 7, 9)


@pytest.mark.parametrize("bad, why", [
    (b"_link_v\x01", "header"),
    (b"_link_v\x01\x05", "kind 5"),
    (b"_link_v\x02\x01", "header"),
])
def test_hostile_measurement_messages_are_refused(bad, why):
    with pytest.raises(WireError, match=why):
        decode_measurement(bad)
    kind, payload = decode_measurement(REAL_PONG)
    with pytest.raises(WireError):
        times(payload + b"__h")  # (an entry header cut short)


def test_times_that_would_overflow_are_refused_both_ways():
    """A pong's ghost time near 2**63 would make a ghost transform nothing can write back."""
    payload = pack((b"sess", NODE), (GHOST_TIME, struct.pack(">q", (1 << 63) - 1)), (HOST_TIME, bytes(8)))
    with pytest.raises(WireError, match="out of range"):
        times(payload)
    with pytest.raises(WireError, match="64 bits"):
        encode_pong(NODE, 1 << 63, b"")
    with pytest.raises(WireError, match="64 bits"):
        encode_ping(-(1 << 64))
    state = decode_discovery(REAL_ALIVE).state
    with pytest.raises(WireError, match="cannot write"):
        encode_discovery(ALIVE, 5, NODE, replace(state, timeline=Timeline(500000, 1 << 64, 0)))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.integers(0, len(REAL_ALIVE) - 1), st.binary(min_size=1, max_size=8))
def test_no_bytes_break_the_reader(noise, at, splice):
    """Random datagrams, and the real message with bytes spliced in anywhere: a state or
    WireError, nothing else."""
    for data in (noise, REAL_ALIVE[:at] + splice + REAL_ALIVE[at + len(splice):], b"_asdp_v\x01" + noise,
                 b"_link_v\x01" + noise):
        for decode in (decode_discovery, decode_measurement):
            try:
                decode(data)
            except WireError:
                pass
        try:
            times(noise)
            session_of(noise)
        except WireError:
            pass
