"""The beat clock: tempo, beat and bar, as a modulation source (issue 15).

The clock itself (tempo and phase on the show clock) is beat_clock.BeatClock; this module
steers it and reads it as a modulation source.

What the performer plays (targets and actions, declared here for the registry):
    tempo.bpm             the tempo (20 .. 300), kept by the tap and half/double too
    tempo.beats_per_bar   the meter (1 .. 16; default 4)
    tempo.tap             tap the beat: the tempo of the last taps, the last tap on the beat
    tempo.resync          now is the one: the nearest bar line moves here
    tempo.nudge.fwd/back  the phase a 32nd of a beat on or back
    tempo.half/double     half or twice the tempo

Each frame the source gives values `beats` and `bars` (the position, counted from the origin:
beats 0 starts bar 1), `beats_per_bar`, `beat_phase` and `bar_phase` (0 .. 1, 0 on the beat / the bar line) and
`tempo_bpm`, and the events `beat` and `downbeat` for every beat line the frame passed, with
the time it fell. The hand controls' targets are taken when they change (a knob on tempo.bpm),
so a tempo followed from MIDI clock stays when the clock goes away.

Following Ableton Link (`mode` link, or auto while the session has other peers;
sources.link.LinkNode): the session's tempo at once and its phase over SLEW_BEATS, aligned
modulo the bar (Link's quantum is beats_per_bar: peers share the bar line, not the bar count).
The performer's tempo changes (tap, half/double, the tempo.bpm knob) go into the session, and
its peers follow; with peers the phase is everyone's, so a tap or resync moves the tempo, not the
session's bar line. Alone (mode link, or auto without peers) our clock leads the session: every
change of ours, phase included, is written into it, so a peer that joins finds our beat.

Following MIDI clock (`mode` midi or auto; sources.midi.clock.MidiClock): while its ticks
come, the clock takes its tempo at once and its phase over SLEW_BEATS; a Start puts it on
beat 0 (bar 1) at once; a Stop holds it where the MIDI clock stopped. Once the ticks stop
coming (the MIDI clock says no tempo), it runs on free at the last tempo, by hand again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from ..common.clock import Clock
from ..state.params import ActionSpec, SignalSpec, TargetSpec
from .beat_clock import BPM_MAX, BPM_MIN, BeatClock, BeatTime, clamp_bpm
from .source import Event, Reading

log = logging.getLogger(__name__)

SOURCE = "beat"
NUDGE_BEATS = 1.0 / 32.0
LINK_BPM_SAME = 0.005  # tempos closer than this are the same (Link's tempo is whole us per beat)
LINK_PHASE_SAME_S = 0.0005  # ... and phases closer than this
# Alone, our clock is written into the session when it is this far from it (tempo, phase), or
# when it is off at all and LINK_LEAD_S has passed (following MIDI clock or the audio, the tempo
# moves a little every frame: not a broadcast each time)
LINK_LEAD_BPM, LINK_LEAD_PHASE_S, LINK_LEAD_S = 0.05, 0.002, 1.0
LATE_TICKS = 4  # MIDI clock ticks missed before the beat runs on by itself (a cable pulled)
AUDIO_CONFIDENCE = 0.5  # the live beat tracker is followed from this confidence on

TEMPO_TARGETS = (
    TargetSpec("tempo.bpm", BPM_MIN, BPM_MAX, 120.0, unit="BPM", smoothing="none", smoothing_ms=0.0,
               preset=False, doc="the tempo of the beat clock (tap, or follows MIDI clock)"),
    TargetSpec("tempo.beats_per_bar", 1, 16, 4, kind="step", smoothing="none", smoothing_ms=0.0, preset=False,
               doc="beats in a bar (the meter)"),
)
TEMPO_ACTIONS = (
    ActionSpec("tempo.tap", "tap the beat: the tempo of the last taps, this tap on the beat"),
    ActionSpec("tempo.resync", "this is the one: the nearest bar line moves to now"),
    ActionSpec("tempo.nudge.fwd", "move the beat a 32nd of a beat on"),
    ActionSpec("tempo.nudge.back", "move the beat a 32nd of a beat back"),
    ActionSpec("tempo.half", "half the tempo"),
    ActionSpec("tempo.double", "twice the tempo"),
)
TEMPO_ACTION_NAMES = frozenset(a.name for a in TEMPO_ACTIONS)
BEAT_SIGNALS = (
    SignalSpec("beat_phase", SOURCE, doc="where in the beat: 0 on the beat, rising to 1"),
    SignalSpec("bar_phase", SOURCE, doc="where in the bar: 0 on the bar line, rising to 1"),
    SignalSpec("tempo_bpm", SOURCE, input_range=(60.0, 180.0), doc="the beat clock's tempo"),
    SignalSpec("beat", SOURCE, event=True, doc="a beat"),
    SignalSpec("downbeat", SOURCE, event=True, doc="the first beat of a bar"),
)


class BeatSource:
    """The beat clock as a modulation source: reads the hand controls' targets each frame
    (`values`: the instrument's target values), follows `midi` (a MidiClock's state, when given
    and running) and gives the frame's Reading."""

    name = SOURCE
    messages: tuple[str, ...] = ()

    def __init__(self, clock: Clock, beat_clock: BeatClock, values=None, midi=None, mode: str = "tap",
                 audio=None, link=None):
        self.clock, self.beat = clock, beat_clock
        self.values = values  # () -> Mapping[str, float]: the state's targets (tempo.bpm, meter)
        self.midi = midi
        self.link = link  # a LinkNode (mode link, auto): state() and commit(t, bpm, beats)
        self._said_shared = False
        self._led_at = -math.inf  # when our clock was last written into a session we are alone in
        self.audio = audio  # a FeatureSource whose features carry the live beat tracker's (mode audio, auto)
        self.mode = mode
        self._last_t: float | None = None
        self._last_beat = 0.0
        self._fired: int | None = None  # the last beat line whose events were given
        self._jumps = 0
        self._midi_ticks = -1
        self._midi_running = False
        self._starting = False  # a Start heard, not yet followed with a tempo
        # (the tempo target as it was: a change is a knob or a tap; MIDI ticks there from the
        # start must not read the untouched target as one when they stop)
        self._bpm_seen: float | None = values().get("tempo.bpm") if values is not None else None
        self.now: BeatTime = beat_clock.at(clock.now())

    def act(self, action: str, t: float) -> float | None:
        """A tempo.* action at `t`; returns the tempo to show in `tempo.bpm`, if it changed."""
        beat, bpm = self.beat, None
        shared = self.link is not None and self.link.state().peers > 0  # (the phase is the session's)
        if shared and action in ("tempo.resync", "tempo.nudge.fwd", "tempo.nudge.back"):
            if not self._said_shared:
                self._said_shared = True
                log.info("%s: the bar line is the Link session's (its peers share it); the tempo is yours", action)
            return None
        if action == "tempo.tap":
            bpm = beat.tap(t, phase=not shared)
        elif action == "tempo.resync":
            beat.resync(t)
        elif action == "tempo.nudge.fwd":
            beat.nudge(t, NUDGE_BEATS)
        elif action == "tempo.nudge.back":
            beat.nudge(t, -NUDGE_BEATS)
        elif action in ("tempo.half", "tempo.double"):
            beat.scale_tempo(t, 0.5 if action == "tempo.half" else 2.0)
            bpm = beat.bpm
        if self.link is not None:  # (the session hears it: a new tempo; alone, the phase too)
            link = self.link.state()
            if link.peers and bpm is not None:
                self.link.commit(t, beat.bpm)
            elif not link.peers:
                self._lead(t, link, now=True)
        return bpm

    def read(self, t: float | None = None) -> Reading:
        t = self.clock.now() if t is None else t
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        self._steer(t, dt)
        now = self.now = self.beat.at(t)
        b = now.beat
        if self._fired is None:  # the first read: a line right here is played
            self._fired = math.ceil(b) - 1
        elif self._jumps != self.beat.jumps:  # a jump (a Start, a resync, a tap): the lines jumped
            self._jumps, landed = self.beat.jumps, self.beat.landed  # over are not played, the one it
            if landed < self._last_beat - 0.5:  # landed on is (once: a line already played, not again)
                self._fired = math.ceil(landed) - 1
            else:
                self._fired = max(self._fired, math.ceil(landed) - 1)
        events = []
        for n in range(self._fired + 1, math.floor(b) + 1)[-64:]:  # (a stall passes at most 64)
            when = self.beat.time_of(n)
            events.append(Event("beat", when))
            if n % now.beats_per_bar == 0:
                events.append(Event("downbeat", when))
        # (a line is fired once: a nudge back or a slew does not fire it again)
        self._fired = max(self._fired, math.floor(b))
        self._last_beat = b
        return Reading({"beats": now.beat, "bars": now.bar, "beats_per_bar": float(now.beats_per_bar),
                        "beat_phase": now.beat_phase, "bar_phase": now.bar_phase, "tempo_bpm": now.bpm},
                       tuple(events))

    def _steer(self, t: float, dt: float) -> None:
        link = self.link.state() if self.link is not None else None
        if link is not None and link.peers:
            self._follow_link(t, dt, link)
            return
        self._steer_here(t, dt)
        if link is not None:  # alone in the session: it is where our clock is
            self._lead(t, link, now=False)
            if self.mode == "link":
                self.beat.source = "link"

    def _follow_link(self, t: float, dt: float, link) -> None:
        """The session's tempo at once, its phase (modulo the bar) slewed to; a knob on
        tempo.bpm sets the session's tempo."""
        bpm = self._hand_controls()  # (the meter is the quantum: Link's phase is modulo the bar)
        # (a knob moved; or the engine showing the tempo we followed, as the knob can: nothing to write)
        if bpm is not None and min(abs(bpm - self.beat.bpm), abs(bpm - clamp_bpm(self.beat.bpm))) > LINK_BPM_SAME:
            self.link.commit(t, bpm)
            link = self.link.state()
        target = _nearest(self.beat.beat_at(t), link.beat_at(t), self.beat.beats_per_bar)
        self.beat.follow(t, target, link.bpm, dt, "link",
                         jump=self._fired is None)  # (the show's first frame starts on the session's beat)

    def _lead(self, t: float, link, now: bool) -> None:
        """Alone in the session: our tempo and phase (modulo the bar) into it, at once (`now`:
        the performer changed them), else when they drifted apart (LINK_LEAD_*)."""
        bpm, q = self.beat.bpm, self.beat.beats_per_bar
        own = self.beat.beat_at(t)
        off_s = abs(own - _nearest(own, link.beat_at(t), q)) * 60.0 / bpm
        d_bpm = abs(bpm - link.bpm)
        if d_bpm <= LINK_BPM_SAME and off_s <= LINK_PHASE_SAME_S:
            return
        if now or d_bpm > LINK_LEAD_BPM or off_s > LINK_LEAD_PHASE_S or t - self._led_at >= LINK_LEAD_S:
            self._led_at = t
            self.link.commit(t, bpm, own)

    def _steer_here(self, t: float, dt: float) -> None:
        """Without Link peers: MIDI clock, the beat tracker, or the hand controls."""
        midi = self.midi.state() if self.midi is not None and self.mode in ("midi", "auto") else None
        if midi is not None:
            # A Start (or a jump back): the count began again, or the clock began to run at its
            # first beat. It is followed at once, even before the clock knows a tempo (held on
            # the Start's position until it does).
            if midi.ticks < self._midi_ticks or (midi.running and not self._midi_running and midi.beat_at(t) < 1.0):
                self._starting = True
            self._midi_ticks, self._midi_running = midi.ticks, midi.running
            if midi.bpm is not None and not midi.transport:  # ticks, but no Start yet (a machine
                self.beat.set_tempo(t, midi.bpm)              # already playing): its tempo, our phase
                self.beat.source = "midi"
                return
            if midi.transport and not midi.running:  # stopped: held where it stopped (ticks or not)
                self.beat.follow(t, midi.beat_at(t), self.beat.bpm, dt, "midi", jump=True)
                return
            if midi.bpm is not None or self._starting:  # a MIDI clock is there (its ticks come)
                if midi.running and midi.rolling and midi.bpm is not None \
                        and t - midi.t_s > LATE_TICKS * 2.5 / midi.bpm:  # (a tick is 60 / 24 / bpm s)
                    return  # its ticks stopped coming without a Stop: run on at its tempo, no stall
                # running: its tempo at once, its phase slewed to (a Start: at once); stopped, or
                # before the first tick after a Continue: held on its position
                self.beat.follow(t, midi.beat_at(t), midi.bpm if midi.bpm is not None else self.beat.bpm, dt,
                                 "midi", jump=self._starting or not midi.running or not midi.rolling)
                self._starting = self._starting and midi.bpm is None
                return
        if self._follow_audio(t, dt):
            return
        if self.beat.source in ("midi", "audio", "link"):  # the source went away: free-running from where it was
            self.beat.source = "tap"
        bpm = self._hand_controls()
        if bpm is not None:  # (a knob moved, or a tap set it)
            self.beat.set_tempo(t, bpm)

    def _hand_controls(self) -> float | None:
        """The meter from tempo.beats_per_bar; tempo.bpm when it changed since it was last
        seen (a knob, a tap, the engine showing a followed tempo), else None."""
        values: Mapping[str, float] = self.values() if self.values is not None else {}
        meter, bpm = values.get("tempo.beats_per_bar"), values.get("tempo.bpm")
        if meter is not None:
            self.beat.set_meter(int(meter))
        if bpm is None or bpm == self._bpm_seen:
            return None
        self._bpm_seen = bpm
        return bpm

    def _follow_audio(self, t: float, dt: float) -> bool:
        """The live beat tracker, while it is confident (AUDIO_CONFIDENCE): its tempo, and its
        phase slewed to (the nearest beat position with the tracker's phase)."""
        features = self.audio.latest() if self.audio is not None and self.mode in ("audio", "auto") else None
        if features is None or features.tempo_bpm is None or features.beat_confidence < AUDIO_CONFIDENCE:
            return False
        target = _nearest(self.beat.beat_at(t), features.beat_phase, 1.0)  # (the beat nearest ours with that phase)
        self.beat.follow(t, target, features.tempo_bpm, dt, "audio")
        return True

    def hud_lines(self) -> dict[str, str]:
        now = self.now
        beat_in_bar = int(math.floor(now.beat)) % now.beats_per_bar
        dots = "".join("●" if i == beat_in_bar else "○" for i in range(now.beats_per_bar))
        source = now.source
        if self.link is not None:  # (the session's other peers)
            peers = self.link.state().peers
            peers_text = f"{peers} peer{'s' if peers != 1 else ''}"
            source = f"Link, {peers_text}" if source == "link" else f"{source}; Link {peers_text}"
        return {"tempo": f"{now.bpm:.1f} BPM ({source}) {dots} bar {int(math.floor(now.bar)) + 1}"}

    def stop(self, timeout_s: float = 2.0) -> bool:
        return self.link.stop(timeout_s) if self.link is not None else True


def _nearest(own: float, other: float, period: float) -> float:
    """The position `other` + k * `period` nearest `own`: another clock's phase, in our count."""
    return other + period * round((own - other) / period)
