"""Ableton Link's session protocol, without sockets: what a peer does when it hears a peer,
a ping, a pong, or time passes (protocol facts from Ableton's published Link source; the code
is our own).

- Every BROADCAST_S (and soon after any change of ours) each network interface ("gateway")
  multicasts our state: node id, session id, the session's timeline and start/stop state, and
  where we answer pings. A peer's state holds for the TTL it sends (5 s); a bye-bye ends it.
- Hearing a peer of *our* session: its timeline replaces ours when its beat origin is greater
  (that is how a tempo change spreads). Hearing a peer of *another* session: we measure that
  session's ghost clock (ping/pong with one of its peers, the founder when it can: PING_POINTS
  samples, each half a round trip, their median) and join it when its ghost clock is ahead of
  ours by more than SAME_SESSION_S (it is older), or within that and its id is smaller. Joining
  takes its timeline and ghost transform; our session is re-measured every REMEASURE_S.
- When the last peer of our session goes, we start afresh: a new node id and session, our own
  ghost clock, the tempo and beat where they were.
- `commit` (the instrument's thread): a new tempo, or a new beat at a time (alone in the
  session), written as a timeline peers take over theirs.

All times are integer microseconds on the host clock given to each call (`now_us`). Thread-safe:
every entry point holds one lock; `state()` is a snapshot for the engine, read without it.
Malformed datagrams raise nothing: they are counted, and the first from each address is logged.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .timeline import GhostXForm, Timeline, micros_per_beat, moved
from .wire import (
    ALIVE,
    BYEBYE,
    DISCOVERY_PORT,
    GHOST_TIME,
    HOST_TIME,
    MAX_PING_PAYLOAD,
    MULTICAST_GROUP,
    PING,
    PREV_GHOST_TIME,
    RESPONSE,
    PeerState,
    StartStop,
    WireError,
    decode_discovery,
    decode_measurement,
    encode_discovery,
    encode_ping,
    encode_pong,
    session_of,
    times,
)

log = logging.getLogger(__name__)

TTL_S = 5
BROADCAST_S = 0.25  # TTL_S / 20, as Link
MIN_BROADCAST_GAP_S = 0.05
PING_TIMEOUT_S, PING_TRIES, PING_POINTS = 0.05, 5, 100
REMEASURE_S = 30.0
SAME_SESSION_S = 0.5
PRUNE_GRACE_S = 1.0
MAX_PEERS, MAX_SESSIONS, MAX_MEASUREMENTS = 256, 32, 16  # (a flood of fake peers stays bounded)
GROUP = (MULTICAST_GROUP, DISCOVERY_PORT)

Address = tuple[str, int]


class Transport(Protocol):
    """The sockets (node.py; a recording fake in tests)."""

    def gateways(self) -> Sequence[str]: ...  # our interface addresses
    def endpoint(self, gateway: str) -> Address: ...  # where we answer pings on that interface
    def send(self, gateway: str, channel: str, data: bytes, to: Address) -> None: ...  # "discovery" | "measure"
    def wake(self) -> None: ...  # the network thread should look at the timers now


@dataclass(frozen=True)
class LinkState:
    """The session as the engine reads it: peers (in our session), timeline, ghost transform."""

    peers: int
    timeline: Timeline
    xform: GhostXForm
    session_id: bytes
    node_id: bytes

    @property
    def bpm(self) -> float:
        return self.timeline.bpm

    def beat_at(self, host_s: float) -> float:
        """The session's beat at host time `host_s` (seconds of the same clock as `now_us`)."""
        return self.timeline.beats_at(self.xform.ghost(host_s * 1e6))


@dataclass
class _Peer:
    state: PeerState
    gateway: str
    expires_us: int


@dataclass
class _Session:
    timeline: Timeline
    xform: GhostXForm | None = None


@dataclass
class _Measurement:
    session_id: bytes
    gateway: str
    endpoint: Address
    deadline_us: int
    tries: int = 0
    points: list[float] = field(default_factory=list)


def _us(seconds: float) -> int:
    return round(seconds * 1e6)


class LinkProtocol:
    def __init__(self, transport: Transport, now_us: int, bpm: float = 120.0,
                 random: Callable[[int], bytes] = os.urandom):
        self.transport = transport
        self._random = random
        self._lock = threading.RLock()
        self.malformed = 0
        self._said: set[str] = set()
        self.joins = 0  # sessions joined (for tests)
        self._peers: dict[tuple[bytes, str], _Peer] = {}
        self._others: dict[bytes, _Session] = {}
        self._measuring: dict[bytes, _Measurement] = {}  # by the measured peer's node id
        self.peer_count = 0
        self.timeline = Timeline(micros_per_beat(bpm), 0, 0)
        self.xform = GhostXForm(-now_us)
        self._start_afresh(now_us)

    # -- the engine's side -----------------------------------------------------------------
    def state(self) -> LinkState:
        return self._state

    def commit(self, host_us: float, bpm: float, beats: float | None, now_us: int) -> None:
        """Tempo `bpm` from host time `host_us` on, the session's beat there kept (beats None)
        or set to `beats` (only alone: with peers the session's phase is everyone's)."""
        with self._lock:
            at = self.xform.ghost(host_us)
            keep = self.timeline.beats_at(at)
            self.timeline = moved(self.timeline, bpm, at, keep if beats is None or self.peer_count else beats,
                                  self.xform.ghost(now_us))
            self._changed(now_us)
        self.transport.wake()

    # -- the network's side ----------------------------------------------------------------
    def on_discovery(self, gateway: str, sender: Address, data: bytes, now_us: int) -> None:
        try:
            message = decode_discovery(data)
        except WireError as exc:
            self._malformed(sender, exc)
            return
        with self._lock:
            if message.node_id == self.node_id:
                return
            if message.kind == BYEBYE:  # (gone from this network; it may be on another)
                if self._peers.pop((message.node_id, gateway), None) is not None:
                    self._recount(now_us)
                return
            if message.kind == ALIVE:  # (an alive is answered, so the newcomer learns of us at once)
                self.transport.send(gateway, "discovery", self._message(RESPONSE, gateway), sender)
            self._saw_peer(message.state, message.ttl, gateway, now_us)

    def on_measurement(self, gateway: str, sender: Address, data: bytes, now_us: int) -> None:
        try:
            kind, payload = decode_measurement(data)
            if kind == PING and len(payload) > MAX_PING_PAYLOAD:
                raise WireError(f"a ping of {len(payload)} payload bytes")
            stamps = times(payload)
            session = session_of(payload) if kind != PING else None
        except WireError as exc:
            self._malformed(sender, exc)
            return
        with self._lock:
            if kind == PING:
                self.transport.send(gateway, "measure", encode_pong(self.session_id, round(self.xform.ghost(now_us)),
                                                                   payload), sender)
                return
            node, m = next(((n, m) for n, m in self._measuring.items()
                            if m.endpoint == sender and m.gateway == gateway), (None, None))
            if m is None:
                return
            if session != m.session_id:
                self._failed(node, now_us)
                return
            ghost, host, prev_ghost = stamps.get(GHOST_TIME, 0), stamps.get(HOST_TIME, 0), stamps.get(PREV_GHOST_TIME, 0)
            self.transport.send(gateway, "measure", encode_ping(now_us, ghost), sender)
            if ghost and host:
                m.points.append(ghost - (now_us + host) / 2)  # their ghost at the middle of our round trip
                if prev_ghost:
                    m.points.append((ghost + prev_ghost) / 2 - host)  # our host time mid their round trip
            if len(m.points) > PING_POINTS:
                self._measured(node, GhostXForm(round(statistics.median(m.points))), now_us)
            else:
                m.deadline_us = now_us + _us(PING_TIMEOUT_S)

    def tick(self, now_us: int) -> int:
        """Timers: re-pings, expired peers, re-measurement, broadcasts. Returns when to call again."""
        with self._lock:
            for node, m in list(self._measuring.items()):
                if now_us >= m.deadline_us:
                    if m.tries < PING_TRIES:
                        m.tries += 1
                        m.deadline_us = now_us + _us(PING_TIMEOUT_S)
                        self.transport.send(m.gateway, "measure", encode_ping(now_us), m.endpoint)
                    else:
                        self._failed(node, now_us)
            gone = [k for k, p in self._peers.items() if now_us >= p.expires_us + _us(PRUNE_GRACE_S)]
            if gone:
                for key in gone:
                    del self._peers[key]
                heard = {p.state.session_id for p in self._peers.values()}  # (a session nobody is in
                self._others = {sid: o for sid, o in self._others.items() if sid in heard}  # is gone)
                self._recount(now_us)
            if self._remeasure_us is not None and now_us >= self._remeasure_us:
                self._remeasure_us = now_us + _us(REMEASURE_S)
                self._measure(self.session_id, now_us)
            if now_us >= self._broadcast_us:
                for gateway in self.transport.gateways():
                    self.transport.send(gateway, "discovery", self._message(ALIVE, gateway), GROUP)
                self._last_broadcast_us = now_us
                self._broadcast_us = now_us + _us(BROADCAST_S)
            deadlines = [self._broadcast_us] + [m.deadline_us for m in self._measuring.values()]
            deadlines += [p.expires_us + _us(PRUNE_GRACE_S) for p in self._peers.values()]
            if self._remeasure_us is not None:
                deadlines.append(self._remeasure_us)
            return min(deadlines)

    def goodbye(self) -> None:
        with self._lock:
            for gateway in self.transport.gateways():
                self.transport.send(gateway, "discovery", encode_discovery(BYEBYE, 0, self.node_id), GROUP)

    # -- inside ----------------------------------------------------------------------------
    def _message(self, kind: int, gateway: str) -> bytes:
        state = PeerState(self.node_id, self.session_id, self.timeline, self.start_stop,
                          self.transport.endpoint(gateway))
        return encode_discovery(kind, TTL_S, self.node_id, state)

    def _saw_peer(self, peer: PeerState, ttl: int, gateway: str, now_us: int) -> None:
        key = (peer.node_id, gateway)
        if key not in self._peers and len(self._peers) >= MAX_PEERS:
            return
        self._peers[key] = _Peer(peer, gateway, now_us + ttl * 1_000_000)
        if peer.session_id == self.session_id:
            changed = False
            if peer.timeline.beat_origin > self.timeline.beat_origin:
                self.timeline, changed = peer.timeline, True
            if peer.start_stop.timestamp > self.start_stop.timestamp:
                self.start_stop, changed = peer.start_stop, True
            if changed:
                self._changed(now_us)
        else:
            other = self._others.get(peer.session_id)
            if other is None and len(self._others) < MAX_SESSIONS:
                self._others[peer.session_id] = _Session(peer.timeline)
                self._measure(peer.session_id, now_us)
            elif other is not None:
                if peer.timeline.beat_origin > other.timeline.beat_origin:
                    other.timeline = peer.timeline
                if other.xform is None and all(m.session_id != peer.session_id for m in self._measuring.values()):
                    self._measure(peer.session_id, now_us)  # (heard while every measurement slot was busy)
        self._recount(now_us)

    def _measure(self, session_id: bytes, now_us: int) -> None:
        members = [p for p in self._peers.values() if p.state.session_id == session_id]
        if not members or len(self._measuring) >= MAX_MEASUREMENTS:
            return
        peer = next((p for p in members if p.state.node_id == session_id), members[0])  # (the founder first)
        self._measuring[peer.state.node_id] = _Measurement(session_id, peer.gateway, peer.state.endpoint,
                                                          now_us + _us(PING_TIMEOUT_S))
        self.transport.send(peer.gateway, "measure", encode_ping(now_us), peer.state.endpoint)

    def _measured(self, node: bytes, xform: GhostXForm, now_us: int) -> None:
        m = self._measuring.pop(node)
        if m.session_id == self.session_id:
            self.xform = xform
            self._changed(now_us)
            return
        other = self._others.get(m.session_id)
        if other is None:
            return
        other.xform = xform
        ahead = xform.ghost(now_us) - self.xform.ghost(now_us)
        if ahead > _us(SAME_SESSION_S) or (abs(ahead) < _us(SAME_SESSION_S) and m.session_id < self.session_id):
            self._others[self.session_id] = _Session(self.timeline, self.xform)
            del self._others[m.session_id]
            self.session_id, self.timeline, self.xform = m.session_id, other.timeline, xform
            self.start_stop = StartStop()
            self._remeasure_us = now_us + _us(REMEASURE_S)
            self.joins += 1
            self._recount(now_us)
            self._changed(now_us)

    def _failed(self, node: bytes, now_us: int) -> None:
        m = self._measuring.pop(node)
        if m.session_id == self.session_id:
            self._remeasure_us = now_us + _us(REMEASURE_S)
        elif self._others.pop(m.session_id, None) is not None:  # (heard again, it is measured again)
            self._peers = {k: p for k, p in self._peers.items() if p.state.session_id != m.session_id}

    def _recount(self, now_us: int) -> None:
        count = len({node for (node, _), p in self._peers.items() if p.state.session_id == self.session_id})
        was, self.peer_count = self.peer_count, count
        if count != was:
            log.info("Ableton Link: %d other peer%s in the session (%.2f BPM)", count, "s" * (count != 1),
                     self.timeline.bpm)
        if was and not count:
            self._start_afresh(now_us)
        else:
            self._publish()

    def _start_afresh(self, now_us: int) -> None:
        """Alone (at the start, or the last peer of our session went): a new node and session on
        our own ghost clock, the tempo and beat where they were."""
        beats = self.timeline.beats_at(self.xform.ghost(now_us))
        self.node_id = self.session_id = self._random(8)
        self.xform = GhostXForm(-now_us)
        self.timeline = Timeline(self.timeline.micros_per_beat, round(beats * 1e6), 0)
        self.start_stop = StartStop()
        self._peers.clear()
        self._others.clear()
        self._measuring.clear()
        self._remeasure_us: int | None = None
        self._last_broadcast_us = -(1 << 62)
        self._changed(now_us)

    def _changed(self, now_us: int) -> None:
        """Our state changed: peers hear it soon (not sooner than MIN_BROADCAST_GAP_S after the last)."""
        self._broadcast_us = max(now_us, self._last_broadcast_us + _us(MIN_BROADCAST_GAP_S))
        self._publish()

    def _publish(self) -> None:
        self._state = LinkState(self.peer_count, self.timeline, self.xform, self.session_id, self.node_id)

    def _malformed(self, sender: Address, exc: WireError) -> None:
        self.malformed += 1
        if sender[0] not in self._said and len(self._said) < 64:
            self._said.add(sender[0])
            log.warning("Ableton Link: ignored a malformed message from %s:%d (%s); more from there are counted, "
                        "not shown", sender[0], sender[1], exc)
