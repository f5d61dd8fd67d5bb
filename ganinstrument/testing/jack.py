"""JACK on a machine without sound hardware: a private server, controllers, waiting.

One harness for the test suite (tests/jack_helpers.py wraps it in pytest fixtures) and the
benchmarks (benchmarks/midi.py, engine.py). It lives in the package, in `ganinstrument.testing`,
so that both import it the same way from a plain checkout and from an installed wheel; the
instrument itself never imports it. Nothing here imports pytest.

- `jack_server(server=None)` (context manager) starts `jackd --no-realtime -n <unique name>
  -d dummy` with its log in a temporary file, points this process and its children at it
  (JACK_DEFAULT_SERVER, and JACK_NO_START_SERVER so no client ever starts a server of its
  own), waits until `jack_lsp` reaches it and stops it at the end (terminate, then kill after
  5 s). With a name it uses that running server instead. `start_server`, `stop_server` and
  `jack_env` are its parts, for callers that report failures their own way.
- `JackServer` runs JACK's tools against the server and reads its log (xruns, late clients).
- `JackSender` / `JackReceiver`: MIDI ports in this process (a controller stand-in, an LED
  surface that records what it is sent).
- `Sender`: a controller in its own process, as a real controller is (its sends do not compete
  with the instrument for the GIL), driven over stdin/stdout with one JSON object per line.
  Every send time it reports is `time.perf_counter()`: CLOCK_MONOTONIC on Linux, the same clock
  as the instrument's MonotonicClock. `FloodPlayer` is a Sender that floods with message i as
  CC (i >> 7), value (i & 127), so the receiver can read each message's index.
- `wait_for` polls a condition with a timeout, so callers never rely on fixed sleeps.

Run as a script (`python jack.py --sender CLIENT`) this file is the Sender's child process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

JACK_BACKEND = "mido.backends.rtmidi/UNIX_JACK"
_ENV = ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER", "JACK_NO_AUDIO_RESERVATION")
READY_S = 15.0  # how long a starting jackd may take to answer jack_lsp


class JackError(RuntimeError):
    """The JACK server or a controller process could not be started or reached."""


def wait_for(condition: Callable[[], object], timeout_s: float = 5.0, interval: float = 0.005):
    """Poll `condition` until it returns something truthy (returned) or `timeout_s` pass (its
    last result)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def restore_env(saved: dict) -> None:
    """Put environment variables back as `saved` ({name: value or None}) had them."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def jack_env(name: str) -> Iterator[str]:
    """Point this process and its children at the JACK server `name` (and never let a client
    start one); restore the environment at the end."""
    saved = {key: os.environ.get(key) for key in _ENV}
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1", JACK_NO_AUDIO_RESERVATION="1")
    try:
        yield name
    finally:
        restore_env(saved)


@dataclass
class JackServer:
    """A JACK server: one we started (`process`, its log at `log_path`) or a running one (both None)."""

    name: str
    process: subprocess.Popen | None = None
    log_path: str | None = None
    rate: int = 48000
    period: int = 256

    def __str__(self) -> str:
        if self.process is None:
            return f"running JACK server '{self.name}'"
        return (f"private jackd '{self.name}' (dummy driver, {self.rate} Hz, period {self.period} "
                f"frames = {self.period / self.rate * 1e3:.2f} ms)")

    def log(self) -> str:
        if not self.log_path:
            return ""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def run(self, *args: str, timeout_s: float = 10.0) -> subprocess.CompletedProcess:
        """Run a JACK tool (jack_connect, jack_lsp, ...) against this server."""
        env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout_s, env=env)

    def connections(self) -> str:
        return self.run("jack_lsp", "-c").stdout

    def answers(self, timeout_s: float = 5.0) -> bool:
        """Whether `jack_lsp` reaches the server."""
        try:
            return self.run("jack_lsp", timeout_s=timeout_s).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def xruns(self) -> dict | None:
        """{"xruns": ..., "late clients": {client: count}} from the private server's log (None
        for a server we did not start)."""
        if not self.log_path:
            return None
        late: dict[str, int] = {}
        xruns = 0
        for line in self.log().splitlines():
            if "XRun" in line or "xrun" in line:
                xruns += 1
            if "not finished" in line:
                client = line.split("client =")[-1].split("was not")[0].strip() if "client =" in line else "?"
                late[client] = late.get(client, 0) + 1
        return {"xruns": xruns, "late clients": late}


def start_server(name: str, *, rate: int = 48000, period: int = 256) -> JackServer:
    """Start a private `jackd` (dummy driver) named `name` and wait until it answers."""
    jackd = shutil.which("jackd")
    if jackd is None or shutil.which("jack_lsp") is None:
        raise JackError("jackd not found: install the Debian package jackd2 (listed in .ci/apt-packages)")
    log = tempfile.NamedTemporaryFile("w+b", prefix="jackd-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [jackd, "--no-realtime", "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    log.close()
    server = JackServer(name, proc, log.name, rate, period)
    try:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise JackError(f"jackd exited with {proc.returncode}:\n{server.log()}")
            if server.answers():
                return server
            time.sleep(0.05)
        raise JackError(f"jackd did not become ready within {READY_S:g} s:\n{server.log()}")
    except BaseException:  # (Ctrl-C included): no jackd is left behind
        stop_server(server)
        raise


def stop_server(server: JackServer) -> None:
    """Stop a server we started (terminate, then kill after 5 s) and delete its log."""
    if server.process is not None:
        server.process.terminate()
        try:
            server.process.wait(5.0)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5.0)
    if server.log_path:
        with contextlib.suppress(OSError):
            os.unlink(server.log_path)


@contextlib.contextmanager
def jack_server(server: str | None = None, *, period: int = 256, rate: int = 48000,
                prefix: str = "ganinstrument-bench") -> Iterator[JackServer]:
    """Yield the JACK server in use: a private dummy one named `<prefix>-<pid>` unless `server`
    names a running one. This process and its children talk to it until the end."""
    with jack_env(server or f"{prefix}-{os.getpid()}") as name:
        if server is not None:
            running = JackServer(name)
            if not running.answers():
                raise JackError(f"no JACK server named {name!r} answers")
            yield running
            return
        own = start_server(name, rate=rate, period=period)
        try:
            yield own
        finally:
            stop_server(own)


# -- MIDI ports in this process ---------------------------------------------------------------
class JackSender:
    """A controller stand-in: a JACK MIDI output port named `<client>:<port>`."""

    def __init__(self, client: str = "test-controller", port: str = "out"):
        import rtmidi

        self.client, self.port = client, port
        self._out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, client)
        self._out.open_virtual_port(port)
        self.name = f"{client}:{port}"

    def send(self, *data: int) -> None:
        self._out.send_message(list(data))

    def cc(self, number: int, value: int, channel: int = 0) -> None:
        self.send(0xB0 | channel, number, value)

    def note(self, note: int, velocity: int, channel: int = 0) -> None:
        self.send((0x90 if velocity else 0x80) | channel, note, velocity)

    def close(self) -> None:
        if self._out is not None:
            self._out.close_port()
            self._out.delete()
            self._out = None

    def __enter__(self) -> JackSender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class JackReceiver:
    """A MIDI input port that records what it is sent (the feedback output's LEDs)."""

    def __init__(self, client: str = "test-leds", port: str = "in"):
        import rtmidi

        self.received: list[list[int]] = []
        self._in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, client)
        self._in.set_callback(lambda msg, _data: self.received.append(list(msg[0])))
        self._in.open_virtual_port(port)
        self.name = f"{client}:{port}"

    def close(self) -> None:
        if self._in is not None:
            self._in.cancel_callback()
            self._in.close_port()
            self._in.delete()
            self._in = None

    def __enter__(self) -> JackReceiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- a controller in its own process ----------------------------------------------------------
class Sender:
    """A controller in a child process: a JACK MIDI output port `<client>:out`.

    `call(cmd, ...)` blocks until the child has done it and returns its JSON reply; `start(...)`
    sends a command without waiting, `result()` collects its reply later and `poll()` returns
    it if it has come (else None). Commands: cc, probe, flood, stream (see `_sender_main`).
    """

    def __init__(self, client: str = "bench-controller"):
        self.client = client
        self.name = f"{client}:out"
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--sender", client],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline()
        try:
            ready = json.loads(line or "{}").get("ready") is True
        except ValueError:
            ready = False
        if not ready:
            self.proc.kill()
            self.proc.wait(5)
            raise JackError(f"the controller process {client!r} did not start: {line!r}")

    def start(self, cmd: str, **args) -> None:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise JackError(f"the controller process {self.client!r} exited")
        return json.loads(line)

    def poll(self) -> dict | None:
        """The reply to the last `start`, if it has come; None while the child is still at it."""
        import select

        if select.select([self.proc.stdout], [], [], 0)[0]:
            return self.result()
        return None

    def call(self, cmd: str, **args) -> dict:
        self.start(cmd, **args)
        return self.result()

    def stop_stream(self) -> dict:
        """End a running `stream` now; returns its reply."""
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        return self.result()

    def close(self) -> None:
        try:
            self.start("quit")
            self.proc.wait(5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FloodPlayer(Sender):
    """`total` control changes at `rate` per second from another process, message i as CC
    (i >> 7) with value (i & 127), 10 at a time. start() begins; finished() says (without
    blocking) whether every message was sent, 0.1 s after the last (JACK's next cycles carry it)."""

    def __init__(self, client: str, total: int, rate: float):
        super().__init__(client)
        self.total, self.rate = total, rate
        self._done: dict | None = None

    def start(self, cmd: str | None = None, **args) -> None:
        if cmd is not None:
            return super().start(cmd, **args)
        super().start("flood", pattern="index", total=self.total, rate=self.rate, batch=10, tail_s=0.1)

    def finished(self) -> bool:
        if self._done is None:
            self._done = self.poll()
            if self._done is not None and self._done.get("sent") != self.total:
                raise JackError(f"the flood player failed: {self._done}")
        return self._done is not None


# -- the child --------------------------------------------------------------------------------
def _sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def _sender_main(client: str) -> None:
    import random
    import select

    import rtmidi

    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, client)
    out.open_virtual_port("out")
    send = out.send_message
    print(json.dumps({"ready": True}), flush=True)
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        if not line.strip() or line.strip() == "stop":   # a stop that came after its stream ended
            continue
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "quit":
            break
        if cmd == "cc":  # one message now
            t = time.perf_counter()
            send([0xB0 | req.get("channel", 0), req["cc"], req["value"]])
            reply = {"t": t}
        elif cmd == "probe":
            # `n` CCs on one controller, one step of a triangle wave each (so each moves the
            # target by a pickup-safe step), spaced by a random gap in [gap_lo, gap_hi] s so the
            # sends are not phase-locked to the frames.
            rng = random.Random(req.get("seed", 0))
            cc, value, step = req["cc"], req["start"], 1
            lo_s, hi_s = req["gap"]
            sends = []
            next_t = time.perf_counter() + 0.05
            for _ in range(req["n"]):
                _sleep_until(next_t)
                if not 0 <= value + step <= 127:
                    step = -step
                value += step
                t = time.perf_counter()
                send([0xB0, cc, value])
                sends.append((t, value))
                next_t = t + rng.uniform(lo_s, hi_s)
            reply = {"sends": sends}
        elif cmd == "flood":
            # `rate` messages/s, `total` of them (or for `seconds` s), `batch` at a time. Pattern
            # "ramp": round-robin over CCs `ccs`, each a ramp; "index": message i is CC i >> 7
            # with value i & 127. The reply comes `tail_s` after the last message.
            rate, batch = float(req["rate"]), int(req.get("batch", 10))
            total = int(req["total"]) if "total" in req else int(rate * req["seconds"])
            if req.get("pattern", "ramp") == "index":
                def message(i):
                    return [0xB0, (i >> 7) & 0x7F, i & 0x7F]
            else:
                ccs = req["ccs"]

                def message(i):
                    return [0xB0, ccs[i % len(ccs)], (i // len(ccs)) & 0x7F]
            t0 = time.perf_counter()
            for i in range(total):
                send(message(i))
                if i % batch == batch - 1:
                    _sleep_until(t0 + (i + 1) / rate)
            t1 = time.perf_counter()
            time.sleep(req.get("tail_s", 0.0))
            reply = {"sent": total, "t0": t0, "t1": t1}
        elif cmd == "stream":
            # A steady control load for `seconds` s: `rate` CCs/s round-robin over `ccs`, each a
            # triangle wave of step 1 (passes soft takeover); stops early on any line on stdin.
            ccs, rate = req["ccs"], float(req["rate"])
            values = {c: req.get("start", 64) for c in ccs}
            steps = {c: 1 for c in ccs}
            t0 = time.perf_counter()
            end = t0 + req["seconds"]
            i = 0
            while time.perf_counter() < end:
                c = ccs[i % len(ccs)]
                if not 0 <= values[c] + steps[c] <= 127:
                    steps[c] = -steps[c]
                values[c] += steps[c]
                send([0xB0, c, values[c]])
                i += 1
                _sleep_until(t0 + i / rate)
                if select.select([sys.stdin], [], [], 0)[0]:
                    sys.stdin.readline()
                    break
            reply = {"sent": i, "t0": t0, "t1": time.perf_counter()}
        else:
            reply = {"error": f"unknown command {cmd!r}"}
        print(json.dumps(reply), flush=True)
    time.sleep(0.05)  # let JACK's next cycles carry the last messages before the port goes
    out.close_port()
    out.delete()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--sender":
        try:
            _sender_main(sys.argv[2])
        except BrokenPipeError:  # the caller went away
            pass
    else:
        sys.exit("usage: jack.py --sender CLIENT")
