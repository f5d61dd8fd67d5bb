"""`ganinstrument devices` and `ganinstrument learn` as a performer runs them (learn over real JACK ports)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading

import pytest
import yaml
from jack_helpers import JACK_BACKEND, JackSender

# Where an ALSA sequencer exists, `auto` rightly picks it: these check the machine without one
# (CI's, this one's), where auto must find JACK by itself.
ALSA_SEQ_ABSENT = pytest.mark.skipif(os.path.exists("/dev/snd/seq"),
                                     reason="checks a machine without an ALSA sequencer")

pytestmark = pytest.mark.timeout(120)


def run_cli(*args, jack=None, env_extra=None, timeout=90):
    env = dict(os.environ, **(env_extra or {}))
    if jack is not None:
        env["JACK_DEFAULT_SERVER"] = jack.name
    return subprocess.run([sys.executable, "-m", "ganinstrument", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def no_jack_for_portaudio(monkeypatch):
    """In-process probes must not let PortAudio (sounddevice) connect to the session's JACK
    server: a PortAudio still holding a JACK client when that server stops aborts the
    interpreter at exit (pa_jack.c Terminate assert). Subprocesses get the real server."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "ganinstrument-no-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")


def devices_report(**kw) -> str:
    from ganinstrument.commands.devices import report

    lines: list[str] = []
    report(lines.append, **kw)
    return "\n".join(lines)


def test_devices_never_crashes_without_midi_or_audio(no_jack_for_portaudio):
    text = devices_report(midi_backend="mido.backends.rtmidi/LINUX_ALSA")  # no /dev/snd/seq here
    for section in ("MIDI backend:", "audio", "outputs:", "null: available", "ndi: available", "record: available",
                    "takes: available", "torch "):
        assert section in text


def test_devices_unknown_api_says_so(no_jack_for_portaudio):
    text = devices_report(midi_backend="mido.backends.rtmidi/NOPE")
    assert "MIDI: unavailable" in text and "unknown MIDI API" in text and "outputs:" in text


def test_devices_cli_lists_jack_ports(jack_server):
    with JackSender("devices-ctl"):
        out = run_cli("devices", jack=jack_server, env_extra={"MIDO_BACKEND": JACK_BACKEND})
    assert out.returncode == 0, out.stderr
    assert f"MIDI backend: {JACK_BACKEND}" in out.stdout
    assert "    devices-ctl:out" in out.stdout


def test_learn_over_jack_writes_the_binding(jack_server, tmp_path):
    out_file = tmp_path / "learned.yaml"
    out_file.write_text("# my set\nschema_version: 1\nbindings:\n  - {cc: 1, target: z.0}  # keep me\n")
    import os

    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "ganinstrument", "learn", "--out", str(out_file),
         "--midi-port", "learn-ctl", "--midi-backend", JACK_BACKEND],
        env=dict(os.environ, JACK_DEFAULT_SERVER=jack_server.name), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()

    def expect(text, timeout_s=60.0):
        seen = []
        while True:
            try:
                line = lines.get(timeout=timeout_s)
            except queue.Empty:
                pytest.fail(f"never saw {text!r}; output: {''.join(seen)}")
            seen.append(line)
            if text in line:
                return line

    try:
        with JackSender("learn-ctl") as ctl:
            expect("MIDI learn:")
            proc.stdin.write("psi\n")
            proc.stdin.flush()
            expect("move the control for psi")
            for value in range(0, 128, 8):
                ctl.cc(7, value, channel=2)
            expect("absolute CC 7, channel 3 -> psi")
            expect("wrote")
            proc.stdin.write("\n")
            proc.stdin.flush()
            expect("1 binding written")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    text = out_file.read_text()
    assert text.startswith("# my set\n") and "# keep me" in text
    assert yaml.safe_load(text)["bindings"][-1] == {"cc": 7, "channel": 3, "target": "psi"}


def run_cli_without_midi_env(*args, jack):
    import os

    env = {k: v for k, v in os.environ.items() if k != "MIDO_BACKEND"}
    env["JACK_DEFAULT_SERVER"] = jack.name
    return subprocess.run([sys.executable, "-m", "ganinstrument", *args], capture_output=True, text=True,
                          timeout=90, env=env)


@ALSA_SEQ_ABSENT
def test_devices_finds_jack_by_itself_and_alsa_stays_quiet(jack_server):
    # No MIDO_BACKEND, no --midi-api, no ALSA sequencer: the JACK server is found and said,
    # and libasound's own "ALSA lib seq_hw.c" lines no longer reach stderr.
    with JackSender("auto-ctl"):
        out = run_cli_without_midi_env("devices", jack=jack_server)
    assert out.returncode == 0, out.stderr
    assert f"MIDI backend: {JACK_BACKEND} (chosen automatically (no ALSA sequencer (/dev/snd/seq));" in out.stdout
    assert "    auto-ctl:out" in out.stdout
    assert "ALSA lib" not in out.stderr


def test_midi_api_option_chooses(jack_server):
    with JackSender("api-ctl"):
        out = run_cli_without_midi_env("devices", "--midi-api", "jack", jack=jack_server)
    assert out.returncode == 0, out.stderr
    assert f"MIDI backend: {JACK_BACKEND} (as asked;" in out.stdout and "    api-ctl:out" in out.stdout


@ALSA_SEQ_ABSENT
def test_the_midi_input_process_finds_jack_without_the_variable(jack_server, monkeypatch):
    from jack_helpers import wait_for

    from ganinstrument.sources.midi.input import MidiInput

    monkeypatch.delenv("MIDO_BACKEND", raising=False)
    with JackSender("child-auto-ctl") as sender:
        inp = MidiInput("child-auto-ctl", poll_s=0.05).start()
        try:
            assert wait_for(lambda: inp.open_ports, 5.0), list(inp.messages)
            sender.cc(7, 3)
            got: list = []
            assert wait_for(lambda: got.extend(inp.drain()) or got, 5.0)
            assert got[0].value == 3 and inp.backend.input_process.api_label == "UNIX_JACK"
        finally:
            inp.close()
