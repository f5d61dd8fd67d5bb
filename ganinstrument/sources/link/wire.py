"""Ableton Link's messages, as bytes on the network (format facts from Ableton's published Link
source; this is our own reading and writing of them).

Two protocols, both UDP, every number big-endian:

Discovery (multicast to 224.76.78.75:20808; a response goes back unicast):
    b"_asdp_v\\x01", u8 kind (1 alive, 2 response, 3 bye-bye), u8 ttl (seconds the state
    holds), u16 group (always 0), 8 bytes node id, then payload entries.
Measurement (unicast, to the endpoint a peer announces in `mep4`):
    b"_link_v\\x01", u8 kind (1 ping, 2 pong), then payload entries.

A payload entry is u32 key (four ASCII letters), u32 size, then `size` bytes. The entries used:
    tmln  i64 microseconds per beat, i64 beat origin (micro-beats), i64 time origin (ghost us)
    sess  8 bytes: the session's id (the node id of the peer that founded it)
    stst  u8 playing, i64 beats (micro-beats), i64 timestamp (ghost us)
    mep4  u32 IPv4 address, u16 port: where the peer answers pings
    __ht  i64 host time (us, the pinger's own clock; echoed back)
    __gt  i64 ghost time (us)
    _pgt  i64 the ghost time of the previous pong
Unknown entries are skipped (newer peers add some); a message over 512 bytes is not Link (we
write them under 512, as Link does), nor are times or origins beyond 2**52.

Every message off the network is hostile: `decode_*` raise WireError (one line: what is wrong)
for anything short, oversized, wrongly sized or out of range, and never return half a state.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .timeline import BPM_MAX, BPM_MIN, Timeline

DISCOVERY_MAGIC = b"_asdp_v\x01"
MEASUREMENT_MAGIC = b"_link_v\x01"
MULTICAST_GROUP, DISCOVERY_PORT = "224.76.78.75", 20808
MAX_MESSAGE = 512
ALIVE, RESPONSE, BYEBYE = 1, 2, 3
PING, PONG = 1, 2

TIMELINE, SESSION, START_STOP, MEASURE_V4 = b"tmln", b"sess", b"stst", b"mep4"
HOST_TIME, GHOST_TIME, PREV_GHOST_TIME = b"__ht", b"__gt", b"_pgt"
# A ping carries at most a host time and a previous ghost time (what a responder accepts).
MAX_PING_PAYLOAD = 2 * (8 + 8)
# Times and beat origins beyond this (2**52 us: 142 years) are not a real peer's; refused, so no
# sum of two of them overflows the 64 bits they are written back in.
MAX_TIME = 1 << 52

_HEADER = struct.Struct(">BBH8s")
_ENTRY = struct.Struct(">4sI")
_TIMELINE = struct.Struct(">qqq")
_START_STOP = struct.Struct(">?qq")
_ENDPOINT = struct.Struct(">IH")
_I64 = struct.Struct(">q")


class WireError(ValueError):
    """A datagram that is not a well-formed Link message."""


@dataclass(frozen=True)
class StartStop:
    playing: bool = False
    beats: int = 0  # micro-beats
    timestamp: int = 0  # ghost us


@dataclass(frozen=True)
class PeerState:
    """What a peer announces: who it is, its session and that session's timeline, and where it
    answers pings."""

    node_id: bytes
    session_id: bytes
    timeline: Timeline
    start_stop: StartStop
    endpoint: tuple[str, int]


@dataclass(frozen=True)
class Discovery:
    kind: int
    ttl: int
    node_id: bytes
    state: PeerState | None  # None for a bye-bye


def entries(payload: bytes) -> dict[bytes, bytes]:
    """The payload's entries by key (a key given twice: the last one)."""
    out: dict[bytes, bytes] = {}
    at = 0
    while at < len(payload):
        if len(payload) - at < _ENTRY.size:
            raise WireError(f"a payload entry cut short at byte {at}")
        key, size = _ENTRY.unpack_from(payload, at)
        at += _ENTRY.size
        if size > len(payload) - at:
            raise WireError(f"entry {key!r} says {size} bytes, {len(payload) - at} are left")
        out[key] = payload[at:at + size]
        at += size
    return out


def pack(*items: tuple[bytes, bytes]) -> bytes:
    return b"".join(_ENTRY.pack(key, len(value)) + value for key, value in items)


def _sized(value: bytes, form: struct.Struct, key: bytes) -> tuple:
    if len(value) != form.size:
        raise WireError(f"entry {key.decode('ascii', 'replace')} has {len(value)} bytes, expected {form.size}")
    return form.unpack(value)


def _timeline(value: bytes) -> Timeline:
    micros_per_beat, beat_origin, time_origin = _sized(value, _TIMELINE, TIMELINE)
    if not 60e6 / BPM_MAX - 1 <= micros_per_beat <= 60e6 / BPM_MIN + 1:
        raise WireError(f"a tempo of {micros_per_beat} us per beat is outside {BPM_MIN:g} .. {BPM_MAX:g} BPM")
    if abs(beat_origin) > MAX_TIME or abs(time_origin) > MAX_TIME:
        raise WireError(f"a timeline origin out of range ({beat_origin} beats/1e6, {time_origin} us)")
    return Timeline(micros_per_beat, beat_origin, time_origin)


def _start_stop(value: bytes) -> StartStop:
    if len(value) == _START_STOP.size and value[0] > 1:
        raise WireError(f"a start/stop flag of {value[0]}")
    return StartStop(*_sized(value, _START_STOP, START_STOP))


def _endpoint(value: bytes) -> tuple[str, int]:
    address, port = _sized(value, _ENDPOINT, MEASURE_V4)
    ip = ipaddress.IPv4Address(address)
    if port == 0 or ip.is_multicast or ip.is_unspecified or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise WireError(f"a measurement endpoint {ip}:{port} (not one peer)")
    return str(ip), port


def encode_discovery(kind: int, ttl: int, node_id: bytes, state: PeerState | None = None) -> bytes:
    """An alive, response or bye-bye message (a bye-bye has no state)."""
    try:
        body = b""
        if state is not None:
            tl, ss = state.timeline, state.start_stop
            body = pack((TIMELINE, _TIMELINE.pack(tl.micros_per_beat, tl.beat_origin, tl.time_origin)),
                        (SESSION, state.session_id),
                        (START_STOP, _START_STOP.pack(ss.playing, ss.beats, ss.timestamp)),
                        (MEASURE_V4, _ENDPOINT.pack(int(ipaddress.IPv4Address(state.endpoint[0])),
                                                    state.endpoint[1])))
        message = DISCOVERY_MAGIC + _HEADER.pack(kind, ttl, 0, node_id) + body
    except (struct.error, ValueError) as exc:  # (a value that does not fit its field)
        raise WireError(f"cannot write this state ({exc})") from None
    if len(message) >= MAX_MESSAGE:
        raise WireError(f"a message of {len(message)} bytes (Link's limit is {MAX_MESSAGE - 1})")
    return message


def decode_discovery(data: bytes) -> Discovery:
    if len(data) > MAX_MESSAGE:
        raise WireError(f"{len(data)} bytes: longer than any Link message")
    if not data.startswith(DISCOVERY_MAGIC) or len(data) < len(DISCOVERY_MAGIC) + _HEADER.size:
        raise WireError("not a Link discovery message (header)")
    kind, ttl, group, node_id = _HEADER.unpack_from(data, len(DISCOVERY_MAGIC))
    if group != 0:
        raise WireError(f"session group {group} (Link uses 0)")
    if kind == BYEBYE:
        return Discovery(kind, ttl, node_id, None)
    if kind not in (ALIVE, RESPONSE):
        raise WireError(f"discovery message kind {kind}")
    found = entries(data[len(DISCOVERY_MAGIC) + _HEADER.size:])
    missing = [k.decode() for k in (TIMELINE, SESSION, MEASURE_V4) if k not in found]
    if missing:
        raise WireError(f"a peer state without {', '.join(missing)}")
    session = found[SESSION]
    if len(session) != 8:
        raise WireError(f"a session id of {len(session)} bytes")
    start_stop = _start_stop(found[START_STOP]) if START_STOP in found else StartStop()
    state = PeerState(node_id, session, _timeline(found[TIMELINE]), start_stop, _endpoint(found[MEASURE_V4]))
    return Discovery(kind, ttl, node_id, state)


def _i64(value: int) -> bytes:
    try:
        return _I64.pack(value)
    except struct.error:
        raise WireError(f"a time of {value} us does not fit 64 bits") from None


def encode_ping(host_us: int, prev_ghost_us: int | None = None) -> bytes:
    items = [(HOST_TIME, _i64(host_us))]
    if prev_ghost_us is not None:
        items.append((PREV_GHOST_TIME, _i64(prev_ghost_us)))
    return MEASUREMENT_MAGIC + bytes([PING]) + pack(*items)


def encode_pong(session_id: bytes, ghost_us: int, ping_payload: bytes) -> bytes:
    """The answer to a ping: our session and ghost time, then the ping's own entries verbatim."""
    return MEASUREMENT_MAGIC + bytes([PONG]) + pack((SESSION, session_id), (GHOST_TIME, _i64(ghost_us))) \
        + ping_payload


def decode_measurement(data: bytes) -> tuple[int, bytes]:
    """(kind, payload) of a ping or pong."""
    if len(data) > MAX_MESSAGE:
        raise WireError(f"{len(data)} bytes: longer than any Link message")
    if not data.startswith(MEASUREMENT_MAGIC) or len(data) < len(MEASUREMENT_MAGIC) + 1:
        raise WireError("not a Link measurement message (header)")
    kind = data[len(MEASUREMENT_MAGIC)]
    if kind not in (PING, PONG):
        raise WireError(f"measurement message kind {kind}")
    return kind, data[len(MEASUREMENT_MAGIC) + 1:]


def times(payload: bytes) -> dict[bytes, int]:
    """A ping's or pong's times (__ht, __gt, _pgt) that are there (a pong's session: `session_of`)."""
    found = entries(payload)
    out = {key: _sized(found[key], _I64, key)[0] for key in (HOST_TIME, GHOST_TIME, PREV_GHOST_TIME) if key in found}
    if any(abs(v) > MAX_TIME for v in out.values()):
        raise WireError("a time out of range")
    return out


def session_of(payload: bytes) -> bytes | None:
    session = entries(payload).get(SESSION)
    if session is not None and len(session) != 8:
        raise WireError(f"a session id of {len(session)} bytes")
    return session
