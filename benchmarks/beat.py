"""Playing in time, per frame: the beat clock, LFOs, their modulation routes, MIDI clock in and
quantized actions (issue 15), each timed call by call on the engine's own objects.

- beat clock: `BeatSource.read()` once a frame at 60 fps on a FakeClock at 120 BPM, (a) tempo
  by hand (values read from the instrument's state each frame, as `perform` wires it) and (b)
  following a MidiClock that gets its 24 ppqn ticks between the frames (the ticks untimed), and
  (c) in an Ableton Link session (the protocol without its sockets) alone, leading it, and with
  one other peer, following it;
- LFOs: `LfoSource.read()` for 1, 8 and 32 LFOs of mixed shapes (every shape, rates in beats,
  bars and Hz);
- modulation routes: those LFOs routed to the demo instrument's targets (one route each, add
  and multiply, several on a target when there are more LFOs than targets): `Modulation.feed`
  of the LFOs' reading plus `Modulation.apply` on the frame's base values (the reading itself
  untimed; it is the line above), the registry from `Instrument("demo", device="cpu")` and the
  mapping parsed with `parse_mapping`;
- MIDI clock in: `MidiClock.feed` per tick (0xF8) on a synthetic clock at 90, 128 and 174 BPM
  whose ticks arrive with +-1 ms of uniform jitter (seeded), and, as a sanity figure, the
  tempo error it reaches: |bpm - true| over the ticks after the first four beats;
- quantizer: `Quantizer.due()` once a frame with 0, 1 and 64 actions waiting (grids from a
  1/16 to 4 bars; actions that fire are held again, untimed, so as many always wait).

Figures are p50 / p99 of each call's wall time (perf_counter_ns, its own ~0.1 us included) in
microseconds, after a short warm-up, with the garbage collector on as in the show. They are
for comparing changes on one machine; the machine is printed first.

Usage:
    python benchmarks/beat.py                 # about 20 s on a 2-core CPU
    python benchmarks/beat.py --frames 2000   # quicker, noisier p99
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import time

import numpy as np

from ganinstrument.common.clock import FakeClock
from ganinstrument.common.events import ParamUpdate
from ganinstrument.engine.quantize import MAX_PENDING, Quantizer
from ganinstrument.instrument.facade import Instrument
from ganinstrument.mapping import parse_mapping
from ganinstrument.mapping.schema import LFO_SHAPES, QUANTIZE_GRIDS
from ganinstrument.modulation.beat import BeatSource
from ganinstrument.modulation.beat_clock import BeatClock
from ganinstrument.modulation.lfo import LfoSource
from ganinstrument.modulation.routes import Modulation
from ganinstrument.sources.link.session import LinkProtocol
from ganinstrument.sources.link.wire import RESPONSE, PeerState, StartStop, encode_discovery
from ganinstrument.sources.midi.clock import PPQN, START, TICK, MidiClock

FPS = 60
BPM = 120.0
LFO_COUNTS = (1, 8, 32)
MIDI_TEMPOS = (90.0, 128.0, 174.0)
JITTER_S = 0.001
WAITING = (0, 1, 64)
RATES = ("1", "1/8.", "2 bars", "1/4t", "0.3 hz", "4", "1/16", "3")  # beats, bars and Hz, mixed
TARGETS = ("z.0", "z.1", "z.2", "z.3", "z.4", "z.5", "z.6", "z.7", "psi", "cutoff", "mix.amount",
           "edit.b4", "edit.b8", "edit.b16", "edit.b32", "edit.b64", "edit.b128", "edit.b256")


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"machine: {model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; load average {load}")


def figure(label: str, ns: list[int], extra: str = "") -> None:
    us = np.asarray(ns, dtype=np.float64) / 1e3
    p50, p99 = np.percentile(us, [50, 99])
    print(f"  {label:<34} p50 {p50:8.2f} us  p99 {p99:8.2f} us  (n={us.size}){extra}", flush=True)


def warm(frames: int) -> int:
    return min(200, max(1, frames // 10))


# -- the beat clock --------------------------------------------------------------------------------
def bench_beat(inst: Instrument, frames: int) -> None:
    print(f"\nbeat clock: BeatSource.read() per frame at {FPS} fps, FakeClock, {BPM:g} BPM")
    clock = FakeClock()
    source = BeatSource(clock, BeatClock(BPM, t0=0.0), values=inst.state.values, mode="tap")
    figure("by hand (values from the state)", _time_reads(source, clock, frames))

    clock = FakeClock()
    midi = MidiClock(now=clock.now)
    source = BeatSource(clock, BeatClock(BPM, t0=0.0), values=inst.state.values, midi=midi, mode="midi")
    tick_s = 60.0 / (BPM * PPQN)
    midi.feed(START, b"", 0.0)
    ticks = [0]

    def feed_ticks(t: float) -> None:  # the ticks that came since the last frame (untimed)
        while ticks[0] * tick_s <= t:
            midi.feed(TICK, b"", ticks[0] * tick_s)
            ticks[0] += 1

    ns = _time_reads(source, clock, frames, before=feed_ticks)
    now = source.now
    figure("following MIDI clock", ns, f"  source {now.source}, {now.bpm:.2f} BPM at the end")

    for peers in (0, 1):
        clock = FakeClock()
        source = BeatSource(clock, BeatClock(BPM, t0=0.0), values=inst.state.values, mode="auto",
                            link=_BenchLink(clock, peers))
        ns = _time_reads(source, clock, frames)
        now = source.now
        figure(f"in a Link session, {peers} other peer{'s' * (peers != 1)}", ns,
               f"  source {now.source}, {now.bpm:.2f} BPM at the end")


def _time_reads(source: BeatSource, clock: FakeClock, frames: int, before=None) -> list[int]:
    """`source.read()` timed once a frame at FPS (after `before(t)`, untimed), the warm-up dropped."""
    ns = []
    for k in range(frames + warm(frames)):
        t = k / FPS
        if before is not None:
            before(t)
        clock.set(t)
        t0 = time.perf_counter_ns()
        source.read()
        ns.append(time.perf_counter_ns() - t0)
    return ns[warm(frames):]


class _BenchLink:
    """A Link peer without the network (LinkProtocol, a transport that sends nowhere), as
    BeatSource sees a LinkNode; with `peers`, a peer of our own session announced to it (so the
    clock follows the session)."""

    def __init__(self, clock: FakeClock, peers: int):
        self.clock = clock
        self.protocol = LinkProtocol(self, 0, 132.0)
        for n in range(peers):
            node = bytes([n + 1]) * 8
            state = PeerState(node, self.protocol.session_id, self.protocol.timeline, StartStop(), ("10.0.0.2", 9))
            self.protocol.on_discovery("10.0.0.1", ("10.0.0.2", 20808), encode_discovery(RESPONSE, 5, node, state), 0)

    def state(self):
        return self.protocol.state()

    def commit(self, host_s: float, bpm: float, beats: float | None = None) -> None:
        self.protocol.commit(host_s * 1e6, bpm, beats, round(self.clock.now() * 1e6))

    def gateways(self):
        return []

    def endpoint(self, gateway):
        return ("10.0.0.1", 9)

    def send(self, gateway, channel, data, to):
        pass

    def wake(self):
        pass


# -- LFOs and their routes ---------------------------------------------------------------------------
def mapping_text(n: int) -> str:
    lines = ["schema_version: 1", "lfos:"]
    for i in range(n):
        shape = LFO_SHAPES[i % len(LFO_SHAPES)]
        lines.append(f"  - {{name: l{i}, shape: {shape}, rate: {RATES[i % len(RATES)]}, "
                     f"phase: {(i * 0.13) % 1.0:.2f}, width: 0.25}}")
    lines.append("modulation:")
    for i in range(n):
        mode = "multiply" if i % 3 == 2 else "add"
        lines.append(f"  - {{feature: lfo.l{i}, target: {TARGETS[i % len(TARGETS)]}, depth: 0.5, mode: {mode}}}")
    return "\n".join(lines) + "\n"


def bench_lfos(inst: Instrument, frames: int) -> None:
    shapes = ", ".join(LFO_SHAPES)
    print(f"\nLFOs: LfoSource.read() per frame ({shapes}; rates {', '.join(RATES)})")
    sources = {}
    for n in LFO_COUNTS:
        mapping = parse_mapping(mapping_text(n), f"bench-{n}.yaml", inst.registry)
        clock = FakeClock()
        lfo = LfoSource(mapping.lfos, clock, BeatClock(BPM))
        ns = []
        for k in range(frames + warm(frames)):
            clock.set(k / FPS)
            t0 = time.perf_counter_ns()
            lfo.read()
            ns.append(time.perf_counter_ns() - t0)
        figure(f"{n} LFO{'s' if n > 1 else ''}", ns[warm(frames):])
        sources[n] = mapping

    print("\nmodulation routes: Modulation.feed(LFO reading) + apply(values, dt) per frame")
    base = inst.state.values()
    for n, mapping in sources.items():
        modulation = Modulation(mapping.modulation, inst.registry, mapping.signals())
        assert not modulation.warnings, modulation.warnings
        clock = FakeClock()
        lfo = LfoSource(mapping.lfos, clock, BeatClock(BPM))
        targets = len({r.target for r in mapping.modulation})
        ns = []
        moved = 0
        for k in range(frames + warm(frames)):
            clock.set(k / FPS)
            reading = lfo.read()
            values = dict(base)
            t0 = time.perf_counter_ns()
            modulation.feed(reading)
            changed = modulation.apply(values, 1.0 / FPS)
            ns.append(time.perf_counter_ns() - t0)
            moved += bool(changed) and k >= warm(frames)
        figure(f"{n} route{'s' if n > 1 else ''} on {targets} target{'s' if targets > 1 else ''}",
               ns[warm(frames):], f"  errors {modulation.errors}, frames moved {moved}")


# -- MIDI clock in ---------------------------------------------------------------------------------
def bench_midi_clock(ticks: int, seed: int) -> None:
    print(f"\nMIDI clock in: MidiClock.feed() per tick, ticks with +-{JITTER_S * 1e3:g} ms jitter (seed {seed}); "
          f"tempo error after the first 4 beats")
    for bpm in MIDI_TEMPOS:
        rng = random.Random(f"{seed}-{bpm}")
        tick_s = 60.0 / (bpm * PPQN)
        midi = MidiClock(now=lambda: 0.0)
        midi.feed(START, b"", 0.0)
        ns, errors = [], []
        for n in range(ticks):
            t = 0.01 + n * tick_s + rng.uniform(-JITTER_S, JITTER_S)
            t0 = time.perf_counter_ns()
            midi.feed(TICK, b"", t)
            ns.append(time.perf_counter_ns() - t0)
            if n >= 4 * PPQN:
                state = midi.state(t)
                errors.append(math.inf if state.bpm is None else abs(state.bpm - bpm))
        err = np.asarray(errors)
        tempo = (f"  tempo error median {np.median(err):.3f}, p99 {np.percentile(err, 99):.3f}, "
                 f"max {err.max():.3f} BPM; tempo changes seen {midi.changes}" if err.size else "  (too few ticks for a tempo error)")
        figure(f"{bpm:g} BPM", ns[min(warm(ticks), 4 * PPQN):], tempo)


# -- quantized actions -------------------------------------------------------------------------------
def bench_quantizer(frames: int) -> None:
    grids = list(QUANTIZE_GRIDS)
    print(f"\nquantizer: Quantizer.due() per frame at {FPS} fps, {BPM:g} BPM (grids {', '.join(grids)})")
    beat = BeatClock(BPM)
    for waiting in WAITING:
        assert waiting <= MAX_PENDING
        q = Quantizer()
        made = held = 0
        ns, fired = [], 0
        for k in range(frames + warm(frames)):
            while held < waiting:  # (as many always wait; untimed)
                q.hold(ParamUpdate("seed.next", action=True, quantize=grids[made % len(grids)]))
                made += 1
                held += 1
            beats = beat.beat_at(k / FPS)
            t0 = time.perf_counter_ns()
            due = q.due(beats, 4.0)
            ns.append(time.perf_counter_ns() - t0)
            held -= len(due)
            fired += len(due) if k >= warm(frames) else 0
        figure(f"{waiting} waiting", ns[warm(frames):], f"  fired {fired}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60000,
                        help="frames (and MIDI ticks) timed per case (default 60000)")
    parser.add_argument("--seed", type=int, default=1, help="the MIDI clock's jitter")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    print(machine())
    started = time.perf_counter()
    inst = Instrument("demo", device="cpu")
    bench_beat(inst, args.frames)
    bench_lfos(inst, args.frames)
    bench_midi_clock(args.frames, args.seed)
    bench_quantizer(args.frames)
    print(f"\n{time.perf_counter() - started:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
