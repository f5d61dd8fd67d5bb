"""A private JACK server with the dummy driver: real MIDI ports on a machine without sound hardware.

`jack_server` (session fixture) starts `jackd --no-realtime -n <unique name> -d dummy` with its
log in a temporary file, points this test process at it (JACK_DEFAULT_SERVER, and
JACK_NO_START_SERVER so no client ever starts a server of its own), waits until `jack_lsp`
reaches it, and stops it at the end (terminate, then kill after 5 s). DESIGN.md section 5.

`JackSender` is a controller stand-in: a JACK MIDI output port other clients can open.
`wait_for` polls a condition with a timeout, so tests never rely on fixed sleeps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

JACK_BACKEND = "mido.backends.rtmidi/UNIX_JACK"
_ENV = ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER", "JACK_NO_AUDIO_RESERVATION")


def wait_for(condition: Callable[[], object], timeout: float = 5.0, interval: float = 0.005):
    """Poll `condition` until it returns something truthy (returned) or `timeout` s pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


@dataclass
class JackServer:
    name: str
    process: subprocess.Popen
    log_path: str

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def run(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
        """Run a JACK tool (jack_connect, jack_lsp, ...) against this server."""
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)

    def connections(self) -> str:
        return self.run("jack_lsp", "-c").stdout


def _start(name: str) -> JackServer:
    jackd = shutil.which("jackd")
    if jackd is None or shutil.which("jack_lsp") is None:
        pytest.fail("jackd not found: install the Debian package jackd2 (listed in .ci/apt-packages)")
    log = tempfile.NamedTemporaryFile("w+b", prefix="jackd-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [jackd, "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    log.close()
    server = JackServer(name, proc, log.name)
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jackd exited with {proc.returncode}:\n{server.log()}")
        if server.run("jack_lsp", timeout=5.0).returncode == 0:
            return server
        time.sleep(0.05)
    _stop(server)
    pytest.fail(f"jackd did not become ready within 15 s:\n{server.log()}")


def _stop(server: JackServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(5.0)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5.0)
    try:
        os.unlink(server.log_path)
    except OSError:
        pass


@pytest.fixture(scope="session")
def jack_server():
    """A private JACK server (dummy driver) for the whole session; this process talks to it."""
    name = f"ganinstrument-test-{os.getpid()}"
    saved = {key: os.environ.get(key) for key in _ENV}
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1", JACK_NO_AUDIO_RESERVATION="1")
    try:
        server = _start(name)
        try:
            yield server
        finally:
            _stop(server)
    finally:
        restore_env(saved)


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
    """A MIDI input port that records what our feedback output sends (for LED tests)."""

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


_FLOOD_PLAYER = r"""
import sys, time, rtmidi
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, sys.argv[1])
out.open_virtual_port("out")
total, rate = int(sys.argv[2]), float(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
t0 = time.monotonic()
for i in range(total):
    out.send_message([0xB0, (i >> 7) & 0x7F, i & 0x7F])  # the index, readable from each message
    if i % 10 == 9:  # 10 messages at a time: JACK carries ~120 events per 256-frame period
        delay = t0 + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
time.sleep(0.1)  # let JACK's next cycles carry the last ones before the port goes
print("done", flush=True)
sys.stdin.readline()
"""


class FloodPlayer:
    """A controller in its own process (as a real one is): `total` control changes at `rate`
    per second, message i as CC (i >> 7) with value (i & 127). start() begins."""

    def __init__(self, client: str, total: int, rate: float):
        import sys

        self.name = f"{client}:out"
        self.proc = subprocess.Popen([sys.executable, "-c", _FLOOD_PLAYER, client, str(total), str(rate)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self._done = None

    def start(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finished(self) -> bool:
        """Whether every message was sent (non-blocking)."""
        import select

        if self._done is None and select.select([self.proc.stdout], [], [], 0)[0]:
            self._done = self.proc.stdout.readline().strip() == "done"
            assert self._done, "the flood player failed"
        return bool(self._done)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> FloodPlayer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def restore_env(saved: dict) -> None:
    """Put environment variables back as `saved` ({name: value or None}) had them."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
