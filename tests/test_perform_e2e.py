"""`ganinstrument perform` end to end through real JACK MIDI and audio, on the demo network.

A controller stand-in (a JACK MIDI client) moves two faders, a player process plays clicks
into PortAudio's JACK capture port, and the instrument records what it shows: the faders'
targets move (seen in --log-params), every click pulses the mapped target, and the recording
is a valid H.264 video of every frame, with the clicks in its audio track where they were heard.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from jack_helpers import JACK_BACKEND, JackSender, wait_for
from test_audio_capture_jack import CLICKS_S, RATE, capture_ports, click_track, sounddevice_on_jack  # noqa: F401

from ganinstrument.commands.cli import main
from ganinstrument.sources.audio.input import write_wav

pytestmark = pytest.mark.timeout(180)
HERE = Path(__file__).resolve().parent
FRAMES = 120
FPS = 20

MAPPING = """\
schema_version: 1
info: {name: e2e}
device: {input: e2e-perform}
bindings:
  - {cc: 7, target: psi, range: [0, 1], takeover: none}
  - {cc: 8, target: z.3, takeover: none}
modulation:
  - {name: hit, feature: onset, target: z.0, pulse: {decay_ms: 120}, depth: 2.0}
"""


@pytest.mark.parametrize("supervised", [False, True], ids=["in-process", "supervised"])
def test_perform_plays_midi_and_audio_into_a_recording(jack_server, sounddevice_on_jack, tmp_path,  # noqa: F811
                                                       monkeypatch, supervised):
    monkeypatch.setenv("MIDO_BACKEND", JACK_BACKEND)
    mapping = tmp_path / "e2e.yaml"
    mapping.write_text(MAPPING)
    wav = tmp_path / "clicks.wav"
    write_wav(wav, click_track(), RATE)
    log, video = tmp_path / "params.jsonl", tmp_path / "take.mp4"
    player = subprocess.Popen([sys.executable, str(HERE / "jack_audio.py"), str(wav), "--name", "e2e-player"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result = {}
    args = ["perform", "--model", "demo", "--device", "cpu", "--mapping", str(mapping),
            "--audio-device", "JACK Audio Connection Kit", "--output", f"record:{video}",
            "--max-frames", str(FRAMES), "--fps", str(FPS), "--log-params", str(log), "--osc-port", "off",
            "--presets-dir", str(tmp_path)] + ([] if supervised else ["--no-restart"])
    # Supervised (the default): perform runs in a child process that the supervisor restarts
    # after a crash, and reads MIDI through its own MIDI child. Session 2 saw this path lose the
    # fader moves once in 3 runs, with MIDI read inside perform; with the MIDI child it passed
    # 10 of 10 (5 beside two CPU hogs). If it fails again, the perform log above says more.
    runner = threading.Thread(target=lambda: result.setdefault("rc", main(args)), daemon=True)
    try:
        assert player.stdout.readline().strip() == "ready", player.stderr.read()
        with JackSender("e2e-perform") as ctl:
            runner.start()
            ports = wait_for(lambda: capture_ports(jack_server), 30.0)
            assert ports, jack_server.run("jack_lsp").stdout
            jack_server.run("jack_disconnect", "system:capture_1", ports[0])
            assert jack_server.run("jack_connect", "e2e-player:out", ports[0]).returncode == 0
            assert wait_for(lambda: _connected(jack_server), 30.0), jack_server.connections()
            player.stdin.write("go\n")
            player.stdin.flush()
            ctl.cc(7, 0)     # psi to 0
            ctl.cc(8, 127)   # z.3 to its maximum
            runner.join(timeout=150)
        assert not runner.is_alive(), "perform did not stop after --max-frames"
    finally:
        if player.poll() is None:
            player.kill()
        player.wait(5)
    assert result.get("rc") == 0

    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == FRAMES
    psi = [r["values"]["psi"] for r in rows]
    z3 = [r["values"]["z.3"] for r in rows]
    z0 = [r["values"]["z.0"] for r in rows]
    assert psi[0] == 1.0 and min(psi) < 0.01      # the fader moved psi (smoothed) to 0
    assert z3[0] == 0.0 and max(z3) > 2.9
    assert max(z0) > 0.5 and z0[0] == 0.0         # the clicks pulsed z.0 around its base of 0
    pulses = sum(1 for a, b in zip(z0, z0[1:]) if b > a + 0.2)
    assert pulses >= 3, z0

    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (256, 256)
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert len(times) == FRAMES
    # The audio input is in the recording, lined up with the picture: each pulse of z.0 is
    # shown on a frame shortly after the click that caused it is heard in the file.
    # (An interval between clicks came out ~11 ms short in 2 of 8 runs here: the JACK dummy
    # driver's audio arrives unevenly on a loaded machine. 30 ms still tells the gaps apart.)
    clicks = _clicks_heard(video)
    assert len(clicks) >= 3 and np.diff(clicks) == pytest.approx(np.diff(CLICKS_S)[:len(clicks) - 1], abs=0.03)
    pulse_times = [times[i + 1] for i, (a, b) in enumerate(zip(z0, z0[1:])) if b > a + 0.2]
    for t in pulse_times:
        lag = t - max((c for c in clicks if c <= t + 0.01), default=-1.0)
        assert -0.01 <= lag < 0.25, (pulse_times, clicks)


def _clicks_heard(video) -> list[float]:
    """Where the clicks start in a recording's audio track (s, on the video's time line)."""
    with av.open(str(video)) as c:
        stream = c.streams.audio[0]
        assert stream.codec_context.name == "aac" and stream.rate == RATE
        frames = list(c.decode(stream))
    x = np.abs(np.concatenate([f.to_ndarray() for f in frames], axis=1)).max(axis=0)
    start = float(frames[0].pts * frames[0].time_base)
    loud = np.flatnonzero(x > 0.05) / RATE + start
    return [float(t) for i, t in enumerate(loud) if i == 0 or t - loud[i - 1] > 0.1]


def _connected(server) -> bool:
    """Whether the instrument has connected to the controller's output port."""
    lines = server.connections().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "e2e-perform:out":
            return i + 1 < len(lines) and lines[i + 1].startswith((" ", "\t"))
    return False
