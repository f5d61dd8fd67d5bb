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
import warnings
from pathlib import Path

import numpy as np
import pytest
from jack_helpers import restore_env, wait_for

from ganinstrument.sources.audio.input import AudioInput, write_wav

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
        restore_env(saved)


def _reinitialise(sd) -> None:
    if sd._initialized:
        sd._terminate()
    sd._initialize()


def capture_ports(server) -> list[str]:
    return [p for p in server.run("jack_lsp").stdout.split("\n") if re.match(r"PortAudio[^:]*:in_\d+$", p)]


def play_clicks(server, inp, wav, name):
    """Play the click file once into the capture port; (onsets, the player's report, capture
    overflow flags raised while it played)."""
    marks = ",".join(str(int(round(t * RATE))) for t in CLICKS_S)
    player = subprocess.Popen([sys.executable, str(HERE / "jack_audio.py"), str(wav), "--name", name,
                               "--marks", marks],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert player.stdout.readline().strip() == "ready", player.stderr.read()
        capture = capture_ports(server)[0]
        # PortAudio patches itself to system:capture_1; take the player's signal instead.
        server.run("jack_disconnect", "system:capture_1", capture)
        assert server.run("jack_connect", f"{name}:out", capture).returncode == 0
        blocks = inp.status().blocks
        assert wait_for(lambda: inp.status().blocks > blocks + 10, 5.0)  # audio is flowing
        inp.drain_onsets()  # nothing but silence so far
        overflows = inp.status().overflows
        player.stdin.write("go\n")
        player.stdin.flush()
        out, err = player.communicate(timeout=20)
        played = json.loads(out.strip().splitlines()[-1])
        assert "start_perf" in played, (out, err)
        # wait for the last period to reach the capture and the worker to empty the ring
        end = played["start_perf"] + played["frames"] / RATE
        assert wait_for(lambda: inp._capture.last_callback_s > end + 0.1, 5.0)
        wait_for(lambda: inp._worker.ring.available() < 256, 2.0)
        onsets = [e for e in inp.drain_onsets() if e.kind == "onset"]
        return onsets, played, inp.status().overflows - overflows
    finally:
        if player.poll() is None:
            player.kill()
            player.wait(5)


def test_clicks_played_into_jack_are_found_on_time(jack_server, sounddevice_on_jack, tmp_path):
    wav = tmp_path / "clicks.wav"
    write_wav(wav, click_track(), RATE)
    inp = AudioInput("JACK Audio Connection Kit", channels=[0], block_size=256, backend=sounddevice_on_jack)
    runs = []
    try:
        assert inp.start(), inp.status().message
        assert inp.sample_rate == RATE
        assert wait_for(lambda: capture_ports(jack_server), 5.0), jack_server.run("jack_lsp").stdout
        # Without real-time scheduling the dummy server has xruns when the machine is busy, and a
        # capture that misses a cycle loses a period. So: up to two tries for one run in which
        # the capture lost nothing, as notes/audio-features.md section 7 advises.
        for attempt in range(2):
            onsets, played, overflows = play_clicks(jack_server, inp, wav, f"gi-player-{attempt}")
            runs.append((onsets, played, overflows))
            if overflows == 0:
                break
        st = inp.status()
    finally:
        assert inp.stop(timeout_s=3.0)
    onsets, played, overflows = runs[-1]
    detail = (f"onsets at {[round(e.time_s - played['start_perf'], 3) for e in onsets]} s after the "
              f"player started; clicks at {CLICKS_S}; status {st}; player {played}; "
              f"capture overflows while playing {overflows}")
    assert st.state == "running" and st.extractor_errors == 0 and st.dropped_frames == 0, detail
    # Every click found once, in order, even on a busy machine.
    assert len(onsets) == len(CLICKS_S), detail
    # Sample positions: the gaps between onsets equal the gaps between the clicks as they went
    # out of the player (JACK frame times), to a frame or so of the analysis hop. No clock is
    # involved; a block the capture lost or repeated would show here.
    frames = np.array([e.frame for e in onsets], float)
    sent = np.array(played["mark_frames"], float)
    assert len(sent) == len(CLICKS_S), detail
    gaps_error = np.abs(np.diff(frames) - np.diff(sent)) / RATE
    if overflows:  # the capture itself missed cycles: a period lost each
        warnings.warn(f"JACK xruns cost the capture cycles in both tries; checked loosely: {detail}",
                      stacklevel=1)
        assert gaps_error.max() <= 0.012 + overflows * 256 / RATE, (gaps_error, detail)
        return
    assert gaps_error.max() <= 0.012, (gaps_error, detail)
    # Wall clock (perf_counter in both processes): each onset follows its click by the detection
    # delay (a hop or two for a click), as long as the server kept real time and no cycle was
    # missed (an xrun shifts the player's later clicks against the wall by whole periods).
    if played["xruns_playing"] == 0 and played["speed"] is not None and abs(played["speed"] - 1.0) < 0.01:
        delays = [e.time_s - (played["start_perf"] + t) for e, t in zip(onsets, CLICKS_S)]
        assert all(-0.015 <= d <= 0.06 for d in delays), (delays, detail)
