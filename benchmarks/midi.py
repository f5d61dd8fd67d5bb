"""MIDI through JACK into the instrument: event-to-state latency and the sustained message rate.

A private JACK server (dummy driver, as the tests use) or a running one (`--server NAME`); a
controller stand-in in its own process sends control changes to a JACK MIDI port; the
instrument's own MidiInput (rtmidi, UNIX_JACK) receives them, and the Engine drains, routes
(the shipped `generic` mapping, soft takeover on) and applies them to an Instrument("demo").
Nothing is rendered unless `--render` (then the demo network renders every frame it moves).

Three phases:

1. latency at `--fps`: the engine loop paced at the frame rate, the controller moving psi
   (CC 24) one step at a time at random gaps (not phase-locked to frames). Latency is the
   sender's `perf_counter()` just before `send_message` to the moment, on the engine thread
   (the main thread, as in `perform`), right after drain + route + apply, when
   `inst.state.target("psi")` holds the new value.
   It includes waiting for the next frame's drain; it is split into JACK transport (send ->
   our rtmidi callback's timestamp) and queue + route (callback -> visible).
2. the same with the engine draining continuously (a poll every `--poll-ms`): the path alone.
3. a flood: `--rate` messages/s for `--seconds` s over CC 0..31, the engine at `--fps`:
   messages sent, received, dropped by our queue (full at `--queue-size`), ignored or malformed,
   lost in JACK (sent minus everything our callback saw), events routed and updates made per
   second, the deepest queue at a drain, how old events were when drained, and what a
   drain + route + apply costs per frame.

Times are `time.perf_counter()` in both processes: CLOCK_MONOTONIC on Linux, one clock for
the whole machine. Figures depend on the machine's load, which is printed with them.

Usage:
    python benchmarks/midi.py                          # private JACK, 60 fps, 10000 msg/s for 5 s
    python benchmarks/midi.py --rate 20000 --seconds 10 --fps 30
    python benchmarks/midi.py --server default --render --device cuda
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import subprocess
import sys
import threading
import time

import numpy as np

from ganinstrument.common.clock import MonotonicClock  # noqa: E402
from ganinstrument.common.reporting import Quiet  # noqa: E402
from ganinstrument.engine.loop import Engine  # noqa: E402
from ganinstrument.testing.jack import JACK_BACKEND, Sender, jack_server, wait_for  # noqa: E402

PROBE_CC, PROBE_TARGET = 24, "psi"  # the generic mapping: CC 24 -> psi
FLOOD_CCS = list(range(32))
JACK = None  # the JackServer in use (ganinstrument.testing.jack)


def late_cycles() -> tuple[int, int]:
    """(JACK xruns, cycles our client was late) logged by the private server so far."""
    x = JACK.xruns() if JACK is not None else None
    if not x:
        return 0, 0
    return x["xruns"], sum(n for c, n in x["late clients"].items() if "ganinstrument" in c)


def fmt_late(before: tuple[int, int]) -> str:
    if JACK is None or JACK.log_path is None:
        return "JACK xruns: not known (not our server)"
    now = late_cycles()
    return f"JACK xruns {now[0] - before[0]} (cycles our client had not finished: {now[1] - before[1]})"


def machine_load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


def pct(values, qs=(50, 90, 99)) -> dict:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {}
    out = {f"p{q}": float(np.percentile(a, q)) for q in qs}
    out["max"] = float(a.max())
    out["mean"] = float(a.mean())
    return out


def fmt_ms(values, qs=(50, 90, 99)) -> str:
    p = pct(np.asarray(values) * 1e3, qs)
    if not p:
        return "no samples"
    return ", ".join(f"{k} {v:.2f}" for k, v in p.items()) + f" ms (n={len(values)})"


class TapMidi(Quiet):
    """Stands between the engine and MidiInput: counts and timestamps what each drain returns.
    `close` is a no-op so one MidiInput serves several engines."""

    def __init__(self, midi, clock):
        self.midi, self.clock = midi, clock
        self.batch: list = []  # the probe events of the last drain
        self.max_depth = 0
        self.drained = 0
        self.ages: list[np.ndarray] = []  # seconds from callback to drain, when `record_ages`
        self.record_ages = False

    def drain(self):
        events = self.midi.drain()
        n = len(events)
        if n:
            self.drained += n
            self.max_depth = max(self.max_depth, n)
            if self.record_ages:
                now = self.clock.now()
                self.ages.append(now - np.fromiter((e.timestamp for e in events), np.float64, n))
        self.batch = [e for e in events if e.kind == "control_change" and e.number == PROBE_CC]
        return events

    def close(self, timeout_s: float = 2.0) -> bool:
        return True


class ProbeEngine(Engine):
    """The real Engine, watched through its on_frame observers (the end of drain + route + apply,
    the input time); optionally drawing nothing (then it polls every `poll_s`)."""

    def __init__(self, inst, tap: TapMidi, *, render: bool, poll_s: float, fps=None, **kwargs):
        super().__init__(inst, controls=[tap], draw=render, fps=fps or 1.0 / poll_s, **kwargs)
        self.tap = tap
        self.seen: list[tuple[float, float, float, bool]] = []  # (visible, callback ts, value, changed)
        self.input_s: list[float] = []
        self._last_target = inst.state.target(PROBE_TARGET)
        self.on_frame.append(self._took)

    def _took(self, frame, times) -> None:
        now = time.perf_counter()
        self.input_s.append(times.input_s)
        # the moment drain + route + apply ended: the frame's start plus its input phase
        t1 = now - times.total_s + times.gpu_wait_s + times.input_s
        if self.tap.batch:
            value = self.inst.state.target(PROBE_TARGET)
            changed = value != self._last_target
            self._last_target = value
            for ev in self.tap.batch:
                self.seen.append((t1, ev.timestamp, ev.value, changed))


def drive(engine: Engine, work) -> tuple[object, float]:
    """Run the engine on this (the main) thread, as `perform` does, while `work()` runs on
    another; stop the engine when it returns. Returns work's result and the engine's run time."""
    out: list = []

    def worker():
        try:
            out.append(work())
        except BaseException as exc:
            out.append(exc)
        finally:
            engine.request_stop()

    thread = threading.Thread(target=worker, name="sender-control", daemon=True)
    t0 = time.perf_counter()
    thread.start()
    engine.run()
    ran = time.perf_counter() - t0
    thread.join(30.0)
    if out and isinstance(out[0], BaseException):
        raise out[0]
    return (out[0] if out else None), ran


def probe_start_value(inst) -> int:
    spec = inst.registry.targets[PROBE_TARGET]
    x = (inst.state.target(PROBE_TARGET) - spec.minimum) / (spec.maximum - spec.minimum)
    return int(min(126, max(1, round(x * 127))))


def latency_phase(label: str, inst, controls, tap, sender, clock, args, *, fps, n) -> None:
    engine = ProbeEngine(inst, tap, render=args.render, poll_s=args.poll_ms / 1e3, router=controls.router,
                         clock=clock, fps=fps)
    start = probe_start_value(inst)
    late0 = late_cycles()

    def work():
        reply = sender.call("probe", cc=PROBE_CC, n=n, start=start,
                            gap=[args.gap_ms[0] / 1e3, args.gap_ms[1] / 1e3], seed=n)
        # every probe must be drained before the next phase starts, however late JACK is
        deadline = time.perf_counter() + args.settle_s
        while len(engine.seen) < n and time.perf_counter() < deadline:
            time.sleep(0.01)
        reply["settled_s"] = time.perf_counter() - reply["sends"][-1][0]
        time.sleep(0.1)
        return reply

    reply, _ = drive(engine, work)
    sends = reply["sends"]
    seen = engine.seen
    k = min(len(sends), len(seen))
    order_ok = sum(1 for i in range(k) if int(seen[i][2]) == sends[i][1])
    send_t = np.array([s[0] for s in sends[:k]])
    vis = np.array([s[0] for s in seen[:k]])
    cb = np.array([s[1] for s in seen[:k]])
    changed = sum(1 for s in seen[:k] if s[3])
    frames = len(engine.input_s)  # (frames run, drawn or not)
    print(f"\n[{label}] load: {machine_load()}")
    print(f"  probes sent {len(sends)}, drained {len(seen)}, in order {order_ok}/{k}, "
          f"moved the target {changed}/{k}; engine frames {frames}, "
          f"drain+route+apply per frame {fmt_ms(engine.input_s, (50, 99))}; {fmt_late(late0)}")
    q = max(1, k // 4)
    trend = f"{np.median((cb - send_t)[:q]) * 1e3:.2f} -> {np.median((cb - send_t)[-q:]) * 1e3:.2f} ms" if k else "-"
    print(f"  last probe drained {reply['settled_s']:.3f} s after it was sent; JACK transport median, "
          f"first vs last quarter: {trend}")
    print(f"  event -> state (send -> visible):      {fmt_ms(vis - send_t)}")
    print(f"    JACK transport (send -> callback):   {fmt_ms(cb - send_t)}")
    print(f"    queue + route (callback -> visible): {fmt_ms(vis - cb)}")


def flood_phase(inst, controls, midi, tap, sender, clock, args) -> None:
    engine = ProbeEngine(inst, tap, render=args.render, poll_s=args.poll_ms / 1e3, router=controls.router,
                         clock=clock, fps=args.fps)
    before = midi.stats()
    r_before = controls.router.stats
    tap.max_depth, tap.drained, tap.ages, tap.record_ages = 0, 0, [], True
    late0 = late_cycles()

    def work():
        reply = sender.call("flood", ccs=FLOOD_CCS, rate=args.rate, seconds=args.seconds, batch=args.batch)
        time.sleep(0.5)  # the last JACK cycles and the last drains
        return reply

    reply, ran = drive(engine, work)
    tap.drain()  # anything that came after the engine's last frame
    tap.record_ages = False
    after = midi.stats()
    sent = reply["sent"]
    span = reply["t1"] - reply["t0"]
    received = after.received - before.received
    dropped = after.dropped - before.dropped
    ignored = after.ignored - before.ignored
    malformed = after.malformed - before.malformed
    lost = sent - received - dropped - ignored - malformed
    events = controls.router.stats.events - r_before.events
    updates = controls.router.stats.updates - r_before.updates
    frames = len(engine.input_s)  # (frames run, drawn or not)
    ages = np.concatenate(tap.ages) if tap.ages else np.zeros(0)
    print(f"\n[flood {args.rate:g} msg/s for {args.seconds:g} s over CC 0..31, engine at {args.fps:g} fps"
          f"{', rendering' if args.render else ''}] load: {machine_load()}")
    print(f"  sent {sent} in {span:.2f} s ({sent / span:,.0f} msg/s achieved by the sender)")
    print(f"  received {received} ({received / span:,.0f}/s), dropped by our queue {dropped} "
          f"(queue_size {midi.queue_size}), ignored {ignored}, malformed {malformed}, lost in JACK {lost}; "
          f"{fmt_late(late0)}")
    print(f"  routed {events} events ({events / span:,.0f}/s) -> {updates} updates ({updates / span:,.0f}/s, "
          f"latest value per control per frame); frames {frames} ({frames / ran:.1f}/s)")
    print(f"  max queue depth at a drain {tap.max_depth}; event age at drain {fmt_ms(ages, (50, 99))}")
    print(f"  drain+route+apply per frame {fmt_ms(engine.input_s, (50, 99))}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=None, help="use this running JACK server (default: a private dummy one)")
    p.add_argument("--jack-period", type=int, default=256, help="private server's period in frames (default 256)")
    p.add_argument("--jack-rate", type=int, default=48000)
    p.add_argument("--seconds", type=float, default=5.0, help="flood duration (default 5)")
    p.add_argument("--rate", type=float, default=10000.0, help="flood rate in messages/s (default 10000)")
    p.add_argument("--batch", type=int, default=10, help="flood messages sent back to back between sleeps")
    p.add_argument("--fps", type=float, default=60.0, help="engine frame rate (default 60)")
    p.add_argument("--probes", type=int, default=300, help="latency probes per phase (default 300)")
    p.add_argument("--gap-ms", type=float, nargs=2, default=(25.0, 45.0), metavar=("MIN", "MAX"),
                   help="random gap between probes (default 25 45 ms)")
    p.add_argument("--settle-s", type=float, default=10.0,
                   help="how long a phase waits for late probes before it ends (default 10)")
    p.add_argument("--poll-ms", type=float, default=0.5, help="continuous drain: poll period (default 0.5)")
    p.add_argument("--queue-size", type=int, default=8192, help="MidiInput queue size (default 8192)")
    p.add_argument("--render", action="store_true", help="render the demo network every frame it moves")
    p.add_argument("--device", default="cpu", help="torch device for the instrument (default cpu)")
    p.add_argument("--skip-flood", action="store_true")
    args = p.parse_args(argv)
    faulthandler.enable()  # a crash in a native library (rtmidi, torch) prints every thread's stack

    from ganinstrument.instrument.facade import Instrument
    from ganinstrument.sources.midi.input import MidiInput

    print(f"load at start: {machine_load()}")
    clock = MonotonicClock()
    inst = Instrument("demo", device=args.device)
    controls = inst.use_mapping("generic", clock)
    if args.render:
        inst.warm_up(3)
    global JACK
    with jack_server(args.server, period=args.jack_period, rate=args.jack_rate) as desc, Sender("bench-controller") as sender:
        JACK = desc
        print(f"JACK: {desc}; controller in its own process at {sender.name}; "
              f"instrument demo on {inst.device}, mapping generic (CC {PROBE_CC} -> {PROBE_TARGET})")
        midi = MidiInput("bench-controller", backend=JACK_BACKEND, clock=clock,
                         queue_size=args.queue_size).start()
        try:
            if not wait_for(lambda: midi.open_ports, 10.0, 0.02):
                print("could not open the sender's port:", list(midi.messages))
                return 1
            tap = TapMidi(midi, clock)
            # warm up: pick up psi (soft takeover), JACK connections, first-call costs
            latency_phase("warm-up", inst, controls, tap, sender, clock, args, fps=args.fps, n=20)
            latency_phase(f"latency, engine at {args.fps:g} fps{', rendering' if args.render else ''}",
                          inst, controls, tap, sender, clock, args, fps=args.fps, n=args.probes)
            latency_phase(f"latency, continuous drain (poll every {args.poll_ms:g} ms)"
                          f"{', rendering' if args.render else ''}",
                          inst, controls, tap, sender, clock, args, fps=None, n=args.probes)
            if not args.skip_flood:
                flood_phase(inst, controls, midi, tap, sender, clock, args)
        finally:
            midi.close()
    print(f"\nload at end: {machine_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
