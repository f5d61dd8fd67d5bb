"""MIDI inputs read in a child process (sources/midi/child.py / host.py), through a real JACK server:
the messages arrive, a crash of that process costs a restart of it and not of the show, errors
from inside it say what went wrong, and nothing is left running after close."""

from __future__ import annotations

import os
import random
import signal
import sys
import time

import pytest
from jack_helpers import JACK_BACKEND, JackSender, wait_for

from ganinstrument.sources.midi.child import ALIVE, DATA, ERROR, OPENED, READY, FrameReader, frame
from ganinstrument.sources.midi.input import MidiInput
from ganinstrument.sources.midi.ports import Backend, MidiPortError

pytestmark = pytest.mark.timeout(60)


def collect(inp: MidiInput, count: int, timeout: float = 5.0) -> list:
    got: list = []
    wait_for(lambda: got.extend(inp.drain()) or len(got) >= count, timeout)
    return got


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def test_frames_survive_any_chunking():
    rng = random.Random(5)
    sent = [(READY, 0, b"UNIX_JACK"), (OPENED, 7, b""), (ERROR, 3, "café gone".encode()), (ALIVE, 0, b"")]
    sent += [(DATA, rng.randrange(1, 9), bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4))))
             for _ in range(500)]
    stream = b"".join(frame(*f) for f in sent)
    for trial in range(20):
        reader, got, pos = FrameReader(), [], 0
        while pos < len(stream):
            step = rng.randrange(1, 40) if trial else 1  # trial 0: one byte at a time
            got += reader.feed(stream[pos:pos + step])
            pos += step
        assert got == sent


@pytest.fixture
def sender(jack_server):
    with JackSender("proc-controller") as s:
        yield s


def test_inputs_are_read_in_a_child_that_ends_with_them(sender):
    inp = MidiInput("proc-controller", backend=JACK_BACKEND, poll_s=0.05).start()
    try:
        assert wait_for(lambda: inp.open_ports, 10.0), inp.messages
        host = inp.backend.input_process
        assert host is not None and host.pid != os.getpid() and alive(host.pid)
        assert host.api_label == "UNIX_JACK"
        for value in range(100):
            sender.cc(20, value)
        assert [e.value for e in collect(inp, 100)] == list(range(100))
        pid = host.pid
    finally:
        assert inp.close(timeout_s=2.0)
    assert wait_for(lambda: not alive(pid), 3.0)


def test_a_crashed_child_is_restarted_and_the_ports_reopened(sender):
    inp = MidiInput("proc-controller", backend=JACK_BACKEND, poll_s=0.05).start()
    try:
        assert wait_for(lambda: inp.open_ports, 10.0), inp.messages
        host = inp.backend.input_process
        sender.cc(1, 1)
        assert [e.value for e in collect(inp, 1)] == [1]
        old = host.pid
        os.kill(old, signal.SIGSEGV)  # what RtMidi's queue did under load
        assert wait_for(lambda: host.restarts == 1 and host.pid not in (None, old), 10.0)
        assert any("died (signal 11)" in m for m in inp.messages), list(inp.messages)
        # The port was reopened in the new child: a fresh stream arrives whole and in order.
        assert wait_for(lambda: any(c.startswith("ganinstrument") for c in _connections(sender)), 5.0)
        for value in range(50):
            sender.cc(2, value)
        got = [e for e in collect(inp, 50) if e.number == 2]
        assert [e.value for e in got] == list(range(50))
        assert inp.open_ports == ("proc-controller:out",)  # the show never saw the port go
    finally:
        assert inp.close(timeout_s=2.0)


def _connections(sender) -> list[str]:
    import subprocess

    out = subprocess.run(["jack_lsp", "-c", sender.name], capture_output=True, text=True, timeout=10).stdout
    return [line.strip() for line in out.splitlines()[1:]]


def test_an_open_that_fails_in_the_child_says_why(jack_server):
    backend = Backend(JACK_BACKEND)
    try:
        with JackSender("proc-brief") as brief:
            name = brief.name
            assert name in backend.names("input")
        with pytest.raises(MidiPortError, match=r"cannot open MIDI input 'proc-brief:out'.*has gone"):
            backend.open_input(name, lambda data: None)
        assert backend.input_process is not None and alive(backend.input_process.pid)
    finally:
        backend.close()


def test_inputs_stay_in_process_when_asked(sender, monkeypatch):
    monkeypatch.setenv("GANINSTRUMENT_MIDI_INPROCESS", "1")
    inp = MidiInput("proc-controller", backend=JACK_BACKEND, poll_s=0.05).start()
    try:
        assert wait_for(lambda: inp.open_ports, 10.0), inp.messages
        assert inp.backend.input_process is None
        for value in range(20):
            sender.cc(3, value)
        assert [e.value for e in collect(inp, 20)] == list(range(20))
    finally:
        assert inp.close(timeout_s=2.0)


def test_no_child_possible_falls_back_and_says_so(sender, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    inp = MidiInput("proc-controller", backend=JACK_BACKEND, poll_s=0.05).start()
    try:
        assert wait_for(lambda: inp.open_ports, 10.0), inp.messages
        assert any("cannot start the MIDI input process" in m and "own process instead" in m
                   for m in inp.messages), list(inp.messages)
        sender.cc(4, 9)
        assert [e.value for e in collect(inp, 1)] == [9]
    finally:
        assert inp.close(timeout_s=2.0)


def test_the_child_ends_when_the_show_dies(sender):
    """A show killed outright (SIGKILL: no cleanup at all) leaves no MIDI process behind,
    which on Windows would keep the controller's port busy: its stdin ends, so it does."""
    import subprocess
    import textwrap

    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from ganinstrument.sources.midi.input import MidiInput
        inp = MidiInput("proc-controller", backend={JACK_BACKEND!r}, poll_s=0.05).start()
        deadline = time.monotonic() + 10
        while not inp.open_ports and time.monotonic() < deadline:
            time.sleep(0.01)
        print(inp.backend.input_process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    show = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert show.returncode == -signal.SIGKILL, show.stderr
    pid = int(show.stdout.split()[0])
    assert wait_for(lambda: not alive(pid), 5.0), f"MIDI process {pid} outlived the show"


def test_a_close_waiting_on_a_child_that_dies_returns_at_once(sender):
    """The child stops answering (stopped, then killed) while a port closes: the close gives up
    as the child dies, not after its full reply timeout, and the child is started again."""
    import threading
    import time

    from ganinstrument.sources.midi.host import REPLY_TIMEOUT_S

    backend = Backend(JACK_BACKEND)
    try:
        close = backend.open_input("proc-controller:out", lambda data: None)
        host = backend.input_process
        old = host.pid
        os.kill(old, signal.SIGSTOP)
        took: list[float] = []

        def closing():
            t0 = time.monotonic()
            try:
                close()
            except Exception:
                pass
            took.append(time.monotonic() - t0)

        closer = threading.Thread(target=closing)
        closer.start()
        time.sleep(0.3)  # the close is waiting for an answer now
        os.kill(old, signal.SIGKILL)
        closer.join(REPLY_TIMEOUT_S + 2)
        assert took and took[0] < REPLY_TIMEOUT_S - 1, took
        assert wait_for(lambda: host.restarts == 1 and host.pid not in (None, old), 10.0)
    finally:
        backend.close()


def test_a_hung_child_is_killed_and_restarted(sender):
    """A child that stops answering (hung in a driver: here SIGSTOP) is noticed by its silence,
    killed and started again; the port comes back."""
    inp = MidiInput("proc-controller", backend=JACK_BACKEND, poll_s=0.05).start()
    try:
        assert wait_for(lambda: inp.open_ports, 10.0), inp.messages
        host = inp.backend.input_process
        host.hung_s = 1.0
        old = host.pid
        os.kill(old, signal.SIGSTOP)
        assert wait_for(lambda: host.restarts == 1 and host.pid not in (None, old), 10.0)
        assert any("stopped answering for 1 s" in m for m in inp.messages), list(inp.messages)
        assert not alive(old)
        assert wait_for(lambda: any(c.startswith("ganinstrument") for c in _connections(sender)), 5.0)
        sender.cc(5, 77)
        assert [e.value for e in collect(inp, 1)] == [77]
        # A quiet child is not a hung one: no more restarts while nothing is played.
        time.sleep(2.0)
        assert host.restarts == 1
    finally:
        assert inp.close(timeout_s=2.0)


def test_a_child_that_cannot_start_says_why_at_once():
    """The child reports its own failure (here: an API this rtmidi lacks) and the host raises
    HostUnavailable with that reason straight away, not after its start timeout."""
    import time

    from ganinstrument.sources.midi.host import START_TIMEOUT_S, HostUnavailable, InputHost

    host = InputHost("NO_SUCH_API", "ganinstrument", 64)
    t0 = time.monotonic()
    try:
        with pytest.raises(HostUnavailable, match="did not start: AttributeError.*NO_SUCH_API"):
            host.open("anything", lambda data: None)
    finally:
        host.close()
    assert time.monotonic() - t0 < START_TIMEOUT_S / 2
