"""The beat clock in an Ableton Link session (modulation/beat.py BeatSource with a link): our
peer and another app's on the fake network of test_link_session.py (real protocol, real bytes),
frames at 50 fps on a fake clock that is our peer's host clock. The engine's part is played too:
after each frame, the tempo the clock gives is written into tempo.bpm, as engine/loop.py does.
"""

from __future__ import annotations

import logging

import pytest
from test_link_session import Net

from ganinstrument.common.clock import FakeClock
from ganinstrument.modulation.beat import BeatSource
from ganinstrument.modulation.beat_clock import BeatClock

FPS = 50  # (20 ms: whole steps of the fake network)


class NodeView:
    """A peer of the fake network as BeatSource sees a LinkNode."""

    def __init__(self, peer):
        self.peer = peer

    def state(self):
        return self.peer.protocol.state()

    def commit(self, host_s: float, bpm: float, beats: float | None = None) -> None:
        self.peer.protocol.commit(host_s * 1e6, bpm, beats, self.peer.host_us())

    def stop(self, timeout_s: float = 2.0) -> bool:
        return True


class Show:
    def __init__(self, net: Net, ours, mode: str = "auto", bpm: float = 120.0):
        self.net, self.ours = net, ours
        self.clock = FakeClock(ours.host_us() / 1e6)
        self.values = {"tempo.bpm": bpm, "tempo.beats_per_bar": 4.0}
        self.source = BeatSource(self.clock, BeatClock(bpm, 4, t0=self.clock.now()), values=lambda: self.values,
                                 mode=mode, link=NodeView(ours))
        self.readings = []

    def play(self, seconds: float) -> None:
        for _ in range(round(seconds * FPS)):
            self.net.run(1.0 / FPS)
            self.clock.set(self.ours.host_us() / 1e6)
            reading = self.source.read(self.clock.now())
            self.values["tempo.bpm"] = min(max(reading.values["tempo_bpm"], 20.0), 300.0)  # (the engine shows
            #                                                               the tempo, in the knob's range)
            self.readings.append(reading)

    def act(self, action: str) -> None:
        bpm = self.source.act(action, self.clock.now())
        if bpm is not None:
            self.values["tempo.bpm"] = bpm

    def gap_ms(self, other) -> float:
        """Our beat against the other app's session beat now, modulo the bar, in ms."""
        t = self.clock.now()
        theirs = other.protocol.state().beat_at(other.host_us() / 1e6)
        gap = (self.source.beat.beat_at(t) - theirs + 2) % 4 - 2
        return gap * 60e3 / self.source.beat.bpm


def joined(app_bpm: float, app_offset_us: int = 0, ours_offset_us: int = 0, settle_s: float = 0.5):
    """Another app's session, two seconds old, and ours joining it (`settle_s` before the show's
    first frame: perform joins while its model loads)."""
    net = Net()
    app = net.add("app", offset_us=app_offset_us, bpm=app_bpm)
    net.run(2.0)
    ours = net.add("ours", offset_us=ours_offset_us, bpm=120.0)
    net.run(settle_s)
    return net, app, ours, Show(net, ours)


def test_alone_our_clock_leads_the_session_so_an_app_that_joins_gets_our_beat():
    net = Net()
    ours = net.add("ours", offset_us=1_000_000, bpm=120.0)
    show = Show(net, ours)
    show.play(0.5)
    show.values["tempo.bpm"] = 100.0  # (a knob)
    show.play(0.5)
    show.act("tempo.resync")  # (alone, the bar line is ours to move)
    show.play(0.5)
    assert show.source.now.source == "tap"  # (auto, alone: our own clock)
    app = net.add("app", offset_us=-40_000_000, bpm=140.0)
    show.play(1.5)
    assert app.protocol.state().session_id == ours.protocol.state().session_id == ours.protocol.node_id
    assert app.protocol.state().bpm == pytest.approx(100.0, abs=1e-3)
    assert abs(show.gap_ms(app)) < 0.05
    assert show.source.now.source == "link"  # (now with a peer: the session's clock)


def test_with_an_older_session_we_follow_it_and_it_follows_our_knob_and_taps(caplog):
    net, app, ours, show = joined(132.0, app_offset_us=-7_000_000, ours_offset_us=3_000_000)
    show.play(0.04)
    assert show.source.now.source == "link" and show.source.now.bpm == pytest.approx(132.0, abs=1e-3)
    assert abs(show.gap_ms(app)) < 0.05  # (the first frames start on the session's beat: no slew)
    show.play(2.0)
    assert abs(show.gap_ms(app)) < 0.05
    show.values["tempo.bpm"] = 90.0  # (a knob)
    beat_before = show.source.beat.beat_at(show.clock.now())
    show.play(0.1)
    assert app.protocol.state().bpm == pytest.approx(90.0, abs=1e-3)
    # (the knob is read at the next frame: one frame more at 132, then 90; no jump)
    assert show.source.beat.beat_at(show.clock.now()) - beat_before == pytest.approx((0.02 * 132 + 0.08 * 90) / 60,
                                                                                    abs=1e-3)
    for _ in range(4):  # taps at 120 BPM, off the session's beat: the tempo is taken, not the phase
        show.act("tempo.tap")
        show.play(0.5)
    assert app.protocol.state().bpm == pytest.approx(120.0, abs=0.1)
    assert abs(show.gap_ms(app)) < 0.05
    with caplog.at_level(logging.INFO, logger="ganinstrument.modulation.beat"):
        show.act("tempo.resync")
        show.act("tempo.nudge.fwd")
    show.play(0.1)
    assert abs(show.gap_ms(app)) < 0.05  # the bar line stays the session's ...
    assert len(caplog.records) == 1 and "Link session" in caplog.records[0].getMessage()  # ... said once
    assert "Link, 1 peer" in show.source.hud_lines()["tempo"]


def test_when_the_other_app_leaves_the_clock_runs_on_by_itself():
    net, app, ours, show = joined(128.0, settle_s=0.0)
    show.play(1.0)
    assert show.source.now.source == "link"
    before = show.source.beat.beat_at(show.clock.now())
    app.protocol.goodbye()
    del net.peers[app.address]
    show.play(1.0)
    assert show.source.now.source == "tap" and show.source.now.bpm == pytest.approx(128.0, abs=1e-3)
    assert show.source.beat.beat_at(show.clock.now()) - before == pytest.approx(128 / 60, abs=0.02)
    assert "tap; Link 0 peers" in show.source.hud_lines()["tempo"]


def test_tempo_link_alone_says_link_and_the_session_is_ours():
    net = Net()
    ours = net.add("ours", offset_us=0, bpm=120.0)
    show = Show(net, ours, mode="link", bpm=120.0)
    show.play(0.5)
    assert show.source.now.source == "link" and "Link, 0 peers" in show.source.hud_lines()["tempo"]
    show.act("tempo.half")
    show.play(0.1)
    assert ours.protocol.state().bpm == pytest.approx(60.0, abs=1e-3)


class Counting(NodeView):
    commits = 0

    def commit(self, host_s, bpm, beats=None):
        self.commits += 1
        super().commit(host_s, bpm, beats)


def test_a_session_faster_than_the_knob_is_followed_and_not_pulled_down():
    """Link sessions run up to 999 BPM, the tempo knob to 300: the clock follows 400 exactly; the
    knob showing its 300 (the engine writes the tempo back, clamped) and a first tap, which sets
    no tempo, write nothing into the session."""
    net, app, ours, show = joined(400.0)
    show.source.link = link = Counting(ours)
    show.play(1.0)
    show.values["tempo.bpm"] = 300.0  # (what the engine's write-back leaves in the knob)
    show.play(0.5)
    show.act("tempo.tap")
    show.play(0.5)
    assert link.commits == 0 and app.protocol.state().bpm == pytest.approx(400.0, abs=1e-3)
    assert show.source.now.bpm == pytest.approx(400.0, abs=1e-3) and abs(show.gap_ms(app)) < 0.05


def test_the_meter_knob_sets_the_quantum_while_following():
    net, app, ours, show = joined(120.0)
    show.play(0.5)
    show.values["tempo.beats_per_bar"] = 3.0  # (the bar line moves: slewed to, over a few beats)
    show.play(6.0)
    assert show.source.now.beats_per_bar == 3
    theirs = app.protocol.state().beat_at(app.host_us() / 1e6)
    gap = (show.source.beat.beat_at(show.clock.now()) - theirs + 1.5) % 3 - 1.5
    assert abs(gap) * 500 < 0.05  # (on the session's phase modulo 3 beats, in ms)


def test_alone_a_wandering_tempo_is_written_into_the_session_about_once_a_second():
    """Following MIDI clock or the audio alone, the tempo moves a little every frame: the session
    hears it, but not 50 times a second."""
    net = Net()
    ours = net.add("ours", offset_us=0, bpm=120.0)
    show = Show(net, ours)
    show.source.link = link = Counting(ours)
    for k in range(5 * FPS):
        show.values["tempo.bpm"] = 120.0 + 0.02 * (k % 3)
        show.play(1 / FPS)
    assert 3 <= link.commits <= 7, link.commits
    assert abs(ours.protocol.state().bpm - show.source.now.bpm) < 0.05
