"""JACK plumbing shared by the benchmarks: a private server and a controller in its own process.

`jack_server(name=None, period=256, rate=48000)` is a context manager: with `name=None` it
starts `jackd --no-realtime -d dummy` under a unique name (what the tests do, DESIGN.md
section 5) and stops it at the end; with a name it uses that running server. Either way it
points this process and its children at the server (JACK_DEFAULT_SERVER, JACK_NO_START_SERVER).

`Sender` is a MIDI controller stand-in in its own process (as a real controller is: its
sends do not compete with the instrument for the GIL). It is driven over stdin/stdout with one
JSON object per line; every send time it reports is `time.perf_counter()`, which on Linux is
CLOCK_MONOTONIC, the same clock as the instrument's MonotonicClock in the benchmark process.

Run as a script (`python _jack.py --sender CLIENT`) it is the sender itself.
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

JACK_BACKEND = "mido.backends.rtmidi/UNIX_JACK"
_ENV = ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER", "JACK_NO_AUDIO_RESERVATION")


class JackError(RuntimeError):
    pass


def _jack_lsp_ok(timeout: float = 5.0) -> bool:
    try:
        return subprocess.run(["jack_lsp"], capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class ServerInfo:
    """What `jack_server` yields: `str()` describes the server; `xruns()` counts the late
    cycles the private server has logged so far (None for a server we did not start)."""

    def __init__(self, desc: str, log_path: str | None):
        self.desc, self.log_path = desc, log_path

    def __str__(self) -> str:
        return self.desc

    def log(self) -> str:
        if not self.log_path:
            return ""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def xruns(self) -> dict | None:
        """{"xruns": ..., "late clients": {client: count}} from the private server's log."""
        if not self.log_path:
            return None
        late: dict[str, int] = {}
        xruns = 0
        for line in self.log().splitlines():
            if "XRun" in line or "xrun" in line:
                xruns += 1
            if "was not finished" in line or "not finished" in line:
                client = line.split("client =")[-1].split("was not")[0].strip() if "client =" in line else "?"
                late[client] = late.get(client, 0) + 1
        return {"xruns": xruns, "late clients": late}


@contextlib.contextmanager
def jack_server(name: str | None = None, period: int = 256, rate: int = 48000):
    """Yield a ServerInfo for the server in use (a private dummy one unless `name` is given)."""
    saved = {key: os.environ.get(key) for key in _ENV}
    own = name is None
    name = name or f"ganinstrument-bench-{os.getpid()}"
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1", JACK_NO_AUDIO_RESERVATION="1")
    proc = log_path = None
    try:
        if own:
            jackd = shutil.which("jackd")
            if jackd is None or shutil.which("jack_lsp") is None:
                raise JackError("jackd / jack_lsp not found: install the Debian package jackd2")
            log = tempfile.NamedTemporaryFile("w+b", prefix="jackd-bench-", suffix=".log", delete=False)
            log_path = log.name
            proc = subprocess.Popen(
                [jackd, "--no-realtime", "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            deadline = time.monotonic() + 15.0
            while not _jack_lsp_ok():
                if proc.poll() is not None or time.monotonic() > deadline:
                    with open(log_path, errors="replace") as f:
                        raise JackError(f"jackd did not start:\n{f.read()}")
                time.sleep(0.05)
            desc = f"private jackd '{name}' (dummy driver, {rate} Hz, period {period} frames = " \
                   f"{period / rate * 1e3:.2f} ms)"
        else:
            if not _jack_lsp_ok():
                raise JackError(f"no JACK server named {name!r} answers")
            desc = f"running JACK server '{name}'"
        yield ServerInfo(desc, log_path)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        if log_path:
            with contextlib.suppress(OSError):
                os.unlink(log_path)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Sender:
    """A controller in a child process: a JACK MIDI output port `<client>:out`.

    Each command blocks until the child has done it and returns its JSON reply; `start(...)`
    sends a command without waiting and `result()` collects its reply later.
    """

    def __init__(self, client: str = "bench-controller"):
        self.client = client
        self.name = f"{client}:out"
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--sender", client],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline()
        if json.loads(line or "{}").get("ready") is not True:
            raise JackError(f"the sender did not start: {line!r}")

    def start(self, cmd: str, **args) -> None:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise JackError("the sender exited")
        return json.loads(line)

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

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- the child -------------------------------------------------------------------------------
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
            # `rate` messages/s for `seconds` s over CCs `ccs` (each one a ramp), `batch` at a time.
            ccs, rate, batch = req["ccs"], float(req["rate"]), int(req.get("batch", 10))
            total = int(rate * req["seconds"])
            t0 = time.perf_counter()
            for i in range(total):
                k = i % len(ccs)
                send([0xB0, ccs[k], (i // len(ccs)) & 0x7F])
                if i % batch == batch - 1:
                    _sleep_until(t0 + (i + 1) / rate)
            t1 = time.perf_counter()
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
        except BrokenPipeError:  # the benchmark went away
            pass
    else:
        sys.exit("usage: _jack.py --sender CLIENT")
