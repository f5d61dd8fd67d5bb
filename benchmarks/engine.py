"""The live engine under a steady load: frame pacing, control-to-frame and onset-to-frame
latency, the cost of each sink per frame, and memory over a soak.

For each config (the demo network, and full-size random-initialised StyleGAN2 networks built
from their NVlabs constructor arguments) the real Engine runs the instrument with:

- controls: CCs through a private JACK server (dummy driver) from a controller stand-in in
  its own process, into the instrument's MidiInput and the shipped `generic` mapping (CC 0..7
  -> z groups, CC 24 -> psi; each CC a triangle wave of step 1, so soft takeover lets every
  one through); or, with `--no-jack`, ControlEvents injected into the engine's MIDI queue by a
  thread in this process;
- audio: a click track (a kick every beat) played in real time through `BlockSource`, which
  is the same ring, callback and feature worker as a live input, on a feeder thread; its
  low-band onsets pulse z.0 through the mapping's modulation;
- sinks: null, null-host (null that also copies the frame to the host, as every CPU-side sink
  must), record (H.264 to a temporary mp4, with the click track as its live audio track, as
  `perform` records the audio input), preview (only where a display exists:
  DISPLAY, or run under `xvfb-run`), ndi (an NDI source, where ndi-python is installed; nobody
  need receive it) and spout (Windows).

Measured, on the engine thread unless said otherwise:

- fps; frame time (one `Engine.frame()`: drain, route, modulate, step/render, submit, HUD)
  p50/p99; jitter (the standard deviation of the intervals between frame starts); frames
  slower than twice the median (frame time and interval);
- MIDI event -> frame submitted: an event's timestamp (taken in our rtmidi callback, or at
  injection) to the moment the engine hands the first frame that includes it to the sinks;
  an event drained by frame k is in frame k (drain, route and apply come before the render);
- onset -> frame submitted: the onset's time (the end of the analysis frame that fired, on
  the instrument's clock) to the submit of the frame that drained it; also from the click's
  true start in the track; and whether z.0 jumped in that frame (the pulse is visible);
- per sink: `submit()` on the engine thread, and each write on the sink's own thread (its
  `on_write` observers), written and dropped frames.

With JACK, the private server's log is read for xruns, and for the cycles in which our MIDI
client had not finished: MIDI sent but never seen by our input is reported as lost in JACK.

The engine runs on the main thread, as `perform` runs it; `--engine-thread worker` runs it on
another thread instead. OpenMP is set up as `perform` sets it (ganinstrument/common/openmp.py: spin
briefly, then sleep); with libgomp's default long spin, on a loaded 2-core machine, frames on
the main thread cost up to 20x the CPU time they cost on a worker thread; compare by setting
OMP_WAIT_POLICY or GOMP_SPINCOUNT yourself.

On CUDA the submit moment is taken after `torch.cuda.synchronize()`, so it is when the frame's
pixels exist, not when its kernels were queued (this adds one sync per frame that the plain
engine does not do). `--soak-minutes` runs the same load for that long and prints the
process's RSS every `--soak-interval-s`, start vs end and the slope. Every figure comes with
the machine's load (`uptime`).

Usage:
    python benchmarks/engine.py                             # demo + sg2-256-paper, 1 min each
    python benchmarks/engine.py --configs demo --minutes 10 --soak-minutes 60
    python benchmarks/engine.py --device cuda               # demo, sg2-512-f, sg2-1024-f
    xvfb-run -a python benchmarks/engine.py --configs demo  # with the preview window
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import faulthandler
import gc
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

try:
    import resource
except ImportError:  # Windows
    resource = None

from ganinstrument.common.openmp import configure_openmp  # noqa: E402

configure_openmp()  # as `ganinstrument perform` does, before torch loads (yours wins)

import torch  # noqa: E402

from ganinstrument.common.clock import MonotonicClock  # noqa: E402
from ganinstrument.common.events import ControlEvent  # noqa: E402
from ganinstrument.common.heap import HeapTrimmer  # noqa: E402
from ganinstrument.common.reporting import Quiet  # noqa: E402
from ganinstrument.engine.loop import Engine  # noqa: E402
from ganinstrument.modulation.audio import AudioFeatures  # noqa: E402
from ganinstrument.outputs import Sinks  # noqa: E402
from ganinstrument.sources.audio.input import BlockSource, OnsetEvent  # noqa: E402

CPU_CONFIGS = ["demo", "sg2-256-paper"]
CUDA_CONFIGS = ["demo", "sg2-512-f", "sg2-1024-f"]
CONTROL_CCS = [1, 2, 3, 4, 24]  # generic mapping: z.1..z.4, psi (z.0 is left to the kick)
KICK_TARGET = "z.0"  # the generic mapping's `kick` route: onset.low pulses z.0
SAMPLE_RATE, BLOCK = 48000, 256
JACK = None  # the JackServer in use (ganinstrument.testing.jack)


def late_cycles() -> tuple[int, int] | None:
    """(JACK xruns, cycles our client was late) logged by the private server so far."""
    x = JACK.xruns() if JACK is not None else None
    if not x:
        return None
    return x["xruns"], sum(n for c, n in x["late clients"].items() if "ganinstrument" in c)


def machine_load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


def fmt(values, scale=1e3, unit="ms", qs=(50, 99), digits=2) -> str:
    a = np.asarray(values, dtype=np.float64) * scale
    if a.size == 0:
        return "no samples"
    parts = [f"p{q} {np.percentile(a, q):.{digits}f}" for q in qs]
    parts.append(f"max {a.max():.{digits}f}")
    return ", ".join(parts) + f" {unit} (n={a.size})"


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]


def thread_rusage():
    """This thread's resource usage (Linux: page faults, involuntary context switches), or None."""
    who = getattr(resource, "RUSAGE_THREAD", None) if resource is not None else None
    return resource.getrusage(who) if who is not None else None


def cpu_steal_s() -> float | None:
    """Seconds of CPU the hypervisor has taken from this VM's CPUs (all of them) since boot."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def heap_stats() -> tuple[int, int, int] | None:
    """(bytes malloc has handed out and not got back, bytes it holds free, Python's allocated
    blocks), or None off glibc. A leak grows the first; an allocator that keeps freed memory
    (fragmentation, raised trim thresholds) grows only the second, which RSS cannot tell apart."""
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _Mallinfo2
    m = fn()
    return m.uordblks + m.hblkhd, m.fordblks, sys.getallocatedblocks()


# -- audio: a click track in real time ---------------------------------------------------------
def click_track(seconds: float, bpm: float, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """A kick (a 120 -> 50 Hz sine sweep with a short noise attack) on every beat.
    Returns the samples and the beat times (s)."""
    x = np.zeros(int(sr * seconds), np.float32)
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    phase = 2 * np.pi * np.cumsum(50 + 70 * np.exp(-t / 0.03)) / sr
    kick = (0.8 * np.sin(phase) * np.exp(-t / 0.08)).astype(np.float32)
    attack = np.random.default_rng(0).standard_normal(96) * np.exp(-np.arange(96) / 30)
    kick[:96] += (0.3 * attack).astype(np.float32)
    fade = int(0.02 * sr)  # the cut-off tail would be a click of its own, a second onset per beat
    kick[-fade:] *= (0.5 + 0.5 * np.cos(np.pi * np.arange(fade) / fade)).astype(np.float32)
    beats = np.arange(0.25, seconds - 0.3, 60.0 / bpm)
    for b in beats:
        i = int(round(b * sr))
        x[i:i + n] += kick[: len(x) - i]
    return x, beats


class LiveClicks(Quiet):
    """A looping click track through BlockSource, fed by wall time on its own thread (the
    live input's callback + feature worker, in one thread). Onset times come out on the
    instrument's clock; `drained` tells, per drained onset, (onset time, click time, kind)."""

    def __init__(self, clock, *, bpm: float = 120.0, loop_s: float = 8.0, tap=None):
        self.clock = clock
        self.tap = tap  # outputs/live_audio.AudioTap: the blocks, for the recorder's audio track
        self._base = 0.0
        if tap is not None:
            tap.configure(SAMPLE_RATE, 1)
        self.samples, self.beats = click_track(loop_s, bpm)
        self.loop_s = len(self.samples) / SAMPLE_RATE
        self._latest = None
        self._onsets: collections.deque = collections.deque(maxlen=4096)
        self.drained: list[tuple[float, float, str]] = []
        self.blocks = 0
        self.spans: collections.deque | None = None  # (start, end) of each analysis step, when set
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audio-features", daemon=True)

    def start(self) -> LiveClicks:
        self._thread.start()
        return self

    def _run(self) -> None:
        base = self._base = self.clock.now()
        src = self._source()
        period = BLOCK / SAMPLE_RATE
        while not self._stop.is_set():
            now = self.clock.now()
            if now - base >= self.loop_s and src.done:
                base += self.loop_s
                self._base = base
                src = self._source()
            a = time.perf_counter()
            self.blocks += src.advance_to(now - base)
            if self.spans is not None:
                self.spans.append((a, time.perf_counter()))
            for o in src.drain_onsets():
                i = np.searchsorted(self.beats, o.time_s, side="right") - 1
                click = base + (self.beats[i] if i >= 0 else o.time_s)
                self._onsets.append((OnsetEvent(base + o.time_s, o.frame, o.kind, o.strength), click))
            latest = src.latest()
            if latest is not None:
                self._latest = latest
            self._stop.wait(period)

    def _source(self) -> BlockSource:
        src = BlockSource(self.samples, SAMPLE_RATE, block_size=BLOCK)
        if self.tap is not None:
            src.worker.tap = self  # BlockSource's times are the loop's: `push` moves them onto the clock
        return src

    @property
    def wanted(self) -> bool:
        return self.tap.wanted

    def push(self, block, time_s: float) -> None:
        self.tap.push(block, self._base + time_s)

    def latest(self):
        return self._latest

    def drain_onsets(self) -> list:
        out = []
        self.drained = []
        while self._onsets:
            ev, click = self._onsets.popleft()
            out.append(ev)
            self.drained.append((ev.time_s, click, ev.kind))
        return out

    def stop(self, timeout_s: float = 2.0) -> bool:
        self._stop.set()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


# -- controls ----------------------------------------------------------------------------------
class InjectedMidi(Quiet):
    """`--no-jack`: a thread puts ControlEvents (triangle waves on `ccs`) on a deque at `rate`/s,
    timestamped on the clock, as our rtmidi callback would."""

    def __init__(self, clock, ccs, rate: float):
        self.clock, self.ccs, self.rate = clock, list(ccs), float(rate)
        self.queue: collections.deque = collections.deque()
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inject-midi", daemon=True)

    def start(self) -> InjectedMidi:
        self._thread.start()
        return self

    def _run(self) -> None:
        values = {c: 64 for c in self.ccs}
        steps = {c: 1 for c in self.ccs}
        t0 = time.perf_counter()
        i = 0
        while not self._stop.is_set():
            c = self.ccs[i % len(self.ccs)]
            if not 0 <= values[c] + steps[c] <= 127:
                steps[c] = -steps[c]
            values[c] += steps[c]
            self.queue.append(ControlEvent("control_change", 0, c, float(values[c]), self.clock.now(), "inject"))
            i += 1
            self.sent = i
            delay = t0 + i / self.rate - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)

    def drain(self) -> list:
        q = self.queue
        return [q.popleft() for _ in range(len(q))]

    def close(self, timeout_s: float = 2.0) -> bool:
        self._stop.set()
        self._thread.join(timeout_s)
        return True


class Recorder:
    """Everything measured, in bounded deques (so a soak's own bookkeeping stays flat)."""

    def __init__(self, maxlen: int):
        d = lambda: collections.deque(maxlen=maxlen)  # noqa: E731
        self.frame_start, self.frame_s = d(), d()
        self.midi_s, self.onset_s, self.click_s = d(), d(), d()
        self.wait_s, self.taken_s = d(), d()          # event -> drained, drained -> submitted
        self.submit_s: dict[str, collections.deque] = collections.defaultdict(d)
        self.write_s: dict[str, collections.deque] = collections.defaultdict(d)
        # what each frame spent where, and what else ran meanwhile (for the slow frames)
        self.frame_cpu = d()                          # the engine thread's CPU time per frame
        self.frame_faults, self.frame_preempted = d(), d()  # its page faults, involuntary switches
        self.phase_s: dict[str, collections.deque] = {p: d() for p in ("input", "render", "submit")}
        self.spans: dict[str, collections.deque] = collections.defaultdict(d)  # kind -> (start, end)
        self.pending_events: list[tuple[float, float]] = []   # (event time, drained at)
        self.pending_onsets: list[tuple[float, float, str]] = []
        self.low_onset_frames = 0
        self.low_onset_visible = 0
        self.frames = 0
        self.first_start: float | None = None
        self.last_start: float | None = None


class TapMidi(Quiet):
    """Between the engine and its MIDI source: notes the timestamps of what each drain returns."""

    def __init__(self, midi, rec: Recorder):
        self.midi, self.rec = midi, rec

    def drain(self):
        events = self.midi.drain()
        now = time.perf_counter()
        self.rec.pending_events.extend((e.timestamp, now) for e in events)
        return events

    def close(self, timeout_s: float = 2.0):
        # the injected source stops with the engine; a MidiInput is closed by the benchmark,
        # after the sender has stopped, so every message sent can be accounted for
        return self.midi.close(timeout_s) if isinstance(self.midi, InjectedMidi) else True


class TimedSinks(Sinks):
    """Sinks that stamp the submit moment (after a CUDA sync) and time each sink's submit()."""

    def __init__(self, sinks, rec: Recorder, device: torch.device):
        super().__init__(sinks)
        self.rec, self.device = rec, device
        self.last_t: float | None = None
        self.submits = 0
        self.submit_total = 0.0  # seconds in submit(), summed (the engine reads the difference)

    def submit(self, frame) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t = self.last_t = time.perf_counter()
        self.submits += 1
        rec = self.rec
        for ts, drained in rec.pending_events:
            rec.midi_s.append(t - ts)
            rec.wait_s.append(drained - ts)
        if rec.pending_events:
            rec.taken_s.append(t - rec.pending_events[0][1])
        rec.pending_events.clear()
        taken = 0
        for sink in self.sinks:
            a = time.perf_counter()
            taken += bool(sink.submit(frame))
            rec.submit_s[sink.name].append(time.perf_counter() - a)
        self.submit_total += time.perf_counter() - t
        return taken


class BenchEngine(Engine):
    """The real Engine, with a stopwatch around each frame and the onsets it took."""

    def __init__(self, inst, rec: Recorder, clicks: LiveClicks, **kwargs):
        super().__init__(inst, **kwargs)
        self.rec, self.clicks = rec, clicks
        routes = self.inst.modulation.follows(KICK_TARGET) if self.inst.modulation is not None else []
        kick = [r for r in routes if r.feature == "onset.low" and r.mode not in ("replace", "multiply")]
        self.kick_depth = kick[0].offset + kick[0].depth if len(routes) == 1 and kick else None
        self._phase = {"input": 0.0, "render": 0.0}
        self.on_frame.append(self._took)

    def _took(self, frame, times) -> None:
        """The engine's own phase times (FrameTimes): input is the controls and the audio
        features handed to the modulation (one phase here, as before the engine split them)."""
        self._phase = {"input": times.input_s + times.modulation_s, "render": times.render_s}

    def frame(self):
        rec, sinks = self.rec, self.sinks
        self._phase = {"input": 0.0, "render": 0.0}
        t0 = time.perf_counter()
        c0 = time.thread_time()
        u0 = thread_rusage()
        submits = sinks.submits
        submit_before = sinks.submit_total
        frame = super().frame()
        t1 = time.perf_counter()
        rec.frame_cpu.append(time.thread_time() - c0)
        if u0 is not None:
            u1 = thread_rusage()
            rec.frame_faults.append(u1.ru_minflt + u1.ru_majflt - u0.ru_minflt - u0.ru_majflt)
            rec.frame_preempted.append(u1.ru_nivcsw - u0.ru_nivcsw)
        rec.phase_s["input"].append(self._phase["input"])
        rec.phase_s["render"].append(self._phase["render"])
        rec.phase_s["submit"].append(sinks.submit_total - submit_before)
        rec.frames += 1
        rec.frame_start.append(t0)
        rec.frame_s.append(t1 - t0)
        if rec.first_start is None:
            rec.first_start = t0
        rec.last_start = t0
        # The onsets this frame drained went into this frame's values; it was submitted at last_t.
        drained, self.clicks.drained = self.clicks.drained, []
        low = [(onset_t, click_t) for onset_t, click_t, kind in drained if kind == "onset.low"]
        if low and sinks.submits > submits:
            for onset_t, click_t in low:
                rec.onset_s.append(sinks.last_t - onset_t)
                rec.click_s.append(sinks.last_t - click_t)
        if low:
            # visible: this frame's z.0 is its base plus the whole pulse (the pulse restarts at
            # 1 in the frame that takes the onset; a frame with none has it decayed)
            rec.low_onset_frames += 1
            kick = self.inst.last_values.get(KICK_TARGET)
            if kick is not None and self.kick_depth is not None:
                spec = self.inst.registry.targets[KICK_TARGET]
                expected = spec.clamp(self.inst.state.get(KICK_TARGET) + self.kick_depth)
                if abs(kick - expected) < 1e-6:
                    rec.low_onset_visible += 1
        return frame


def print_gc_garbage(top: int = 15) -> None:
    """What the cycle collector found during a --gc-garbage run, by type, with array bytes."""
    gc.collect()
    garbage = list(gc.garbage)
    gc.set_debug(0)
    gc.garbage.clear()
    counts: collections.Counter = collections.Counter()
    nbytes: collections.Counter = collections.Counter()
    for obj in garbage:
        name = type(obj).__module__ + "." + type(obj).__qualname__
        counts[name] += 1
        if isinstance(obj, np.ndarray):
            nbytes[name] += obj.nbytes
        elif isinstance(obj, torch.Tensor):
            nbytes[name] += obj.element_size() * obj.nelement()
    print(f"  cyclic garbage collected during the run: {len(garbage)} objects; by type:")
    for name, n in counts.most_common(top):
        extra = f", {nbytes[name] / 2**20:.1f} MiB of data" if nbytes[name] else ""
        print(f"    {n:8d}  {name}{extra}")
    del garbage


class GcWatch:
    """Python's garbage collections during a run: how many of each generation, and how long."""

    def __init__(self, spans: collections.deque | None = None):
        self.count = [0, 0, 0]
        self.total_ms = [0.0, 0.0, 0.0]
        self.max_ms = [0.0, 0.0, 0.0]
        self.spans = spans  # (start, end) of each collection, any thread
        self._t = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
            return
        g = info["generation"]
        end = time.perf_counter()
        ms = (end - self._t) * 1e3
        if self.spans is not None:
            self.spans.append((self._t, end))
        self.count[g] += 1
        self.total_ms[g] += ms
        self.max_ms[g] = max(self.max_ms[g], ms)

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self)

    def summary(self) -> str:
        return "; ".join(f"gen{g} {self.count[g]} (max {self.max_ms[g]:.2f} ms, total {self.total_ms[g]:.0f} ms)"
                         for g in range(3)) + " (the first gen2 is the engine's own, before the show)"


def time_writes(sink, rec: Recorder) -> None:
    """Note each write on the sink's own thread (its on_write observers get its start and end)."""
    bucket = rec.write_s[sink.name]
    spans = rec.spans[f"{sink.name} write"]

    def timed(began: float, ended: float) -> None:
        bucket.append(ended - began)
        spans.append((began, ended))

    sink.on_write.append(timed)


def time_trims(trimmer, rec: Recorder) -> None:
    """Note when the engine's heap trims ran (a trim locks each malloc arena while it walks it)."""
    if trimmer is None:
        return
    spans = rec.spans["heap trim"]
    trimmer.on_trim.append(lambda began, ended: spans.append((began, ended)))


def build_instrument(config: str, device: str | None):
    from ganinstrument.instrument.facade import Instrument

    if config == "demo":
        return Instrument("demo", device=device)
    from ganinstrument.generator import build_generator
    from ganinstrument.generator.configs import FULL_SIZE
    from ganinstrument.generator.device import pick_device

    kind, kwargs = FULL_SIZE[config]
    torch.manual_seed(0)
    G = build_generator(kind, **kwargs).to(pick_device(device)).eval()
    return Instrument(G, device=device)


def open_sinks(names, width, height, fps, tmpdir, config, rec, tap=None):
    from ganinstrument.outputs.null import NullSink
    from ganinstrument.outputs.spec import unavailable_reason

    sinks, notes = [], []
    for name in names:
        if name == "null":
            sink = NullSink("null")
        elif name == "null-host":
            sink = NullSink("null-host", copy_to_host=True)
        elif name == "record":
            from ganinstrument.outputs.recorder import VideoRecorder

            reason = unavailable_reason("record")
            if reason:
                notes.append(reason)
                continue
            sink = VideoRecorder(os.path.join(tmpdir, f"{config}.mp4"), crash_safe=True, live_audio=tap)
        elif name == "preview":
            reason = unavailable_reason("preview")
            if reason:
                notes.append(reason)
                continue
            from ganinstrument.outputs.preview import PreviewSink

            sink = PreviewSink(title=f"engine benchmark: {config}")
        elif name in ("ndi", "spout"):
            reason = unavailable_reason(name)
            if reason:
                notes.append(reason)
                continue
            from ganinstrument.outputs.spec import make_sink, parse_output_spec

            (item,) = parse_output_spec(f"{name}:engine-benchmark")
            sink = make_sink(item)
        else:
            raise SystemExit(f"unknown sink {name!r}")
        try:
            sink.open(width, height, fps)
        except Exception as exc:
            notes.append(f"{name}: {exc}")
            continue
        time_writes(sink, rec)
        sinks.append(sink)
    return sinks, notes


def run_config(config: str, args, minutes: float, sink_names, *, soak: bool = False) -> None:

    clock = MonotonicClock()
    rss0 = rss_bytes()
    inst = build_instrument(config, args.device)
    device = inst.device
    controls = inst.use_mapping("generic", clock)
    first = inst.warm_up(3)  # as `perform` does: CPU back ends set themselves up on the first calls
    width, height = first.size
    seconds = minutes * 60.0
    rec = Recorder(maxlen=20_000 if soak else 5_000_000)
    tmpdir = tempfile.mkdtemp(prefix="engine-bench-")
    from ganinstrument.outputs.live_audio import AudioTap

    tap = None if args.no_record_audio else AudioTap()
    sinks, notes = open_sinks(sink_names, width, height, args.fps or 60.0, tmpdir, config, rec, tap)
    audio = LiveClicks(clock, bpm=args.bpm, tap=tap).start()

    sender = midi_in = injected = None
    if args.no_jack:
        injected = InjectedMidi(clock, CONTROL_CCS, args.cc_rate).start()
        source, control_desc = injected, f"{args.cc_rate:g} injected CC/s"
    else:
        from ganinstrument.sources.midi.input import MidiInput
        from ganinstrument.testing.jack import JACK_BACKEND, Sender, wait_for

        sender = Sender(f"bench-ctl-{config}")
        midi_in = MidiInput(sender.client, backend=JACK_BACKEND, clock=clock).start()
        if not wait_for(lambda: midi_in.open_ports, 10.0, 0.02):
            raise SystemExit(f"could not open the sender's port: {list(midi_in.messages)}")
        sender.start("stream", ccs=CONTROL_CCS, rate=args.cc_rate, seconds=seconds + 1.0)
        source, control_desc = midi_in, f"{args.cc_rate:g} CC/s through JACK"

    late0 = late_cycles()
    engine = BenchEngine(inst, rec, audio, router=controls.router, controls=[TapMidi(source, rec)],
                         modulation=[AudioFeatures(audio)],
                         sinks=TimedSinks(sinks, rec, device), clock=clock, fps=args.fps or None)
    label = (f"{'soak: ' if soak else ''}{config} on {device}, {width}x{height}, {minutes:g} min, "
             f"{control_desc}, clicks at {args.bpm:g} BPM, sinks {', '.join(s.name for s in sinks)}")
    print(f"\n[{label}]\n  load at start: {machine_load()}", flush=True)
    for note in notes:
        print(f"  (sink skipped: {note})")

    rss_samples: list[tuple[float, int]] = []
    heap_samples: list[tuple[float, int, int, int]] = []
    trim_samples: list[tuple[float, int]] = []
    trim_check = HeapTrimmer()  # --trim-check: one trim per sample, from the sampling thread
    done = threading.Event()
    load_end = [""]

    trace = soak and args.trace_memory
    if trace:
        import tracemalloc

        tracemalloc.start(12)
    half_snapshot = []

    def monitor():  # samples RSS, ends the run after `seconds`
        interval = args.soak_interval_s if soak else max(seconds / 4, 1.0)
        while True:
            elapsed = time.perf_counter() - t_start
            if trace and not half_snapshot and elapsed >= seconds / 2:
                half_snapshot.append(tracemalloc.take_snapshot())
            rss_samples.append((elapsed, rss_bytes()))
            trimmed = ""
            if soak and args.trim_check and trim_check.trim() is not None:
                trimmed_rss = rss_bytes()
                trim_samples.append((elapsed, trimmed_rss))
                trimmed = f" (after malloc_trim {trimmed_rss / 2**20:.1f})"
            heap = heap_stats()
            if heap is not None:
                heap_samples.append((elapsed, *heap))
            if soak:
                extra = ("" if heap is None else f"  heap in use {heap[0] / 2**20:7.1f} MiB, "
                         f"free {heap[1] / 2**20:6.1f} MiB, {heap[2]} Python blocks")
                print(f"  t={elapsed / 60:6.2f} min  RSS {rss_samples[-1][1] / 2**20:8.1f} MiB{trimmed}{extra}  "
                      f"frames {rec.frames}  load {os.getloadavg()[0]:.2f}", flush=True)
            if elapsed >= seconds or done.wait(min(interval, seconds - elapsed)):
                break
        load_end[0] = machine_load()
        engine.request_stop()
        if trace and half_snapshot:
            print_growth(half_snapshot[0], tracemalloc.take_snapshot())
            tracemalloc.stop()

    def run_engine():
        try:
            engine.run()
        finally:
            done.set()

    time_trims(engine.heap_trimmer, rec)
    audio.spans = rec.spans["audio analysis"]
    gc_watch = GcWatch(rec.spans["gc"]).__enter__()
    if args.gc_garbage:
        gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collector frees, to say what it was
    steal0 = cpu_steal_s()
    t_start = time.perf_counter()
    # `perform` runs the engine on the main thread; so does this by default (it matters for
    # CPU torch: see --engine-thread).
    first, second = (run_engine, monitor) if args.engine_thread == "worker" else (monitor, run_engine)
    helper = threading.Thread(target=first, name="engine" if first is run_engine else "monitor", daemon=True)
    helper.start()
    try:
        second()
    finally:
        engine.request_stop()
        done.wait(30.0)
        helper.join(30.0)
        wall = time.perf_counter() - t_start
        midi_stats, sent = None, None
        if sender is not None:
            sent = sender.stop_stream().get("sent")
            time.sleep(0.2)  # JACK's last cycles
            midi_stats = midi_in.stats()
            host = midi_in.backend.input_process
            midi_process = (f"restarted {host.restarts} time(s) after a crash" if host is not None
                            else "none (inputs read in this process)")
            midi_in.close()
            sender.close()
        sink_stats = {s.name: s.stats for s in sinks}
        gc_watch.__exit__()
    print(f"  Python GC during the run: {gc_watch.summary()}")
    steal1 = cpu_steal_s()
    if steal0 is not None and steal1 is not None:
        print(f"  CPU time the hypervisor took from this VM during the run (steal): {steal1 - steal0:.1f} s "
              f"({100 * (steal1 - steal0) / (wall * (os.cpu_count() or 1)):.2f}% of {os.cpu_count()} CPUs)")
    if args.gc_garbage:
        print_gc_garbage()
    trimmer = engine.heap_trimmer
    if trimmer is not None:
        print(f"  heap checks by the engine (every {trimmer.interval_s:g} s): {trimmer.checks}; trims "
              f"(resident size {trimmer.slack_bytes >> 20} MiB past where it settled): {trimmer.trims}, "
              f"last {trimmer.last_ms:.1f} ms, longest {trimmer.max_ms:.1f} ms")
    if sender is not None:
        print(f"  MIDI input process: {midi_process}")
    for sink in sinks:
        track = getattr(sink, "audio_track", None)
        if track is not None:
            print(f"  {sink.name}'s audio track: {track.seconds:.1f} s; re-aligned {track.resyncs} times "
                  f"({track.silence_s:.3f} s of silence, {track.cut_s:.3f} s cut), {track.slips} samples "
                  f"slipped, {track.feed.dropped} blocks dropped by its feed")
    load_end = load_end[0] or machine_load()
    late1 = late_cycles()
    if late0 is not None and late1 is not None:
        print(f"  JACK xruns during the run {late1[0] - late0[0]} (cycles our MIDI client had not finished: "
              f"{late1[1] - late0[1]})")
    report(config, args, rec, engine, sink_stats, load_end, wall, sent, midi_stats, injected, audio,
           rss0, rss_samples, heap_samples, soak, trim_samples)


def report(config, args, rec, engine, sink_stats, load_end, wall, sent, midi_stats, injected, audio,
           rss0, rss_samples, heap_samples, soak, trim_samples=()) -> None:
    starts = np.asarray(rec.frame_start)
    ft = np.asarray(rec.frame_s)
    iv = np.diff(starts) if starts.size > 1 else np.zeros(0)
    fps = (rec.frames - 1) / (rec.last_start - rec.first_start) if rec.frames > 1 else float("nan")
    st = engine.stats
    print(f"  load at end:   {load_end}")
    if soak:
        print(f"  (soak: the per-frame and per-event figures below cover the last {rec.frame_s.maxlen} of each, "
              f"so the soak's own bookkeeping stays flat)")
    print(f"  frames {rec.frames} in {wall:.1f} s (rendered {st.rendered}, errors {st.errors}"
          f"{': ' + st.last_error if st.errors else ''}); fps {fps:.2f} (paced at {args.fps or 'max'})")
    if ft.size:
        med_ft = float(np.median(ft))
        print(f"  frame time (drain..submit): {fmt(ft)}")
        print(f"  frames slower than 2x median frame time ({2 * med_ft * 1e3:.1f} ms): "
              f"{int((ft > 2 * med_ft).sum())}/{ft.size}")
        print_slow_frames(rec, starts, ft, 2 * med_ft)
    if iv.size:
        med_iv = float(np.median(iv))
        print(f"  frame interval: {fmt(iv)}; jitter (std) {iv.std() * 1e3:.2f} ms; "
              f"intervals > 2x median ({2 * med_iv * 1e3:.1f} ms): {int((iv > 2 * med_iv).sum())}/{iv.size}")
    else:
        med_iv = float("nan")
    midi = np.asarray(rec.midi_s)
    if sent is not None and midi_stats is not None:
        lost = sent - midi_stats.received - midi_stats.dropped - midi_stats.ignored - midi_stats.malformed
        src = (f"sent {sent}, received {midi_stats.received}, dropped by our queue {midi_stats.dropped}, "
               f"lost in JACK {lost}")
    elif injected is not None:
        src = f"injected {injected.sent}"
    else:
        src = ""
    print(f"  MIDI event -> frame submitted: {fmt(midi)}; {src}")
    if midi.size:
        nominal = 1.0 / args.fps + 0.005 if args.fps else float("nan")
        measured = med_iv + 0.005
        parts = []
        if args.fps:
            parts.append(f"one nominal frame period + 5 ms ({nominal * 1e3:.1f} ms): "
                         f"{np.mean(midi <= nominal) * 100:.1f}%")
        if math.isfinite(measured):
            parts.append(f"one measured frame period + 5 ms ({measured * 1e3:.1f} ms): "
                         f"{np.mean(midi <= measured) * 100:.1f}%")
        print("    within " + "; within ".join(parts))
        print(f"    = waiting for the next frame to take it {fmt(rec.wait_s)}\n"
              f"    + that frame's render, from taking its input to submitting {fmt(rec.taken_s)}")
    print(f"  onset (low band) -> frame submitted: {fmt(rec.onset_s)}")
    print(f"  click start in the track -> frame submitted: {fmt(rec.click_s)}; frames that took a low "
          f"onset {rec.low_onset_frames}, {KICK_TARGET} at base + full pulse in {rec.low_onset_visible}; "
          f"audio blocks analysed {audio.blocks}")
    for name, stats in sink_stats.items():
        print(f"  sink {name:9s}: submit() on the engine thread {fmt(rec.submit_s[name], 1e6, 'us', digits=1)}; "
              f"write on its thread {fmt(rec.write_s[name])}; submitted {stats.submitted}, "
              f"written {stats.written}, dropped {stats.dropped}, errors {stats.errors}")
    if rss_samples:
        t = np.array([s[0] for s in rss_samples]) / 60.0
        r = np.array([s[1] for s in rss_samples]) / 2**20
        line = (f"  RSS: before building the instrument {rss0 / 2**20:.1f} MiB; run start {r[0]:.1f} MiB, "
                f"end {r[-1]:.1f} MiB (max {r.max():.1f})")
        if t.size >= 3 and t[-1] > t[0]:
            slope = np.polyfit(t, r, 1)[0]
            half = t >= t[-1] / 2
            line += f"; slope {slope:+.3f} MiB/min over the run"
            if half.sum() >= 3:
                line += f", {np.polyfit(t[half], r[half], 1)[0]:+.3f} MiB/min over the second half"
        print(line)
    if len(trim_samples) >= 3:
        tt = np.array([x[0] for x in trim_samples]) / 60.0
        tr = np.array([x[1] for x in trim_samples]) / 2**20
        half = tt >= tt[-1] / 2
        if half.sum() >= 3 and tt[-1] > tt[0]:
            print(f"  RSS after malloc_trim: {tr[0]:.1f} -> {tr[-1]:.1f} MiB, "
                  f"{np.polyfit(tt[half], tr[half], 1)[0]:+.3f} MiB/min over the second half")
    if len(heap_samples) >= 3:
        h = np.array(heap_samples, dtype=np.float64)
        t = h[:, 0] / 60.0
        half = t >= t[-1] / 2
        if half.sum() >= 3 and t[-1] > t[0]:
            used, free = h[:, 1] / 2**20, h[:, 2] / 2**20
            print(f"  heap (glibc): in use {used[0]:.1f} -> {used[-1]:.1f} MiB "
                  f"({np.polyfit(t[half], used[half], 1)[0]:+.3f} MiB/min over the second half), "
                  f"held free {free[0]:.1f} -> {free[-1]:.1f} MiB "
                  f"({np.polyfit(t[half], free[half], 1)[0]:+.3f} MiB/min); Python blocks "
                  f"{int(h[0, 3])} -> {int(h[-1, 3])}")
    sys.stdout.flush()


def print_slow_frames(rec: Recorder, starts: np.ndarray, ft: np.ndarray, limit: float, worst: int = 8) -> None:
    """Where the frames slower than `limit` spent their time, and what else ran meanwhile.

    For each slow frame: its phases (input = drain + route + apply, render = smooth + scene +
    generator, submit = every sink's submit()), the engine thread's CPU time (wall much longer
    than CPU: the thread waited, preempted or on a lock; CPU long too: the work itself was
    slower), and which spans on other threads overlapped it (Python GC, heap trims, sink writes).
    """
    n = min(ft.size, len(rec.frame_cpu), *(len(v) for v in rec.phase_s.values()))
    if n == 0:
        return
    ft, starts = ft[-n:], starts[-n:]
    cpu = np.asarray(rec.frame_cpu)[-n:]
    phases = {k: np.asarray(v)[-n:] for k, v in rec.phase_s.items()}
    slow = np.flatnonzero(ft > limit)
    med = {k: float(np.median(v)) for k, v in phases.items()}
    med_cpu = float(np.median(cpu))
    print(f"    median frame: input {med['input'] * 1e3:.2f}, render {med['render'] * 1e3:.2f}, submit "
          f"{med['submit'] * 1e3:.2f} ms; engine thread CPU {med_cpu * 1e3:.2f} ms")
    if slow.size == 0:
        return
    spans = {k: np.asarray(v, dtype=np.float64).reshape(-1, 2) for k, v in rec.spans.items()}

    def overlapping(i):
        a, b = starts[i], starts[i] + ft[i]
        return [k for k, sp in spans.items() if sp.size and np.any((sp[:, 0] < b) & (sp[:, 1] > a))]

    by_phase: collections.Counter = collections.Counter()
    off_cpu = 0
    rows = []
    for i in slow:
        excess = {k: phases[k][i] - med[k] for k in phases}
        excess["other"] = (ft[i] - sum(phases[k][i] for k in phases)) - (
            np.median(ft) - sum(med.values()))
        top = max(excess, key=excess.get)
        by_phase[top] += 1
        off_cpu += bool(ft[i] - cpu[i] > 0.5 * (ft[i] - float(np.median(ft))))
        rows.append((ft[i], i, top, cpu[i], overlapping(i)))
    print("    slow frames by the phase that grew most: "
          + ", ".join(f"{k} {v}" for k, v in by_phase.most_common()))
    print(f"    slow frames where most of the excess was off the CPU (waiting, preempted): {off_cpu}/{slow.size}; "
          f"engine thread CPU in slow frames {fmt(cpu[slow])}")
    # How often each kind of span overlaps a slow frame, against how often it overlaps any frame.
    every = max(1, n // 5000)
    sample = np.arange(0, n, every)
    base = collections.Counter(k for i in sample for k in overlapping(i))
    slow_over = collections.Counter(k for *_, over in rows for k in over)
    print("    overlapping, slow frames vs all frames: " + ", ".join(
        f"{k} {100 * slow_over[k] / slow.size:.0f}% vs {100 * base[k] / sample.size:.0f}%"
        for k in sorted(spans, key=lambda k: -slow_over[k])))
    if len(rec.frame_faults) >= n:
        faults = np.asarray(rec.frame_faults)[-n:]
        switches = np.asarray(rec.frame_preempted)[-n:]
        print(f"    page faults per frame: slow {faults[slow].mean():.1f} vs all {faults.mean():.1f}; involuntary "
              f"context switches per frame: slow {switches[slow].mean():.2f} vs all {switches.mean():.2f}")
    late = slow[starts[slow] - starts[0] >= 1.0]
    print(f"    slow frames after the first second: {late.size}")
    for f, i, top, c, over in sorted(rows, reverse=True)[:worst]:
        parts = ", ".join(f"{k} {phases[k][i] * 1e3:.1f}" for k in phases)
        extra = (f", {rec.frame_faults[len(rec.frame_faults) - n + i]} faults"
                 if len(rec.frame_faults) >= n else "")
        print(f"      {f * 1e3:6.1f} ms at {starts[i] - starts[0]:7.1f} s: {parts} ms; CPU {c * 1e3:.1f} ms{extra}; "
              f"during: {', '.join(over) or 'nothing'}")


def print_growth(before, after, top: int = 12) -> None:
    """The allocation sites whose live memory grew most between two tracemalloc snapshots."""
    stats = after.compare_to(before, "traceback")
    grew = [st for st in stats if st.size_diff > 0]
    print(f"  tracemalloc, second half of the soak: live Python-allocated memory "
          f"{sum(st.size_diff for st in stats) / 2**20:+.2f} MiB; sites that grew most:")
    for st in grew[:top]:
        frames = [f for f in st.traceback if "tracemalloc" not in f.filename][-4:]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames))
        print(f"    {st.size_diff / 1024:+9.1f} KiB {st.count_diff:+7d} blocks  {where}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=None,
                   help="demo and/or FULL_SIZE names (default: demo sg2-256-paper on CPU; "
                        "demo sg2-512-f sg2-1024-f on CUDA)")
    p.add_argument("--device", default=None, help="torch device (default: automatic)")
    p.add_argument("--minutes", type=float, default=1.0, help="steady-load run per config (default 1)")
    p.add_argument("--fps", type=float, default=60.0, help="frame rate the engine paces at (0: flat out)")
    p.add_argument("--cc-rate", type=float, default=200.0, help="control changes per second (default 200)")
    p.add_argument("--bpm", type=float, default=120.0, help="click track tempo (default 120)")
    p.add_argument("--no-jack", action="store_true", help="inject ControlEvents instead of JACK MIDI")
    p.add_argument("--server", default=None, help="use this running JACK server (default: a private one)")
    p.add_argument("--sinks", default=None,
                   help="comma-separated from null,null-host,record,preview,ndi,spout (default: all that can run here)")
    p.add_argument("--engine-thread", choices=("main", "worker"), default="main",
                   help="run the engine on the main thread, as `perform` does (default), or a worker thread")
    p.add_argument("--no-record-audio", action="store_true",
                   help="record the picture only (A/B the live audio track's cost)")
    p.add_argument("--soak-minutes", type=float, default=0.0, help="memory soak after the runs (default: none)")
    p.add_argument("--soak-config", default="demo")
    p.add_argument("--soak-sinks", default="null,record")
    p.add_argument("--soak-interval-s", type=float, default=30.0, help="RSS sampling interval in the soak")
    p.add_argument("--trim-check", action="store_true",
                   help="in the soak, also print RSS after glibc's malloc_trim at each sample: flat "
                        "means the growth was freed memory kept by the allocator, not a leak")
    p.add_argument("--gc-garbage", action="store_true",
                   help="keep what Python's cycle collector frees during the run and print its types: "
                        "memory held until a full collection comes from reference cycles")
    p.add_argument("--trace-memory", action="store_true",
                   help="soak under tracemalloc and print the allocation sites that grew over its second "
                        "half (slows every frame: for finding a leak, not for timing)")
    args = p.parse_args(argv)
    faulthandler.enable()  # a crash in a native library (rtmidi, torch) prints every thread's stack

    from ganinstrument.generator.device import pick_device
    from ganinstrument.outputs.spec import unavailable_reason

    device = pick_device(args.device)
    args.device = str(device)
    if device.type == "cpu":  # as `perform` does: one core left to the rest (OMP_NUM_THREADS=N wins)
        from ganinstrument.common.openmp import leave_a_core

        leave_a_core()
    configs = args.configs or (CUDA_CONFIGS if device.type == "cuda" else CPU_CONFIGS)
    if args.sinks:
        sink_names = args.sinks.split(",")
    else:
        sink_names = ["null", "null-host", "record"] + [k for k in ("preview", "ndi", "spout")
                                                        if unavailable_reason(k) is None]
    print(f"load at start: {machine_load()}")
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads, "
          f"{os.cpu_count()} CPUs, OpenMP: " + ", ".join(f"{k}={os.environ[k]}" for k in
              ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME") if k in os.environ) + ", "
          f"engine on the {args.engine_thread} thread")

    def body():
        if args.minutes > 0:
            for config in configs:
                run_config(config, args, args.minutes, sink_names)
        if args.soak_minutes > 0:
            run_config(args.soak_config, args, args.soak_minutes, args.soak_sinks.split(","), soak=True)

    if args.no_jack:
        body()
    else:
        from ganinstrument.testing.jack import jack_server

        global JACK
        with jack_server(args.server) as desc:
            JACK = desc
            print(f"JACK: {desc}")
            body()
    print(f"\nload at end: {machine_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
