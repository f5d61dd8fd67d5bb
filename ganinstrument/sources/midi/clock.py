"""MIDI clock in: tempo, position and transport from a drum machine's or a DAW's clock.

`MidiClock.feed(status, data, t_s)` takes the realtime and system-common messages that matter,
with the time they arrived (seconds on the instrument clock), on the MIDI reader thread:

- 0xF8 clock tick, 24 per quarter note;
- 0xFA Start: the position goes to 0 and the clock runs; the first tick after it is beat 0;
- 0xFB Continue: runs on from the held position; the first tick after it is the next position;
- 0xFC Stop: holds the position, not running;
- 0xF2 Song Position Pointer (LSB, MSB, in sixteenths = 6 ticks): the position of the next
  tick; honoured while stopped, as devices send it just before Continue.

`state()` is a thread-safe snapshot (MidiClockState): `running`, `bpm` (None until a beat of
ticks has come, and again after STALE_S without ticks), `beat` (quarter notes since the Start /
SPP origin, at the last tick: ticks / 24), `t_s` (when the last tick or transport message came),
`ticks` (the position in ticks) and `beat_at(t)`, the beat at time t: extrapolated along the
fitted tick line while running and ticks come, but never more than one tick past the last tick
(so when a late tick arrives the beat does not step back) nor before it; held while stopped.

Tempo. The ticks' times carry the jitter of everything between the device and us: the device's
own, USB's 1 ms frames, and with JACK the period (256 frames at 48 kHz: every message of a
period arrives at once, 0..5.3 ms late). At 174 BPM ticks are 14.4 ms apart, so one interval
says nothing useful, and the median of intervals is no better (they are whole numbers of
periods). We fit a least-squares line of tick time against tick number; its slope is the tick
interval. The slope's error falls with the window's length to the power 1.5 (jitter sd /
sqrt(sum of squared index offsets)): SHORT = 48 ticks (two beats) with +-1 ms jitter give about
0.07 BPM (sd) at 174 BPM, and with JACK's period on top about three times that. Two beats is
the requirement: a tempo change has left the last 48 ticks entirely two beats after it, so the
fit always spans at least those 48 ticks and never needs to know where the change was. Beyond
that the fit spans the current segment, up to WINDOW = 96 ticks (four beats, ~2.8 times
steadier): the ticks since the last change. Whether the tempo changed is tested on every fit
once the segment has TEST_TICKS: the slope of its last 48 ticks against the slope of the ticks
before them (BEND_Z standard errors apart, and at least BEND_MIN of the interval); a change
starts the segment at the split that fits two lines best (prefix sums, one pass; at least MIN_SIDE
ticks of known time each side). Found a few ticks after it, that split rests on those few (a
late tick near it could place it early, keeping old ticks in the fit), so it is placed again
on every fit for the next RELOOK ticks, looking RELOOK ticks further back. Undetected
small changes bias the long fit by about half their size, which the test bounds. (A median of
intervals fails on quantized stamps; a minimax line was measured worse than least squares on
JACK-like quantization; a continuous two-slope fit across the change gains only ~20 %.)
Robustness: BUNCH_TICKS ticks or more in a row, each less than BUNCHED of the tick interval
after the last, and more than twice the usual bunch (a JACK period longer than a tick bunches
each period's ticks: that is the usual bunch, the median of the last 16 runs of close ticks,
a tick alone a run of one, so stalls' bunches never become the norm), came after a stall of the
reader, USB or a JACK xrun that let held-back ticks through at once: their times, the late
first one's too, say nothing of when they were sent, so they are left out of the fit (NaN in the
window; the position still counts them). Lost ticks
(an xrun can drop a period's MIDI: one lost tick slips every later tick's index by one, and
the least-squares slope over 48 ticks by 1.5 / 48: 2.8 BPM at 90, 5.6 at 174): a tick
LOST_GAP intervals or more after the last, and the ticks after it, are held out of the fit
until LOST_LOOK of them (not stall-bunched) are in; put on the line of the LOST_BEFORE ticks
before the gap, they are as many intervals late as ticks were lost (in one gap, or a second
among them); if every one (but one late) sits there within LOST_TOLERANCE of an interval,
and their own slope is the line's (a slower tempo drifts off instead), the lost ticks go in
as ticks of unknown time and count in the position, as the device sent them. Not when the
ticks before are too rough to tell (JACK periods they share, or that come one a period with
the period a little shorter than the interval: it skips one now and then, as a loss would).
Other ticks that
arrived late sit far off the line; after a first fit, ticks further than OUTLIER_K robust deviations (median
absolute residual, floored at RESIDUAL_FLOOR_S; these, MIN_SIDE and LOST_* are in `tick_lines`) are dropped and the line is fitted again. The
window starts afresh after a gap of STALE_S without ticks. A fit (~50 us) runs at most every
MIN_REFIT_S of tick time or REFIT_TICKS ticks, so a flood of ticks costs little; an interval
that gives a tempo outside BPM_RANGE (a flood, ticks stamped alike) is no tempo: bpm is None.

Hostile input never raises and never yields NaN or infinity: an SPP without two data bytes
0..127 is counted as malformed and moves nothing, a timestamp that is not finite or goes back is
taken as the last one, and ticks while stopped estimate the tempo but do not move the position
(as the MIDI spec says). Nothing is logged per message; the counters say what happened.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .tick_lines import LOST_BEFORE, bend, count_lost, median, robust_line

TICK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
MESSAGES = frozenset((TICK, START, CONTINUE, STOP, SONG_POSITION))  # what feed() uses
PPQN = 24  # ticks per quarter note
TICKS_PER_SIXTEENTH = 6

WINDOW = 96  # ticks kept for the tempo fit (four beats)
SHORT = 48  # the last two beats: tested against the ticks before them for a tempo change
TEST_TICKS = 72  # a segment this long is tested for a change (two beats against one)
MIN_TICKS = 24  # ticks in the fit before there is a tempo (one beat)
RELOOK = 24  # a change found early is placed again, looking this many ticks before its place
BEND_Z = 3.5  # a change: the two slopes differ by this many standard errors ...
BEND_MIN = 0.0005  # ... and by this fraction of the tick interval (0.05 %: 0.09 BPM at 174)
STALE_S = 2.0  # without a tick this long: no tempo (and the fit starts afresh)
MIN_REFIT_S = 0.002  # at most one fit per this much tick time (floods) ...
REFIT_TICKS = 8  # ... unless this many ticks came since the last (ticks stamped alike)
BUNCHED = 0.3  # ticks this close (of the tick interval) ...
BUNCH_TICKS = 3  # ... this many in a row, and more than twice the usual bunch, came after a stall
BPM_RANGE = (20.0, 500.0)  # a fitted tempo outside this is no tempo
LOST_GAP = 1.3  # a tick this many intervals after the last may follow lost ticks: it and the next are
LOST_LOOK = 8  # held out of the fit until this many of them (not stall-bunched) say how many were lost


def _valid_spp(data) -> bool:
    """Whether `data` holds a Song Position Pointer's two data bytes (LSB, MSB, 0..127)."""
    try:
        lsb, msb = int(data[0]), int(data[1])
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        return False
    return 0 <= lsb <= 127 and 0 <= msb <= 127


@dataclass(frozen=True)
class MidiClockState:
    """The MIDI clock at one moment (immutable: the engine may keep it across frames)."""

    running: bool = False
    bpm: float | None = None
    beat: float = 0.0  # at t_s, from the tick count (ticks / 24)
    t_s: float = 0.0  # when the last tick or transport message arrived
    ticks: int = 0  # the position in ticks since the Start / SPP origin
    line_t_s: float = 0.0  # where the fitted tick line puts the last tick (beat_at's anchor)
    rolling: bool = False  # running, and a tick has come since Start / Continue (beat_at moves)
    transport: bool = False  # a Start, Continue, Stop or SPP has been heard (the position means something)

    def beat_at(self, t: float) -> float:
        """The beat at time `t`: along the fitted line while the clock rolls, at most one tick
        past the last tick (and not before it); the held position otherwise."""
        if not self.rolling or self.bpm is None or not math.isfinite(t):
            return self.beat
        ahead = (t - self.line_t_s) * self.bpm / 60.0
        return self.beat + min(max(ahead, 0.0), 1.0 / PPQN)


class MidiClock:
    """Tempo, position and transport from MIDI clock messages (see the module docstring).

    `now()` (default time.perf_counter, the instrument clock's) is read by `state()` to tell a
    clock that stopped ticking. Counters (read by anyone, written under the lock): `received`
    (messages fed), `tick_count`, `malformed` (an SPP without two data bytes 0..127), `ignored`
    (statuses feed() does not use), `backwards` (timestamps earlier than the last, taken as
    the last), `conflicts` (ticks from a second source within STALE_S of another's), `bunched`
    (ticks that came in a bunch after a stall: left out of the tempo fit), `lost` (ticks that
    never came, found by the gap they left: counted in the position while running).
    """

    def __init__(self, now: Callable[[], float] | None = None):
        self._now = now or time.perf_counter
        self._lock = threading.Lock()
        self._times: deque[float] = deque(maxlen=WINDOW)  # arrival times of the last ticks (bunched: fitted)
        self._placing = -1  # a change was found: its place is looked at again up to this tick count
        self._segment = 0  # how many of the newest ticks are at one tempo (since the last change)
        self._fit_t = -math.inf  # when the last fit ran (tick time)
        self._unfitted = 0  # ticks since the last fit
        self._interval: float | None = None  # fitted seconds per tick
        self._line_last = 0.0  # the fitted time of the last tick
        self._last_t = -math.inf  # the latest timestamp fed (any message)
        self._last_tick_t = -math.inf
        self._next_pos = 0  # the position the next tick marks (while running)
        self._pos = 0  # the position of the last tick (what `beat` shows)
        self._running = False
        self._rolling = False
        self._transport = False  # a transport message heard (Start, Continue, Stop, SPP)
        self._source = ""
        self._bunch = 1  # ticks in a row that came close together (BUNCHED)
        self._bunch_counted = 0
        self._after_transport = False  # a transport message came since the last tick
        self._bunches: deque[int] = deque(maxlen=16)  # the sizes of the last runs of close ticks (1: alone)
        self._held: list[float] | None = None  # the ticks from a gap on (NaN: in a stall's bunch), out of the fit
        self._arrivals: deque[float] = deque(maxlen=WINDOW)  # the last ticks' arrival times, as they came
        self._state = MidiClockState()
        self.received = self.tick_count = self.malformed = self.ignored = 0
        self.backwards = self.conflicts = self.changes = self.bunched = self.lost = 0

    # -- the reader thread ---------------------------------------------------------------
    def feed(self, status: int, data: bytes | Sequence[int] = (), t_s: float = 0.0, source: str = "") -> None:
        """One message: `status` (0xF8, 0xFA, 0xFB, 0xFC, 0xF2), its data bytes (SPP's LSB, MSB)
        and its arrival time `t_s`; `source` names the port (to count two clocks at once).
        Never raises; a status it does not use is counted as ignored."""
        try:
            status = int(status)
            t = float(t_s)
        except (TypeError, ValueError, OverflowError):
            self.ignored += 1
            return
        if status not in MESSAGES:
            self.ignored += 1
            return
        with self._lock:
            self.received += 1
            if not math.isfinite(t) or t < self._last_t:  # NaN, infinite or backwards: the last time
                self.backwards += 1
                t = self._last_t if math.isfinite(self._last_t) else 0.0
            self._last_t = t
            if status == SONG_POSITION and not _valid_spp(data):  # not an SPP: where would it go?
                self.malformed += 1
                return
            if status != TICK:
                self._transport = True
                self._after_transport = True  # a gap across it is the device's pause, not lost ticks
                if self._held is not None:
                    self._release(0, 0, 0, 0)
            if status == TICK:
                self._tick(t, source)
            elif status == START:
                self._running, self._rolling = True, False
                self._pos = self._next_pos = 0
            elif status == CONTINUE:
                self._hold()
                self._running = True
            elif status == STOP:
                self._hold()
                self._running = False
            else:  # SONG_POSITION
                lsb, msb = int(data[0]), int(data[1])
                self._hold()
                self._pos = self._next_pos = ((msb << 7) | lsb) * TICKS_PER_SIXTEENTH
            self._publish(t)

    def _hold(self) -> None:
        """Stop moving: the next tick (after a Continue) marks the position after the last."""
        if self._rolling:
            self._next_pos = self._pos + 1
        self._rolling = False

    def _tick(self, t: float, source: str) -> None:
        self.tick_count += 1
        if source != self._source:
            if self._source and t - self._last_tick_t < STALE_S:
                self.conflicts += 1  # two devices clocking us at once: their ticks add up
            self._source = source
        if t - self._last_tick_t > STALE_S:  # a clock that (re)starts: a new fit
            self._times.clear()
            self._segment = 0
            self._placing = -1
            self._interval = None
            self._fit_t = -math.inf
            self._held = None
            self._arrivals.clear()
        previous, self._last_tick_t = self._last_tick_t, t
        close = self._interval is not None and t - previous < BUNCHED * self._interval
        if not close and self._interval is not None:  # a run of ticks ended (one alone counts too:
            self._bunches.append(self._bunch)  # the stalls' bunches must not set the norm)
        self._bunch = self._bunch + 1 if close else 1
        if not close:
            self._bunch_counted = 0  # (of this run, counted in `bunched` so far)
        self._times.append(t)
        self._arrivals.append(t)
        if self._bunch >= BUNCH_TICKS and self._bunch >= 2 * self._usual_bunch() + 1:
            # A stall (the reader, USB, a JACK xrun) let held-back ticks through at once: their
            # arrival says nothing of when they were sent, so they are left out of the fit (NaN),
            # the late first one too. (A JACK period longer than a tick bunches every period's
            # ticks alike: the usual bunch, fitted as it is.) Stamped alike for long (a flood):
            # too few ticks are left to fit, no tempo.
            for back in range(1, min(self._bunch, len(self._times)) + 1):
                self._times[-back] = math.nan
            self.bunched += self._bunch - self._bunch_counted
            self._bunch_counted = self._bunch
        if self._held is not None:
            self._hold_tick(t, close)
        elif not close and not self._after_transport and self._interval is not None and self._gap(t - previous):
            self._held = []
            self._hold_tick(t, close)
        self._after_transport = False
        self._segment = min(self._segment + 1, len(self._times))
        if self._running:
            self._pos = self._pos + 1 if self._rolling else self._next_pos
            self._rolling = True
        self._unfitted += 1
        if len(self._times) >= MIN_TICKS and (t - self._fit_t >= MIN_REFIT_S or self._unfitted >= REFIT_TICKS):
            self._fit_t, self._unfitted = t, 0
            self._fit()
        elif self._interval is not None:  # between fits (a flood): along the last line
            self._line_last += self._interval

    def _gap(self, since_last: float) -> bool:
        """Whether this tick came LOST_GAP intervals after the last: of the fit's interval, or
        of the last eight ticks' mean (a tempo change's new interval, before the fit has it);
        never where ticks share JACK periods (the usual bunch is more than one)."""
        if since_last >= LOST_GAP * self._interval:
            return self._usual_bunch() <= 1.0
        times = self._times
        if len(times) < 10:
            return False
        recent = [times[-k] for k in range(10, 1, -1)]  # (the nine before this tick: no copy of the window)
        if any(y != y for y in recent):
            return False
        return since_last >= LOST_GAP * (recent[-1] - recent[0]) / 8.0 and self._usual_bunch() <= 1.0

    def _hold_tick(self, t: float, close: bool) -> None:
        """A tick from a gap on, out of the fit (NaN) until LOST_LOOK of them say how many ticks
        the gap lost. A tick close to the one before is a stall's: neither says when it was sent."""
        held = self._held
        if close and held and held[-1] == held[-1]:
            held[-1] = math.nan
        held.append(math.nan if close else t)
        self._times[-1] = math.nan
        if len(held) >= SHORT:  # a flood of bunched ticks: nothing to tell from (and held stays in the window)
            self._release(0, 0, 0, 0)
        elif sum(y == y for y in held) >= LOST_LOOK:
            pre = list(self._times)[:-len(held)][-LOST_BEFORE:]
            self._release(*count_lost(pre, held, list(self._arrivals)))

    def _release(self, lost: int, at: int, more: int, keep: int) -> None:
        """The held ticks back into the fit, after `lost` ticks of unknown time (NaN) that the
        gap lost and `more` before held tick `at` (they count in the position too, as the
        device sent them); the last `keep` held on."""
        held, self._held = self._held, None
        ts = list(self._times)
        body = held[:len(held) - keep]
        ts = (ts[:len(ts) - len(held)] + [math.nan] * lost + body[:at] + [math.nan] * more + body[at:]
              + [math.nan] * keep)
        self._times = deque(ts[-WINDOW:], maxlen=WINDOW)
        if keep:
            self._held = held[len(held) - keep:]
        if lost + more:
            self._segment = min(self._segment + lost + more, len(self._times))
            self.lost += lost + more
            if self._running and self._rolling:
                self._pos += lost + more

    def _usual_bunch(self) -> float:
        return median(list(self._bunches)) if self._bunches else 1.0

    def _fit(self) -> None:
        """The tempo line over the current segment (see the module docstring)."""
        ts = list(self._times)
        n = len(ts)
        if self._segment >= TEST_TICKS:  # a tempo change inside the segment?
            short = robust_line(ts[n - SHORT:])
            before = robust_line(ts[n - self._segment:n - SHORT])
            if short is not None and before is not None:
                diff = abs(short[1] - before[1])
                if diff > BEND_Z * math.hypot(short[2], before[2]) and diff > BEND_MIN * short[1]:
                    self.changes += 1
                    self._segment -= bend(ts[n - self._segment:], SHORT)
                    self._placing = self.tick_count + RELOOK
        elif self.tick_count <= self._placing and self._segment < n:
            # a change found a few ticks after it was placed on those few: place it again, on
            # more, for RELOOK ticks (a late tick near it could fool the first placing; and a
            # change that was noise must not keep the segment short for ever)
            look = min(n, self._segment + RELOOK)
            self._segment = look - bend(ts[n - look:], SHORT)
        span = max(self._segment, min(n, SHORT))  # two beats at least: steadier, and follows in two
        line = robust_line(ts[n - span:])
        if line is None:
            self._interval = None
            return
        a, b, _se = line
        bpm = 60.0 / (b * PPQN) if b > 0 else math.inf
        if not (BPM_RANGE[0] <= bpm <= BPM_RANGE[1]):
            self._interval = None
            return
        self._interval = b
        self._line_last = a + b * (span - 1)

    def _publish(self, t: float) -> None:
        interval = self._interval
        bpm = 60.0 / (interval * PPQN) if interval is not None else None
        self._state = MidiClockState(
            running=self._running, bpm=bpm, beat=self._pos / PPQN, t_s=t, ticks=self._pos,
            line_t_s=self._line_last if interval is not None else self._last_tick_t,
            rolling=self._rolling, transport=self._transport)

    # -- anyone ----------------------------------------------------------------------------
    def state(self, t: float | None = None) -> MidiClockState:
        """The clock now (or at time `t`): bpm None once no tick has come for STALE_S."""
        state = self._state
        if state.bpm is not None:
            now = self._now() if t is None else t
            if now - self._last_tick_t > STALE_S:
                return replace(state, bpm=None)
        return state
