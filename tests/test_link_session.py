"""Ableton Link's session protocol (sources/link/session.py) between our own peers on a fake
network: every datagram is bytes through the real encoders and decoders, delivered after a
one-way latency, on a world clock the test moves. Each peer's host clock is the world's plus its
own offset (seconds to hours apart, as two computers'), so the ghost clock must be measured.

What Ableton's Link peers do with ours is tested in test_link_netns.py; here, the decisions:
who joins whom, how a tempo spreads, what happens when a peer leaves or floods.
"""

from __future__ import annotations

import itertools
import logging
import struct

import pytest

from ganinstrument.sources.link import session as link_session
from ganinstrument.sources.link.session import GROUP, LinkProtocol
from ganinstrument.sources.link.timeline import Timeline
from ganinstrument.sources.link.wire import ALIVE, PeerState, StartStop, encode_discovery, encode_pong, pack

DISCOVERY, MEASURE = 20808, 40000


class Net:
    """Peers on one fake LAN; `run(s)` moves the world clock in 0.5 ms steps."""

    def __init__(self, latency_us: int = 300):
        self.now_us = 0
        self.latency_us = latency_us
        self.peers: dict[str, Peer] = {}
        self.queue: list[tuple[int, int, str, tuple[str, int], bytes, tuple[str, int]]] = []
        self.order = itertools.count()
        self.cut: set[str] = set()  # peers whose datagrams go nowhere (a pulled cable)

    def add(self, name: str, offset_us: int, bpm: float) -> Peer:
        peer = Peer(self, f"10.0.0.{len(self.peers) + 1}", offset_us)
        peer.protocol = LinkProtocol(peer, peer.host_us(), bpm, random=peer.random)
        self.peers[peer.address] = peer
        return peer

    def post(self, sender: str, port: int, data: bytes, to: tuple[str, int]) -> None:
        if sender in self.cut:
            return
        targets = [a for a in self.peers if a != sender] if to == GROUP else [to[0]]
        for address in targets:
            self.queue.append((self.now_us + self.latency_us, next(self.order), address, to, data, (sender, port)))

    def run(self, seconds: float, step_us: int = 500) -> None:
        end = self.now_us + round(seconds * 1e6)
        while self.now_us < end:
            self.now_us += step_us
            due = sorted(m for m in self.queue if m[0] <= self.now_us)
            self.queue = [m for m in self.queue if m[0] > self.now_us]
            for _, _, address, to, data, sender in due:
                peer = self.peers.get(address)
                if peer is None or address in self.cut:
                    continue
                if to[1] == MEASURE:
                    peer.protocol.on_measurement(address, sender, data, peer.host_us())
                else:
                    peer.protocol.on_discovery(address, sender, data, peer.host_us())
            for peer in list(self.peers.values()):
                peer.protocol.tick(peer.host_us())


class Peer:
    def __init__(self, net: Net, address: str, offset_us: int):
        self.net, self.address, self.offset_us = net, address, offset_us
        self.protocol: LinkProtocol
        self._ids = (bytes([int(address.rsplit(".", 1)[1]), n, 0, 0, 0, 0, 0, 0]) for n in itertools.count())

    def random(self, n: int) -> bytes:
        return next(self._ids)

    def host_us(self, world_us: int | None = None) -> int:
        return (self.net.now_us if world_us is None else world_us) + self.offset_us

    def beat_at_world(self, world_us: int) -> float:
        return self.protocol.state().beat_at(self.host_us(world_us) / 1e6)

    # Transport
    def gateways(self):
        return [self.address]

    def endpoint(self, gateway):
        return (self.address, MEASURE)

    def send(self, gateway, channel, data, to):
        self.net.post(self.address, MEASURE if channel == "measure" else DISCOVERY, data, to)

    def wake(self):
        pass


def _phase_gap_ms(a: Peer, b: Peer, world_us: int, quantum: float = 4.0) -> float:
    gap = (a.beat_at_world(world_us) - b.beat_at_world(world_us) + quantum / 2) % quantum - quantum / 2
    return gap * 60e3 / a.protocol.state().bpm


def test_a_newcomer_joins_the_older_session_and_shares_its_tempo_and_phase():
    net = Net()
    a = net.add("a", offset_us=5_000_000, bpm=120.0)
    net.run(3.0)
    b = net.add("b", offset_us=7_200_000_000, bpm=90.0)  # (another computer: hours apart)
    net.run(1.0)
    sa, sb = a.protocol.state(), b.protocol.state()
    assert sa.session_id == sb.session_id == sa.node_id  # (a's: it is older)
    assert (sa.peers, sb.peers) == (1, 1)
    assert sb.bpm == 120.0 and b.protocol.joins == 1 and a.protocol.joins == 0
    for later in (0, 500_000, 10_000_000):
        assert abs(_phase_gap_ms(a, b, net.now_us + later)) < 0.01  # (symmetric latency: exact)


def test_sessions_of_the_same_age_settle_on_the_smaller_id():
    net = Net()
    a = net.add("a", offset_us=0, bpm=100.0)
    b = net.add("b", offset_us=123_456, bpm=140.0)
    net.run(1.5)
    sa, sb = a.protocol.state(), b.protocol.state()
    assert sa.session_id == sb.session_id == min(sa.node_id, sb.node_id)
    assert sa.bpm == sb.bpm == 100.0  # (a's id is the smaller here)


def test_a_tempo_change_spreads_and_keeps_the_beat_where_it_was():
    net = Net()
    a = net.add("a", offset_us=0, bpm=120.0)
    net.run(2.0)
    b = net.add("b", offset_us=-3_000_000, bpm=120.0)
    net.run(1.0)
    at = net.now_us
    before = a.beat_at_world(at)
    b.protocol.commit(b.host_us(at), 137.0, beats=123.0, now_us=b.host_us())  # (a phase with peers: ignored)
    net.run(0.1)
    assert a.protocol.state().bpm == pytest.approx(137.0, abs=1e-3)
    assert a.beat_at_world(at) == pytest.approx(before, abs=1e-5)  # the beat at the change stays
    assert abs(_phase_gap_ms(a, b, net.now_us + 2_000_000)) < 0.01
    net.run(1.0)
    assert a.protocol.state().peers == 1  # (still one session)


def test_alone_a_commit_sets_the_phase_too():
    net = Net()
    a = net.add("a", offset_us=0, bpm=120.0)
    net.run(0.5)
    at = a.host_us()
    a.protocol.commit(at, 96.0, beats=10.25, now_us=at)
    state = a.protocol.state()
    assert state.bpm == pytest.approx(96.0) and state.beat_at(at / 1e6) == pytest.approx(10.25, abs=1e-6)
    assert state.beat_at(at / 1e6 + 0.625) == pytest.approx(11.25, abs=1e-5)  # (a beat is 0.625 s)


def test_when_the_last_peer_says_goodbye_a_peer_starts_afresh_where_it_was():
    net = Net()
    a = net.add("a", offset_us=0, bpm=120.0)
    net.run(1.0)
    b = net.add("b", offset_us=50_000, bpm=80.0)
    net.run(1.0)
    old = b.protocol.state()
    assert old.session_id == a.protocol.state().node_id
    a.protocol.goodbye()
    del net.peers[a.address]
    net.run(0.01)
    new = b.protocol.state()
    assert new.peers == 0 and new.session_id == new.node_id != old.node_id
    assert new.session_id != old.session_id and new.bpm == old.bpm == 120.0
    world = net.now_us + 3_000_000
    assert new.beat_at(b.host_us(world) / 1e6) == pytest.approx(old.beat_at(b.host_us(world) / 1e6), abs=1e-5)


def test_a_peer_that_goes_silent_is_dropped_after_its_ttl():
    net = Net()
    a = net.add("a", offset_us=0, bpm=120.0)
    b = net.add("b", offset_us=0, bpm=120.0)
    net.run(1.0)
    assert b.protocol.state().peers == 1
    net.cut.add(a.address)  # (its cable pulled: no bye-bye)
    net.run(link_session.TTL_S + link_session.PRUNE_GRACE_S - 0.5)
    assert b.protocol.state().peers == 1
    net.run(1.0)
    assert b.protocol.state().peers == 0


def test_malformed_datagrams_are_counted_and_said_once_per_address(caplog):
    net = Net()
    a = net.add("a", offset_us=0, bpm=120.0)
    before = a.protocol.state()
    with caplog.at_level(logging.WARNING, logger="ganinstrument.sources.link.session"):
        for n in range(20):
            a.protocol.on_discovery(a.address, ("10.9.9.9", 20808), b"_asdp_v\x01\x01" + bytes(n), a.host_us())
            a.protocol.on_measurement(a.address, ("10.9.9.9", 5000), b"_link_v\x01\x07", a.host_us())
    lines = [r.getMessage() for r in caplog.records]
    assert a.protocol.malformed == 40 and len(lines) == 1
    assert "10.9.9.9:20808" in lines[0] and "\n" not in lines[0]
    assert a.protocol.state() == before


def test_a_flood_of_fake_sessions_stays_bounded_and_a_real_one_is_still_joined():
    """Thousands of alives from fake sessions (each one asks to be measured; nobody answers the
    pings): the tables stay bounded, and an older real session that comes during the flood is
    still measured and joined once the measurement slots free up."""
    net = Net()
    a = net.add("a", offset_us=0, bpm=120.0)
    p = a.protocol
    for n in range(2000):
        node = (n + 1000).to_bytes(8, "big")
        state = PeerState(node, node, Timeline(500000, n, 0), StartStop(), ("10.7.0.1", 9))
        p.on_discovery(a.address, ("10.7.0.1", 20808), encode_discovery(ALIVE, 255, node, state), a.host_us())
    assert len(p._peers) <= link_session.MAX_PEERS and len(p._others) <= link_session.MAX_SESSIONS
    assert len(p._measuring) == link_session.MAX_MEASUREMENTS
    b = net.add("b", offset_us=0, bpm=99.0)
    b.protocol.xform = type(b.protocol.xform)(b.protocol.xform.intercept + 10_000_000)  # (older by 10 s)
    b.protocol._publish()
    net.run(2.0)
    assert p.state().session_id == b.protocol.state().session_id and p.state().bpm == pytest.approx(99.0)


def test_pongs_from_strangers_and_pongs_with_absurd_times_do_not_count():
    net = Net()
    a = net.add("a", offset_us=0, bpm=120.0)
    b = net.add("b", offset_us=0, bpm=120.0)
    b.protocol.xform = type(b.protocol.xform)(b.protocol.xform.intercept + 10_000_000)
    b.protocol._publish()
    net.run(0.001)  # (a hears b's alive and starts measuring b's session: no pong yet)
    p, session = a.protocol, b.protocol.session_id
    (m,) = p._measuring.values()
    good = pack((b"__gt", struct.pack(">q", 5)), (b"__ht", struct.pack(">q", a.host_us())))
    p.on_measurement(a.address, ("10.8.0.1", MEASURE), encode_pong(session, 5, good[16:]), a.host_us())
    assert m.points == []  # (the right session and times, from an address nobody pinged)
    absurd = pack((b"__ht", struct.pack(">q", (1 << 63) - 1)))
    p.on_measurement(a.address, m.endpoint, encode_pong(session, (1 << 62), absurd), a.host_us())
    assert m.points == [] and p.malformed == 1
    net.run(1.0)
    assert p.state().session_id == session  # (and the real pongs then measure it)
