"""Audio through a real JACK server: a player process -> PortAudio (sounddevice) -> features.

The session's private dummy-driver JACK server (`jack_server` in jack_helpers.py, 48 kHz,
256-frame periods) stands in for the sound card. `tests/jack_audio.py` runs as its own process
and plays a WAV of clicks; `jack_connect` patches it into the instrument's capture port; the
onsets the instrument reports must match the clicks' times. No fixed sleeps: every wait polls
with a timeout.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from jack_helpers import wait_for

from ganinstrument.sources.audio import AudioInput, write_wav

HERE = Path(__file__).resolve().parent
RATE = 48000
CLICKS_S = [0.30, 0.62, 1.05, 1.27, 1.71, 2.02, 2.48]  # uneven gaps: a shifted match cannot pass


def click_track(length_s: float = 2.8) -> np.ndarray:
    rng = np.random.default_rng(11)
    x = np.zeros(int(length_s * RATE), np.float32)
    n = int(0.012 * RATE)
    for t in CLICKS_S:
        burst = rng.standard_normal(n) * np.exp(-np.arange(n) / (0.0025 * RATE)) * 0.3
        i = int(round(t * RATE))
        x[i:i + n] += burst.astype(np.float32)
    return x


@pytest.fixture
def sounddevice_on_jack(jack_server):
    """sounddevice whose PortAudio has probed the test's JACK server (it probes at init only).

    Afterwards PortAudio is started again without JACK: a PortAudio still holding a JACK client
    when the session's server stops aborts the interpreter at exit (pa_jack.c Terminate assert).
    """
    import os

    import sounddevice as sd

    _reinitialise(sd)
    apis = [h["name"] for h in sd.query_hostapis()]
    if "JACK Audio Connection Kit" not in apis:
        pytest.fail(f"PortAudio {sd.get_portaudio_version()[1]} has no JACK host API (has {apis}); "
                    "Debian's libportaudio2 has it")
    yield sd
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ.update(JACK_DEFAULT_SERVER="ganinstrument-no-server", JACK_NO_START_SERVER="1")
    try:
        _reinitialise(sd)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _reinitialise(sd) -> None:
    if sd._initialized:
        sd._terminate()
    sd._initialize()


def capture_ports(server) -> list[str]:
    return [p for p in server.run("jack_lsp").stdout.split("\n") if re.match(r"PortAudio[^:]*:in_\d+$", p)]


def test_clicks_played_into_jack_are_found_on_time(jack_server, sounddevice_on_jack, tmp_path):
    wav = tmp_path / "clicks.wav"
    write_wav(wav, click_track(), RATE)
    player = subprocess.Popen([sys.executable, str(HERE / "jack_audio.py"), str(wav), "--name", "gi-player"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    inp = AudioInput("JACK Audio Connection Kit", channels=[0], block_size=256, backend=sounddevice_on_jack)
    try:
        assert player.stdout.readline().strip() == "ready", player.stderr.read()
        assert inp.start(), inp.status().message
        assert inp.sample_rate == RATE
        ports = wait_for(lambda: capture_ports(jack_server), 5.0)
        assert ports, jack_server.run("jack_lsp").stdout
        capture = ports[0]
        # PortAudio patches itself to system:capture_1; take the player's signal instead.
        jack_server.run("jack_disconnect", "system:capture_1", capture)
        assert jack_server.run("jack_connect", "gi-player:out", capture).returncode == 0
        assert wait_for(lambda: inp.status().blocks > 20, 5.0)  # audio is flowing
        inp.drain_onsets()  # nothing but silence so far

        player.stdin.write("go\n")
        player.stdin.flush()
        out, err = player.communicate(timeout=20)
        played = json.loads(out.strip().splitlines()[-1])
        assert "start_perf" in played, (out, err)
        end = played["start_perf"] + played["frames"] / RATE
        assert wait_for(lambda: inp.status().blocks * 256 / RATE > 0 and
                        inp._capture.last_callback_s > end + 0.1, 5.0)
        wait_for(lambda: inp._worker.ring.available() < 256, 2.0)
        onsets = [e for e in inp.drain_onsets() if e.kind == "onset"]
        st = inp.status()
    finally:
        ok = inp.stop(timeout=3.0)
        if player.poll() is None:
            player.kill()
            player.wait(5)
    assert ok
    detail = (f"onsets at {[round(e.time_s - played['start_perf'], 3) for e in onsets]} s after the "
              f"player started; clicks at {CLICKS_S}; status {st}; player xruns {played['xruns']}")
    assert len(onsets) == len(CLICKS_S), detail
    # Wall clock (perf_counter in both processes): each onset follows its click by the detection
    # delay (a hop or two for a click); generous bounds because the dummy server runs without
    # real-time scheduling here and a late period shifts a stamp.
    delays = [e.time_s - (played["start_perf"] + t) for e, t in zip(onsets, CLICKS_S)]
    assert all(-0.015 <= d <= 0.06 for d in delays), detail
    # Sample positions: the gaps between onsets equal the gaps between clicks, to a frame or so
    # of the analysis hop (needs no clock at all; a dropped block would show here).
    frames = np.array([e.frame for e in onsets], float)
    gaps_found = np.diff(frames) / RATE
    gaps_true = np.diff(CLICKS_S)
    assert np.abs(gaps_found - gaps_true).max() <= 0.012, detail
    assert st.state == "running" and st.extractor_errors == 0
