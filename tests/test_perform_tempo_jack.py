"""`perform --tempo midi` follows a drum machine's MIDI clock through real JACK MIDI (issue 15).

One show (a module fixture, ~20 s) is judged by the tests below. A drum machine's clock in its
own process (test_midi_clock_jack.py's sender: each tick paced to an absolute deadline, +-1 ms
seeded jitter) plays Start, then ticks without a break: eight beats at 90 BPM, eight at 128,
then 174 (the changes mid-stream). Its transport buttons, a second JACK MIDI port in this
process, press Stop about eight beats into the 174 stretch, then (ticks going on, as a drum
machine's do) a Song Position Pointer to beat 16 three beats later, and Continue a beat after
that; four more beats of ticks follow. The real `perform` command (in-process, as
tests/test_perform_e2e.py runs it; demo model, null output, `--midi-port` matching both ports)
follows it and writes --log-params at 30 fps. Each row's clock is judged against what was
sent, at the row's host time: `t_host_us` is CLOCK_MONOTONIC, the clock of the senders' time
stamps (time.perf_counter).

The tolerances are the requirement's, not what was measured: the tempo within 0.5 BPM from two
beats after each change on; the beat within two ticks (JACK delivers a period's messages
together, 0..5.3 ms late, and the reader thread adds its own) plus one frame (the frame's time
is taken before the beat clock is read). The true beat at a host time is the sender's tick
count there (tick k after the Start, or after the Continue, is position k, or SPP + k),
interpolated between ticks.
"""

from __future__ import annotations

import bisect
import itertools
import json
import threading
import time
from dataclasses import dataclass

import pytest
from jack_helpers import JACK_BACKEND, JackSender, wait_for
from test_midi_clock_jack import TOLERANCE_BPM, ClockSender

from ganinstrument.commands.cli import main

pytestmark = pytest.mark.timeout(120)
CLIENT = "test-tempo-clock"  # --midi-port: matches both ports below
TRANSPORT = f"{CLIENT}-transport"  # the drum machine's transport buttons (in this process)
FPS = 30
FRAMES = 540  # 18 s at 30 fps: the clock's ~15 s after the first row, and room to spare
PPQN = 24
LATENCY_TICKS = 2  # a tick reaches the frames within two ticks (a JACK period, the reader thread)
PERIOD_S = 256 / 48000  # the test JACK server's period: messages of one period arrive together
# Start, then ticks without a break: 90, 128 and 174 BPM. Into the 174 stretch, the transport
# port sends Stop, an SPP and Continue at about these beats (counted from the Start).
SEGMENTS = [(90.0, 8), (128.0, 8), (174.0, 17)]
AT_STOP, AT_SPP, AT_CONTINUE = 24.4, 27.4, 28.6
SPP_SIXTEENTHS = 64  # beat 16
STOP, CONTINUE, SPP = 0xFC, 0xFB, 0xF2


@dataclass
class Show:
    rows: list[dict]
    t_before: float  # perf_counter before perform started / after it ended
    t_after: float
    t_start: float  # just before the Start was asked for
    ticks: list[float]  # when each tick was sent
    stop: tuple[float, float]  # perf_counter just before and after the Stop was sent
    spp: tuple[float, float]
    cont: tuple[float, float]
    jack: str  # what the JACK server logged during the show (xruns lose or delay MIDI)


@pytest.fixture(scope="module")
def show(jack_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tempo")
    log = tmp / "params.jsonl"
    args = ["perform", "--model", "demo", "--device", "cpu", "--tempo", "midi", "--midi-port", CLIENT,
            "--output", "null", "--audio-device", "none", "--osc-port", "off", "--no-restart",
            "--presets-dir", str(tmp), "--log-params", str(log), "--fps", str(FPS),
            "--max-frames", str(FRAMES)]
    result = {}
    with pytest.MonkeyPatch.context() as mp, JackSender(TRANSPORT) as transport:
        mp.setenv("MIDO_BACKEND", JACK_BACKEND)
        sender = ClockSender(CLIENT)
        try:
            xruns_before = jack_server.xruns()
            t_before = time.perf_counter()
            runner = threading.Thread(target=lambda: result.setdefault("rc", main(args)), daemon=True)
            runner.start()
            # the engine runs (its first rows reach the disk within a second) and hears both ports
            assert wait_for(lambda: log.exists() and log.read_text().count("\n") >= 1, 60.0), "perform did not start"
            connections = jack_server.connections()
            assert f"{CLIENT}:out" in connections and f"{TRANSPORT}:out" in connections, connections
            t_start = time.perf_counter()
            sender.start(cmd="clock", start=True, segments=SEGMENTS, jitter_s=0.001, seed=15)
            due = _schedule(t_start + 0.02)  # (the sender's first deadline is 20 ms after it reads)
            sent = {}
            for name, beat, data in (("stop", AT_STOP, [STOP]),
                                     ("spp", AT_SPP, [SPP, SPP_SIXTEENTHS & 0x7F, SPP_SIXTEENTHS >> 7]),
                                     ("cont", AT_CONTINUE, [CONTINUE])):
                while (left := due(beat) - time.perf_counter()) > 0:
                    time.sleep(min(left, 0.005))
                before = time.perf_counter()
                transport.send(*data)
                sent[name] = (before, time.perf_counter())
            reply = sender.result()
            runner.join(timeout=60)
            t_after = time.perf_counter()
        finally:
            sender.close()
    assert not runner.is_alive(), "perform did not stop after --max-frames"
    assert result.get("rc") == 0
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == FRAMES
    assert reply["sent"] == len(reply["times"]) == _starts(SEGMENTS)[-1]
    jack = _xruns_since(xruns_before, jack_server.xruns())
    s = Show(rows, t_before, t_after, t_start, reply["times"], **sent, jack=jack)
    assert _host_s(rows[-1]) > s.ticks[-1] + 0.1, "perform stopped before the clock did: raise FRAMES"
    return s


def _xruns_since(before: dict | None, after: dict | None) -> str:
    if before is None or after is None:
        return "JACK: a server not started here"
    late = {c: n - before["late clients"].get(c, 0) for c, n in after["late clients"].items()
            if n > before["late clients"].get(c, 0)}
    return f"JACK during the show: {after['xruns'] - before['xruns']} xruns, late clients {late}"


def _schedule(t0: float):
    """When (about) the sender's clock reaches `beat`, its first deadline at t0."""
    def due(beat: float) -> float:
        t, left = t0, beat
        for bpm, beats in SEGMENTS:
            step = min(left, beats)
            t, left = t + step * 60.0 / bpm, left - step
        return t
    return due


def _around(ticks: list[float], sent: tuple[float, float]) -> list[int]:
    """The ticks that may have reached the instrument either side of a message sent between
    sent[0] and sent[1]: those sent within two JACK periods of it (one period's messages arrive
    together, in no set order across ports, and a write may miss its cycle)."""
    return [k for k, t in enumerate(ticks) if sent[0] - 2 * PERIOD_S < t < sent[1] + 2 * PERIOD_S]


def _host_s(row: dict) -> float:
    return row["clock"]["t_host_us"] / 1e6


def _rows_between(show: Show, t0: float, t1: float) -> list[dict]:
    return [r for r in show.rows if t0 <= _host_s(r) <= t1]


def _true_beat(ticks: list[float], t: float) -> float:
    """The position (beats) at host time t of a stream whose tick k is position k, from its
    first tick to its last."""
    assert ticks[0] <= t <= ticks[-1], t
    k = min(bisect.bisect_right(ticks, t) - 1, len(ticks) - 2)
    return (k + (t - ticks[k]) / (ticks[k + 1] - ticks[k])) / PPQN


def _beat_tolerance(bpm: float) -> float:
    return LATENCY_TICKS / PPQN + bpm / 60 / FPS  # two ticks plus one frame, in beats


def _starts(segments) -> list[int]:
    """The index of each segment's first tick."""
    out, n = [], 0
    for _, beats in segments:
        out.append(n)
        n += round(beats * PPQN)
    return out + [n]


def _since_change(show: Show, i: int) -> float:
    """From when segment i's tempo is judged: two beats at the new tempo (48 intervals: they
    end at tick first + 47, or first + 48 after the Start, whose first tick has no interval
    before it), then the latency the beat is allowed, two ticks, for that tick to arrive."""
    first = _starts(SEGMENTS)[i]
    return show.ticks[first + 2 * PPQN - (1 if i else 0) + LATENCY_TICKS]


def _latency_s(bpm: float) -> float:
    return 2 * PERIOD_S + 1 / FPS + LATENCY_TICKS * 60 / bpm / PPQN  # a message sent -> a row that shows it


def test_clock_source_is_midi_and_tempo_within_half_a_bpm(show):
    """From two beats after each tempo change to the next (the last stretch through Stop, SPP
    and Continue: the drum machine's clock goes on at its tempo): bpm within 0.5 of the true
    tempo. While the clock runs (from its first beat, the tempo's), the source is "midi"."""
    bounds = _starts(SEGMENTS)
    worst = []
    for i, (bpm, _beats) in enumerate(SEGMENTS):
        since, until = _since_change(show, i), show.ticks[bounds[i + 1] - 1]
        judged = _rows_between(show, since, until)
        assert len(judged) >= 0.8 * (until - since) * FPS, (bpm, len(judged))
        errors = [abs(r["clock"]["bpm"] - bpm) for r in judged]
        worst.append(round(max(errors), 3))
        assert max(errors) <= TOLERANCE_BPM, (bpm, show.jack, [(r["frame"], round(_host_s(r) - since, 3), r["clock"]["bpm"])
                                                   for r in judged if abs(r["clock"]["bpm"] - bpm) > TOLERANCE_BPM])
    running = _rows_between(show, show.ticks[PPQN - 1 + LATENCY_TICKS], show.ticks[-1])
    assert [(r["frame"], r["clock"]["source"]) for r in running if r["clock"]["source"] != "midi"] == []
    print(f"worst |bpm error| from two beats after each change, at {[b for b, _ in SEGMENTS]} BPM: {worst}")


def _beat_errors(show: Show, ticks: list[float], origin: float, t0: float, t1: float):
    """(frame, beat, beat - the true beat) of the rows from t0 to t1; `ticks[0]` is at
    position `origin`."""
    rows = _rows_between(show, t0, t1)
    assert len(rows) >= 0.8 * (t1 - t0) * FPS - 1, len(rows)
    return [(r["frame"], r["clock"]["beat"], r["clock"]["beat"] - (origin + _true_beat(ticks, _host_s(r))))
            for r in rows]


def test_start_counts_from_bar_one_beat_one(show):
    """From the Start on, through the first 90 BPM stretch, the beat is the clock's position
    (0 at the Start, bar 1 beat 1) within two ticks plus a frame, and the source is "midi"."""
    tolerance = _beat_tolerance(90.0)
    before_first_tick = _rows_between(show, show.t_start + 0.03, show.ticks[0])
    errors = _beat_errors(show, show.ticks, 0.0, show.ticks[0], show.ticks[_starts(SEGMENTS)[1] - 1])
    print(f"beat error after the Start (beats): max |e| {max(abs(e[2]) for e in errors):.3f}")
    assert [(r["frame"], r["clock"]["beat"]) for r in before_first_tick
            if not 0.0 <= r["clock"]["beat"] <= tolerance] == []
    assert [e for e in errors if abs(e[2]) > tolerance] == []
    assert all(r["clock"]["source"] == "midi" for r in _rows_between(show, show.t_start + 0.03, show.ticks[-1]))


def test_beat_follows_the_clock_after_each_tempo_change(show):
    """From two beats after each tempo change to the next change (the last: to the Stop), the
    beat is the clock's position (counted from the Start) within two ticks plus a frame."""
    bounds = _starts(SEGMENTS)
    worst = []
    for i in (1, 2):
        bpm = SEGMENTS[i][0]
        until = show.ticks[bounds[i + 1] - 1] if i + 1 < len(SEGMENTS) else show.stop[0]
        errors = _beat_errors(show, show.ticks, 0.0, _since_change(show, i), until)
        worst.append(round(max(abs(e[2]) for e in errors), 3))
        assert [e for e in errors if abs(e[2]) > _beat_tolerance(bpm)] == [], (bpm, show.jack)
    print(f"worst |beat error| (beats) at 128 and 174 BPM: {worst} "
          f"(tolerances {[round(_beat_tolerance(b), 3) for b, _ in SEGMENTS[1:]]}); {show.jack}")


def test_stop_holds_and_song_position_continues(show):
    """Stop: the beat holds at the position of the last tick before it (ticks go on; which
    tick that was is uncertain only for ticks sent within two JACK periods of the Stop). An
    SPP while stopped: the beat goes to the pointer (beat 16) and holds there. Continue: the
    beat waits for the next tick, which is beat 16, and follows the clock from there."""
    bpm = SEGMENTS[-1][0]
    latency = _latency_s(bpm)
    ticks = show.ticks
    last_before = max(k for k, t in enumerate(ticks) if t <= show.stop[0] - 2 * PERIOD_S)
    may_hold = {(k / PPQN) for k in [last_before, *_around(ticks, show.stop)]}
    stopped = _rows_between(show, show.stop[1] + latency, show.spp[0])
    assert len(stopped) >= 0.8 * (show.spp[0] - show.stop[1] - latency) * FPS - 1, len(stopped)
    held = {r["clock"]["beat"] for r in stopped}
    assert len(held) == 1 and held <= may_hold, (held, may_hold, show.jack)
    assert all(r["clock"]["source"] == "midi" for r in stopped)

    spp = SPP_SIXTEENTHS / 4
    pointed = _rows_between(show, show.spp[1] + latency, show.cont[0])
    assert len(pointed) >= 0.8 * (show.cont[0] - show.spp[1] - latency) * FPS - 1, len(pointed)
    assert [(r["frame"], r["clock"]["beat"]) for r in pointed if r["clock"]["beat"] != spp] == []

    # the first tick after the Continue, at beat 16: the first one sent after it, or one sent
    # within two JACK periods of it (then either may be first)
    first_after = min(k for k, t in enumerate(ticks) if t >= show.cont[1] + 2 * PERIOD_S)
    candidates = sorted({first_after, *_around(ticks, show.cont)})
    tolerance = _beat_tolerance(bpm)
    waiting = _rows_between(show, show.cont[0], ticks[candidates[0]])
    assert [(r["frame"], r["clock"]["beat"]) for r in waiting if not spp <= r["clock"]["beat"] <= spp + tolerance] == []
    fits = {}
    for first in candidates:
        errors = _beat_errors(show, ticks[first:], spp, ticks[candidates[-1]], ticks[-1])
        fits[first] = max(abs(e[2]) for e in errors)
    print(f"held at beat {held} over {len(stopped)} frames (ticks that may be last: {sorted(may_hold)}); "
          f"after the SPP and Continue, max |beat error| {min(fits.values()):.3f} beats (tolerance {tolerance:.3f}; "
          f"first tick after the Continue among {candidates})")
    assert min(fits.values()) <= tolerance, (fits, show.jack)


def test_host_time_rises_with_the_frames(show):
    """`t_host_us` is the frame's time on the host monotonic clock: it rises with the frame
    number, lies within the show on time.perf_counter's clock, and is the row's `t` (seconds
    since the first frame) plus one fixed origin."""
    frames = [r["frame"] for r in show.rows]
    host = [r["clock"]["t_host_us"] for r in show.rows]
    assert frames == list(range(FRAMES))
    assert all(b > a for a, b in itertools.pairwise(host))
    assert show.t_before * 1e6 < host[0] and host[-1] < show.t_after * 1e6
    origin = [h - r["t"] * 1e6 for h, r in zip(host, show.rows)]
    assert max(origin) - min(origin) <= 2.0  # (both rounded to the microsecond)
