"""Runs inside a private network namespace (tests/netns.py): Ableton's own Link (LinkPython-extern,
a test tool only) as the second peer, against ours. Writes what it saw as JSON; the tests judge.

    python3 link_driver.py node OUT.json            our LinkNode in this process
    python3 link_driver.py hostile OUT.json         ours under hostile datagrams, then a peer
    python3 link_driver.py perform OUT.json TMPDIR  the real `perform --tempo link`

Clocks: ours is perf_counter (CLOCK_MONOTONIC), Link's on Linux is CLOCK_MONOTONIC_RAW; `Clocks`
converts with paired readings taken at the start and the end (the two drift by parts per million).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import link  # LinkPython-extern: Ableton's Link

QUANTUM = 4.0


class Clocks:
    def __init__(self, peer: link.Link):
        self.clock = peer.clock()
        self.first = (time.perf_counter_ns() // 1000, self._offset())

    def _offset(self) -> float:
        best = None
        for _ in range(50):
            a = time.perf_counter_ns() / 1000
            raw = self.clock.micros()
            b = time.perf_counter_ns() / 1000
            if best is None or b - a < best[0]:
                best = (b - a, raw - (a + b) / 2)
        return best[1]

    def end(self) -> None:
        self.last = (time.perf_counter_ns() // 1000, self._offset())

    def raw(self, mono_us: float) -> int:
        (t0, o0), (t1, o1) = self.first, getattr(self, "last", (self.first[0] + 1, self.first[1]))
        return round(mono_us + o0 + (o1 - o0) * (mono_us - t0) / (t1 - t0))


def wrap(beats: float) -> float:
    return (beats + QUANTUM / 2) % QUANTUM - QUANTUM / 2


def wait(predicate, timeout_s: float) -> float | None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if predicate():
            return time.perf_counter() - start
        time.sleep(0.001)
    return None


def peer_tempo(peer: link.Link) -> float:
    return peer.captureSessionState().tempo()


def set_peer_tempo(peer: link.Link, bpm: float) -> None:
    state = peer.captureSessionState()
    state.setTempo(bpm, peer.clock().micros())
    peer.commitSessionState(state)


def node_scenario(out: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ganinstrument.sources.link import LinkNode

    result: dict = {}
    peer = link.Link(100.0)
    peer.enabled = True
    clocks = Clocks(peer)
    time.sleep(1.5)  # (older by more than Link's 0.5 s: its session is the one to join)
    node = LinkNode(120.0).start()
    result["join_s"] = wait(lambda: node.state().peers == 1 and abs(node.state().bpm - 100.0) < 1e-6, 3.0)
    result["peer_sees_s"] = wait(lambda: peer.numPeers() == 1, 1.0)
    time.sleep(0.2)
    errors = []
    for _ in range(200):
        t = time.perf_counter()
        ours = node.state().beat_at(t)
        theirs = peer.captureSessionState().beatAtTime(clocks.raw(t * 1e6), QUANTUM)
        errors.append(wrap(ours - theirs) * 60e3 / 100.0)
        time.sleep(0.01)
    result["phase_errors_ms"] = errors
    set_peer_tempo(peer, 133.0)
    result["we_follow_s"] = wait(lambda: abs(node.state().bpm - 133.0) < 0.01, 2.0)
    node.commit(time.perf_counter(), 91.0)
    result["peer_follows_s"] = wait(lambda: abs(peer_tempo(peer) - 91.0) < 0.01, 2.0)
    t = time.perf_counter()
    result["after_change_ms"] = wrap(node.state().beat_at(t) - peer.captureSessionState().beatAtTime(
        clocks.raw(t * 1e6), QUANTUM)) * 60e3 / 91.0
    node.stop()
    result["peer_alone_s"] = wait(lambda: peer.numPeers() == 0, 2.0)
    peer.enabled = False
    time.sleep(0.3)
    # the other way round: ours is the older session, a Link peer that comes joins it
    node = LinkNode(97.0).start()
    time.sleep(1.5)
    peer = link.Link(150.0)
    peer.enabled = True
    result["peer_joins_s"] = wait(lambda: peer.numPeers() == 1 and abs(peer_tempo(peer) - 97.0) < 0.01, 3.0)
    result["our_bpm_after_peer_joined"] = node.state().bpm
    node.stop()
    out.write_text(json.dumps(result))


def hostile_scenario(out: Path) -> None:
    """Our LinkNode under hostile datagrams from a raw socket, then an Ableton peer joins it."""
    import socket
    import struct

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ganinstrument.sources.link import LinkNode
    from ganinstrument.sources.link.timeline import Timeline
    from ganinstrument.sources.link.wire import ALIVE, PeerState, StartStop, encode_discovery, encode_ping, pack

    node = LinkNode(120.0).start()
    time.sleep(0.3)
    mine = node.state()
    endpoint = node.endpoint("127.0.0.1")
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    raw.bind(("127.0.0.1", 0))
    raw.settimeout(1.0)
    group = ("224.76.78.75", 20808)
    rng = __import__("random").Random(5)
    for _ in range(200):  # noise, and noise behind the right magic
        raw.sendto(bytes(rng.randrange(256) for _ in range(rng.randrange(600))), group)
        raw.sendto(b"_asdp_v\x01" + bytes(rng.randrange(256) for _ in range(rng.randrange(80))), group)
        raw.sendto(b"_link_v\x01\x01" + bytes(rng.randrange(256) for _ in range(rng.randrange(80))), endpoint)
    for n in range(20):  # sessions whose measurement endpoint is unreachable here (no route)
        fake = bytes([9, n, 1, 2, 3, 4, 5, 6])
        state = PeerState(fake, fake, Timeline(500000, 0, 0), StartStop(), ("10.255.255.1", 9))
        raw.sendto(encode_discovery(ALIVE, 5, fake, state), group)
    huge = struct.pack(">qqq", 500000, (1 << 63) - 1, -(1 << 63))  # a "peer of our session"
    evil = b"_asdp_v\x01\x01\x05\x00\x00" + b"evilnode" + pack((b"tmln", huge), (b"sess", mine.session_id),
                                                                  (b"mep4", b"\x7f\x00\x00\x01\x00\x09"))
    raw.sendto(evil, group)
    raw.sendto(encode_ping(12345) + b"\x00" * 40, endpoint)  # (a ping too long: not answered)
    raw.sendto(encode_ping(12345), endpoint)
    pong, _ = raw.recvfrom(2048)
    time.sleep(1.0)  # (the fake sessions' measurements time out)
    result = {"gateways": node.gateways(), "failures": node.failures, "unreachable": node.unreachable,
              "malformed": node.protocol.malformed, "pong": pong[:9].hex(),
              "session_kept": node.state().session_id == mine.session_id, "bpm": node.state().bpm}
    peer = link.Link(150.0)
    peer.enabled = True
    result["peer_joins_s"] = wait(lambda: peer.numPeers() == 1 and abs(peer_tempo(peer) - 120.0) < 0.01, 3.0)
    node.stop()
    out.write_text(json.dumps(result))


def perform_scenario(out: Path, tmp: Path) -> None:
    """The peer plays 120 BPM; `perform --tempo link` (30 fps, --log-params) joins. The peer
    changes to 132 BPM; then the performer sets tempo.bpm 96 over OSC; then taps 100 BPM."""
    peer = link.Link(120.0)
    peer.enabled = True
    clocks = Clocks(peer)
    log = tmp / "params.jsonl"
    env = dict(os.environ, GANINSTRUMENT_NO_LINK="0")
    osc_port = 9123
    show = subprocess.Popen(
        [sys.executable, "-m", "ganinstrument", "perform", "--model", "demo", "--device", "cpu", "--tempo", "link",
         "--output", "null", "--audio-device", "none", "--midi-port", "none", "--osc-port", str(osc_port),
         "--no-restart", "--presets-dir", str(tmp), "--log-params", str(log), "--fps", "30",
         "--max-frames", "600"], env=env, stdout=(tmp / "perform.log").open("w"), stderr=subprocess.STDOUT)
    from pythonosc.udp_client import SimpleUDPClient

    osc = SimpleUDPClient("127.0.0.1", osc_port)
    events: dict = {}
    snapshots = []  # (perf_counter us, the peer's session state then)

    def sample(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            snapshots.append((time.perf_counter_ns() / 1000, peer.captureSessionState()))
            time.sleep(0.004)

    try:
        started = wait(lambda: log.is_file() and log.stat().st_size > 0, 90.0)
        events["started"] = started is not None
        sample(4.0)
        events["peer_change"] = time.perf_counter_ns() / 1000
        set_peer_tempo(peer, 132.0)
        sample(4.0)
        events["osc_bpm"] = time.perf_counter_ns() / 1000
        osc.send_message("/ganinstrument/tempo.bpm", 96.0)
        events["peer_follows_bpm_s"] = wait(lambda: abs(peer_tempo(peer) - 96.0) < 0.01, 2.0)
        sample(3.0)
        events["taps"] = time.perf_counter_ns() / 1000
        for _ in range(5):
            osc.send_message("/ganinstrument/tempo.tap", 1.0)
            sample(0.6)
        events["peer_tempo_after_taps"] = peer_tempo(peer)
        sample(3.0)
    finally:
        try:
            show.wait(timeout=60)
        except subprocess.TimeoutExpired:
            show.kill()
        clocks.end()
    rows = []
    for line in log.read_text().splitlines():
        clock = json.loads(line).get("clock")
        if not clock:
            continue
        t = clock["t_host_us"]
        later = next((state for when, state in snapshots if when >= t), None)
        if later is None:
            continue  # (before or after the driver's samples)
        rows.append({"t_us": t, "beat": clock["beat"], "bpm": clock["bpm"], "source": clock["source"],
                     "peer_beat": later.beatAtTime(clocks.raw(t), QUANTUM), "peer_bpm": later.tempo()})
    out.write_text(json.dumps({"events": events, "rows": rows, "returncode": show.returncode,
                               "output": (tmp / "perform.log").read_text()[-3000:]}))


if __name__ == "__main__":
    if sys.argv[1] == "node":
        node_scenario(Path(sys.argv[2]))
    elif sys.argv[1] == "hostile":
        hostile_scenario(Path(sys.argv[2]))
    else:
        perform_scenario(Path(sys.argv[2]), Path(sys.argv[3]))
