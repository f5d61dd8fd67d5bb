"""MidiClock (sources/midi/clock.py) fed synthetic tick streams: tempo with jitter, transport,
beat extrapolation and hostile input. Pure and fast: times are given, no clock is read."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from ganinstrument.sources.midi.clock import (
    CONTINUE,
    SONG_POSITION,
    START,
    STOP,
    TICK,
    MidiClock,
)

TOLERANCE_BPM = 0.5  # from two beats (48 ticks) after each change


def stream(segments, rng, jitter_s=0.001, t0=10.0):
    """(index, true bpm, ticks into the segment, stamped time) for each tick."""
    t, i = t0, 0
    for bpm, beats in segments:
        for k in range(round(beats * 24)):
            t += 60.0 / bpm / 24
            yield i, bpm, k, t + rng.uniform(-jitter_s, jitter_s)
            i += 1


def test_tempo_within_half_a_bpm_two_beats_after_each_change():
    worst = {}
    for seed in range(12):
        rng = random.Random(seed)
        segments = rng.sample([(90.0, 8), (128.0, 8), (174.0, 8)], 3) + [(rng.choice((90.0, 128.0, 174.0)), 6)]
        clock = MidiClock(now=lambda: 0.0)
        clock.feed(START, (), 10.0)
        for _i, bpm, k, t in stream(segments, rng):
            clock.feed(TICK, (), t)
            if k >= 47:  # two beats of the new tempo have come
                got = clock.state(t).bpm
                assert got is not None
                worst[bpm] = max(worst.get(bpm, 0.0), abs(got - bpm))
    print(f"worst |bpm error| two beats after a change, +-1 ms jitter: {worst}")
    assert set(worst) == {90.0, 128.0, 174.0}
    assert max(worst.values()) <= TOLERANCE_BPM


def test_per_tick_intervals_would_not_do():
    """The jitter is real: the tempo of single intervals is off by far more than 0.5 BPM (so the
    test above measures the fit, not an easy stream)."""
    rng = random.Random(1)
    times = [t for *_, t in stream([(174.0, 4)], rng)]
    naive = [60.0 / 24 / (b - a) for a, b in itertools.pairwise(times)]
    assert max(abs(x - 174.0) for x in naive) > 10.0


def test_small_tempo_steps_and_a_late_burst():
    """120 -> 121 -> 120.5 BPM, and a 60 ms stall where six ticks arrive stamped alike."""
    rng = random.Random(7)
    clock = MidiClock(now=lambda: 0.0)
    ticks = list(stream([(120.0, 8), (121.0, 8), (120.5, 8)], rng))
    stall = {100 + j for j in range(6)}
    for i, bpm, k, t in ticks:
        clock.feed(TICK, (), ticks[105][3] if i in stall else t)
        if k >= 47:
            assert abs(clock.state(t).bpm - bpm) <= TOLERANCE_BPM, (i, bpm, clock.state(t).bpm)


@pytest.mark.parametrize("after_beats, stall_s", [(0.5, 0.1), (1.3, 0.2), (1.3, 0.3), (2.1, 0.2), (4.0, 0.3)])
def test_a_stall_near_a_tempo_change_does_not_bend_the_tempo(after_beats, stall_s):
    """90 -> 128 BPM, and a stall (a JACK xrun, USB, the reader) that holds the ticks of
    `stall_s` back and lets them through at once, `after_beats` after the change: their
    arrival says nothing, and the tempo is within half a BPM from two beats after the change.
    (Before the bunched ticks were left out, a 0.2 s stall 1.3 beats in bent it by 18 BPM.)"""
    rng = random.Random(3)
    ticks = list(stream([(90.0, 8), (128.0, 10)], rng))
    change = ticks[8 * 24][3]
    start = change + after_beats * 60.0 / 128.0
    release = start + stall_s
    clock = MidiClock(now=lambda: 0.0)
    clock.feed(START, (), 10.0)
    for _i, bpm, k, t in ticks:
        clock.feed(TICK, (), release if start <= t < release else t)
        if bpm == 128.0 and k >= 47 and t >= release:
            assert abs(clock.state(t).bpm - 128.0) <= TOLERANCE_BPM, (k, clock.state(t).bpm)
    assert clock.bunched >= round(stall_s * 128 / 60 * 24) - 1


def _jack_show(seed: int, stalls: int):
    """90 -> 128 -> 174 BPM through a 256-frame JACK period (each tick arrives at the start of
    the next period), with `stalls` random 5..60 ms stalls (the ticks of a stall arrive together
    at its end): (tempo, ticks since that tempo began, arrival) per tick."""
    period = 256 / 48000.0
    rng = random.Random(seed)
    ticks = list(stream([(90.0, 8), (128.0, 8), (174.0, 17)], rng, t0=0.0))
    end = ticks[-1][3]
    stalls_at = [(rng.uniform(0.0, end), rng.uniform(0.005, 0.06)) for _ in range(stalls)]
    for _i, bpm, k, t in ticks:
        arrived = (math.floor(t / period) + 1) * period
        for at, length in stalls_at:
            if at <= arrived < at + length:
                arrived = (math.floor((at + length) / period) + 1) * period
        yield bpm, k, arrived


@pytest.mark.parametrize("seed", [16, 28, 42, 62, 179])
def test_jack_stalls_through_a_show_do_not_bend_the_tempo(seed):
    """Six stalls somewhere in a show (JACK xruns under load): from two beats after each change,
    within half a BPM. These seeds bent the tempo by 4.7 to 10.4 BPM before two mends (of 400
    seeds, 32 shows then failed, 2 now): stalls' bunches no longer count as the usual bunch (the
    next stall's ticks were fitted), and a change found a few ticks after it is placed again as
    ticks come (a late tick near it could place it early, keeping old ticks in the fit)."""
    clock = MidiClock(now=lambda: 0.0)
    clock.feed(START, (), 0.0)
    worst = 0.0
    for bpm, k, arrived in _jack_show(seed, stalls=6):
        clock.feed(TICK, (), arrived)
        if k >= 2 * 24 + 1:
            worst = max(worst, abs(clock.state(arrived).bpm - bpm))
    assert worst <= TOLERANCE_BPM, worst


def _through_jack(ticks, frames=256, drop=(), stalls=()):
    """(tempo, ticks into its segment, arrival) of each tick that arrives: each at the start of
    the JACK period after it was sent; the ticks of a stall (at, length) at once at its end;
    the ticks numbered in `drop` never."""
    period = frames / 48000.0
    for i, bpm, k, t in ticks:
        arrived = (math.floor(t / period) + 1) * period
        for at, length in stalls:
            if at <= arrived < at + length:
                arrived = (math.floor((at + length) / period) + 1) * period
        if i not in drop:
            yield bpm, k, arrived


@pytest.mark.parametrize("bpm", [90.0, 128.0, 174.0])
def test_a_lost_tick_bends_neither_the_tempo_nor_the_position(bpm):
    """An xrun can drop a period's MIDI. One lost tick slips every later tick's number by one;
    fitted as it came it bent the tempo by 1.5 / 48 of itself (2.8 BPM at 90, 5.6 at 174, the
    CI failure of test_perform_tempo_jack). The gap it leaves is found, and the lost tick
    counted, in the tempo's fit and in the position."""
    for seed, dropped in ((1, 100), (2, 151), (3, 230)):
        ticks = list(stream([(bpm, 14)], random.Random(seed), t0=0.0))
        clock = MidiClock(now=lambda: 0.0)
        clock.feed(START, (), 0.0)
        worst = 0.0
        for _bpm, k, arrived in _through_jack(ticks, drop={dropped}):
            clock.feed(TICK, (), arrived)
            if k >= 48:
                worst = max(worst, abs(clock.state(arrived).bpm - bpm))
        assert worst <= TOLERANCE_BPM, (seed, worst)
        assert clock.lost == 1 and clock.state(ticks[-1][3]).ticks == len(ticks) - 1


@pytest.mark.parametrize("seed", [3, 5, 8])
def test_lost_ticks_among_stalls_and_tempo_changes(seed):
    """Two ticks lost and three stalls in a 90 -> 128 -> 174 show (in the simulation behind
    this test, 200 shows: 0.5 / 1 / 4.5 % of them off by more than half a BPM at 90 / 128 /
    174 BPM, against 31 / 38 / 85 % before; the rest are ticks lost within a few of a tempo
    change, where the line before the gap is not yet the new tempo's)."""
    rng = random.Random(seed)
    ticks = list(stream([(90.0, 8), (128.0, 8), (174.0, 17)], rng, t0=0.0))
    stalls = [(rng.uniform(0.0, ticks[-1][3]), rng.uniform(0.005, 0.06)) for _ in range(3)]
    changes = {0, 8 * 24, 16 * 24}
    drop = set(rng.sample([i for i in range(30, len(ticks)) if all(abs(i - c) > 30 for c in changes)], 2))
    clock = MidiClock(now=lambda: 0.0)
    clock.feed(START, (), 0.0)
    worst = 0.0
    for bpm, k, arrived in _through_jack(ticks, drop=drop, stalls=stalls):
        clock.feed(TICK, (), arrived)
        if k >= 2 * 24 + 1:
            worst = max(worst, abs(clock.state(arrived).bpm - bpm))
    assert worst <= TOLERANCE_BPM, (sorted(drop), worst)
    assert clock.lost == 2 and clock.state(ticks[-1][3] + 0.01).ticks == len(ticks) - 1


@pytest.mark.parametrize("frames", [64, 256, 1024, 2048])
def test_no_tick_is_counted_lost_when_none_was(frames):
    """Slower tempos (a gap like a lost tick's, but the ticks drift on), JACK periods the ticks
    share, and a period a little shorter than the interval (one tick a period, skipping one
    now and then, as a loss would): nothing lost, the position exact."""
    for segments in ([(174.0, 8), (90.0, 8), (140.0, 8), (100.0, 8)], [(120.0, 8), (104.0, 8), (80.0, 8), (60.0, 8)],
                     [(200.0, 8), (150.0, 8), (115.0, 8)]):
        for seed in range(6):
            ticks = list(stream(segments, random.Random(seed), t0=0.0))
            clock = MidiClock(now=lambda: 0.0)
            clock.feed(START, (), 0.0)
            for _bpm, _k, arrived in _through_jack(ticks, frames):
                clock.feed(TICK, (), arrived)
            assert clock.lost == 0, (frames, segments, seed)
            assert clock.state(arrived).ticks == len(ticks) - 1


@pytest.mark.parametrize("frames, rate, bpm", [(1024, 48000, 110.0), (1024, 48000, 116.2), (1024, 44100, 101.0),
                                               (512, 48000, 219.0), (2048, 48000, 55.0)])
def test_one_tick_a_period_skipping_one_now_and_then_is_no_loss(frames, rate, bpm):
    """A JACK period a little shorter than the tick interval: each tick comes one period after
    the last, and now and then a period has none, a gap as long as a lost tick's. (The review
    found these tempos counted 10 phantom ticks in 16 beats, the position running ahead.)"""
    period = frames / rate
    rng = random.Random(2)
    ticks = list(stream([(bpm, 32)], rng, jitter_s=0.0005, t0=0.013))
    clock = MidiClock(now=lambda: 0.0)
    clock.feed(START, (), 0.0)
    for _i, _bpm, _k, t in ticks:
        arrived = (math.floor(t / period) + 1) * period
        clock.feed(TICK, (), arrived)
    assert clock.lost == 0 and clock.state(arrived).ticks == len(ticks) - 1


def test_a_pause_across_stop_and_continue_is_not_lost_ticks():
    """A device that stops its clock on Stop and starts it again on Continue leaves a gap that
    may be a whole number of ticks long: its pause, not ticks lost (the position is its)."""
    rng = random.Random(6)
    for pause_ticks in (1.0, 2.0, 3.0, 4.0):
        clock = MidiClock(now=lambda: 0.0)
        clock.feed(START, (), 0.0)
        interval = 60.0 / 120.0 / 24
        t = 0.0
        for _ in range(48):
            t += interval
            clock.feed(TICK, (), t + rng.uniform(-0.001, 0.001))
        clock.feed(STOP, (), t + 0.002)
        clock.feed(CONTINUE, (), t + 0.003)
        t += pause_ticks * interval
        for _ in range(24):
            t += interval
            clock.feed(TICK, (), t + rng.uniform(-0.001, 0.001))
        assert clock.lost == 0 and clock.state(t + 0.002).ticks == 48 + 24 - 1, pause_ticks


def test_a_flood_after_a_gap_is_not_held_for_ever():
    """Ticks held after a gap wait for ticks that say something; a flood stamped alike says
    nothing, so they are let go (the held ticks stay inside the fit's window) and the clock
    goes on: every tick counted, a tempo again once ticks come apart."""
    clock = MidiClock(now=lambda: 0.0)
    clock.feed(START, (), 0.0)
    t = 0.0
    for _ in range(60):
        t += 0.02
        clock.feed(TICK, (), t)
    t += 0.1
    for _ in range(3000):
        clock.feed(TICK, (), t)
    for _ in range(200):
        t += 0.02
        clock.feed(TICK, (), t)
    state = clock.state(t)
    assert state.ticks == 60 + 3000 + 200 - 1 and clock.lost == 0
    assert state.bpm == pytest.approx(125.0, abs=0.5)


@pytest.mark.parametrize("frames", [1024, 2048, 4096])
def test_a_long_jack_period_bunches_ticks_without_being_taken_for_a_stall(frames):
    """A JACK period longer than a tick delivers each period's ticks together, every period:
    the usual bunch, fitted as it comes (least squares over the period's steps is unbiased)."""
    period = frames / 48000.0
    rng = random.Random(4)
    clock = MidiClock(now=lambda: 0.0)
    clock.feed(START, (), 10.0)
    errors = []
    for _i, _bpm, k, t in stream([(174.0, 16)], rng):
        arrived = (math.floor(t / period) + 1) * period
        clock.feed(TICK, (), arrived)
        if k >= 96:
            errors.append(abs(clock.state(arrived).bpm - 174.0))
    # (at most the first period's ticks, before the usual bunch is known)
    per_period = math.ceil(period / (60.0 / 174.0 / 24)) + 1
    assert clock.bunched <= per_period and max(errors) < 2.5, (clock.bunched, max(errors))


def test_tempo_needs_a_beat_and_goes_after_two_silent_seconds():
    clock = MidiClock(now=lambda: 0.0)
    t = 0.0
    for n in range(1, 30):
        t += 60.0 / 120.0 / 24
        clock.feed(TICK, (), t)
        assert (clock.state(t).bpm is None) == (n < 24)
    assert clock.state(t + 1.9).bpm == pytest.approx(120.0, abs=0.01)
    assert clock.state(t + 2.1).bpm is None
    clock.feed(TICK, (), t + 3.0)  # a clock that starts again: no tempo until a beat has come
    assert clock.state(t + 3.0).bpm is None


def test_start_stop_continue_song_position():
    clock = MidiClock(now=lambda: 0.0)
    dt = 60.0 / 120.0 / 24
    t = 0.0

    def ticks(n):
        nonlocal t
        for _ in range(n):
            t += dt
            clock.feed(TICK, (), t)

    ticks(30)  # a clock before Start: tempo, no position
    s = clock.state(t)
    assert not s.running and s.ticks == 0 and s.beat == 0.0 and s.bpm == pytest.approx(120.0)
    clock.feed(START, (), t)
    s = clock.state(t)
    assert s.running and s.beat == 0.0 and s.beat_at(t + 0.1) == 0.0  # nothing moves before a tick
    ticks(1)
    assert clock.state(t).beat == 0.0  # the first tick after Start is beat 0
    ticks(24)
    assert clock.state(t).beat == 1.0 and clock.state(t).ticks == 24
    clock.feed(STOP, (), t + 0.001)
    ticks(10)  # ticks while stopped keep the tempo, not the position
    s = clock.state(t)
    assert not s.running and s.beat == 1.0 and s.beat_at(t + 5.0) == 1.0 and s.bpm is not None
    clock.feed(CONTINUE, (), t)
    ticks(1)  # Continue without SPP: the next position after the last tick played
    assert clock.state(t).ticks == 25
    clock.feed(STOP, (), t)
    clock.feed(SONG_POSITION, (0x10, 0x01), t)  # (1 << 7 | 16) = 144 sixteenths = beat 36
    assert clock.state(t).beat == 36.0 and not clock.state(t).running
    clock.feed(CONTINUE, (), t)
    ticks(1)
    assert clock.state(t).beat == 36.0
    ticks(6)
    assert clock.state(t).beat == 36.25
    clock.feed(START, (), t)
    assert clock.state(t).beat == 0.0 and clock.state(t).ticks == 0


def test_beat_at_extrapolates_at_most_one_tick_and_never_goes_back():
    rng = random.Random(3)
    clock = MidiClock(now=lambda: 0.0)
    clock.feed(START, (), 10.0)
    ticks = list(stream([(128.0, 6)], rng, jitter_s=0.002))
    late = {60, 61, 90}  # these arrive 8 ms late
    last, moved = -math.inf, 0
    for i, _bpm, _k, t in ticks:
        arrival = t + (0.008 if i in late else 0.0)
        # the engine reads in between ticks, at arbitrary times, and then at the arrival
        for q in sorted(rng.uniform(arrival - 0.012, arrival) for _ in range(4)):
            if q < clock.state(q).t_s:
                continue
            s = clock.state(q)
            b = s.beat_at(q)
            assert s.beat <= b <= s.beat + 1 / 24 + 1e-12
            assert b >= last - 1e-12, (i, b, last)
            moved += b > s.beat
            last = b
        clock.feed(TICK, (), arrival)
    assert moved > 50  # it did extrapolate between ticks
    s = clock.state(ticks[-1][3])
    # long after the last tick: one tick ahead at most
    assert s.beat_at(ticks[-1][3] + 1.0) == pytest.approx(s.beat + 1 / 24)
    # at a steady tempo the extrapolation follows the tempo
    mid = s.line_t_s + 0.5 * 60.0 / 128.0 / 24
    assert s.beat_at(mid) == pytest.approx(s.beat + 0.5 / 24, abs=0.2 / 24)


def test_hostile_input_never_raises_nor_makes_nan():
    rng = random.Random(5)
    clock = MidiClock(now=lambda: 0.0)
    clock.feed(STOP, (), 0.0)  # a Stop without Start
    clock.feed(CONTINUE, (), 0.0)
    clock.feed(SONG_POSITION, (200, 255), 0.0)  # data bytes > 127
    clock.feed(SONG_POSITION, (1,), 0.0)  # one byte short
    clock.feed(SONG_POSITION, None, 0.0)
    clock.feed(SONG_POSITION, "xy", 0.0)
    assert clock.malformed == 4
    clock.feed("no", (), 0.0)
    clock.feed(0x90, (1, 2), 0.0)  # not a clock message
    clock.feed(TICK, (), float("nan"))
    clock.feed(TICK, (), float("inf"))
    clock.feed(TICK, (), -1e300)
    t = 1.0
    for n in range(5000):  # a flood, in bytes out of order, with stamps that repeat and go back
        status = rng.choice([TICK, TICK, TICK, START, STOP, CONTINUE, SONG_POSITION, 0xF1, 0xFE, 0xFF, 0x00])
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(4)))
        t += rng.choice([0.0, 0.0, 1e-4, -0.01, 0.02])
        clock.feed(status, data, t)
        s = clock.state(t)
        assert s.bpm is None or (math.isfinite(s.bpm) and 20.0 <= s.bpm <= 500.0)
        assert math.isfinite(s.beat) and math.isfinite(s.beat_at(t + 0.01)) and s.ticks >= 0
    assert clock.backwards > 0 and clock.ignored > 0
    for _ in range(2000):  # ticks all stamped alike: no tempo, not an infinite one
        clock.feed(TICK, (), t)
    assert clock.state(t).bpm is None


def test_two_clocks_at_once_are_counted():
    clock = MidiClock(now=lambda: 0.0)
    t = 0.0
    for _ in range(48):
        t += 0.01
        clock.feed(TICK, (), t, "drum-machine:out")
        clock.feed(TICK, (), t + 0.003, "daw:out")
    assert clock.conflicts >= 90
    alone = MidiClock(now=lambda: 0.0)
    for n in range(48):
        alone.feed(TICK, (), 0.01 * n, "drum-machine:out")
    alone.feed(TICK, (), 5.0, "daw:out")  # the other device takes over after a pause: fine
    assert alone.conflicts == 0
