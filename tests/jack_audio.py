"""A JACK audio player for the capture test, run as its own process.

    python tests/jack_audio.py FILE.wav [--name CLIENT] [--marks I,J,...]

Registers the JACK client CLIENT (default "gi-player") with one output port "out", prints
"ready" once active, and outputs silence until a line "go" arrives on stdin; then it plays the
file once (mono: the first channel) and prints one JSON line: the `time.perf_counter()` time
of the file's first sample, JACK's frame time then, the frames played, the xruns seen (in
all and while playing), the server's speed against the wall clock while playing (1.0: it
kept real time) and, for each sample index in --marks, the JACK frame time it went out at
(a cycle the player misses delays everything after it by a period).
Samples are dated as the capture side dates the frames it receives (a period's last frame
at its callback; the earliest origin over the periods played). perf_counter is CLOCK_MONOTONIC on Linux, the same clock
in every process, so the test can compare it with the instrument's onset times.

A separate process because a Python player sharing the capture's GIL delays the features
thread and costs blocks (notes/audio-features.md section 6).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("wav")
    parser.add_argument("--name", default="gi-player")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--marks", default="", help="comma-separated sample indices to report")
    args = parser.parse_args(argv)

    import jack
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ganinstrument.sources.audio.input import read_wav

    samples, _rate = read_wav(args.wav)
    data = np.ascontiguousarray(samples[:, 0], dtype=np.float32)
    client = jack.Client(args.name, no_start_server=True)
    port = client.outports.register("out")
    go, done = threading.Event(), threading.Event()
    state = {"pos": -1, "start_frame": None, "start_wall": None, "speed": None, "xruns": 0,
             "xruns_before": 0, "xruns_playing": 0}
    origins: list[float] = []
    marks = [int(m) for m in args.marks.split(",") if m]
    mark_frames: list[int] = []  # the JACK frame time at which each mark actually went out

    @client.set_process_callback
    def process(frames: int) -> None:
        # As the capture side dates frames: a period's last frame arrives when its callback
        # runs; callbacks run late, never early, so the earliest origin seen is the true one.
        origins.append(time.perf_counter() - (client.last_frame_time + frames) / client.samplerate)
        buf = port.get_array()
        pos = state["pos"]
        if pos < 0:
            if not go.is_set():
                buf.fill(0.0)
                return
            state["start_frame"] = client.last_frame_time
            state["start_wall"] = time.perf_counter()
            state["xruns_before"] = state["xruns"]
            pos = 0
        n = max(0, min(frames, len(data) - pos))
        for m in marks:
            if pos <= m < pos + n:
                mark_frames.append(client.last_frame_time + m - pos)
        buf[:n] = data[pos:pos + n]
        buf[n:] = 0.0
        state["pos"] = pos + n
        if pos + n >= len(data) and not done.is_set():
            # how fast the server's clock ran against the wall: 1.0 when it kept real time
            frames_run = client.last_frame_time - state["start_frame"]
            if frames_run > 0:
                state["speed"] = frames_run / client.samplerate / (time.perf_counter() - state["start_wall"])
            state["xruns_playing"] = state["xruns"] - state["xruns_before"]
            done.set()

    @client.set_xrun_callback
    def xrun(delay: float) -> None:
        state["xruns"] += 1

    with client:
        print("ready", flush=True)
        line = sys.stdin.readline().strip()
        if line != "go":
            return 2
        go.set()
        if not done.wait(args.timeout):
            print(json.dumps({"error": "timed out"}), flush=True)
            return 1
        # one more period so the tail leaves the port before the client goes
        time.sleep(2 * client.blocksize / client.samplerate)
        # the origin over the playing periods only: JACK's frame time is continuous there
        start_perf = min(origins[-(len(data) // client.blocksize + 2):]) + state["start_frame"] / client.samplerate
        print(json.dumps({"start_perf": start_perf, "start_frame": state["start_frame"],
                          "frames": len(data), "rate": client.samplerate, "xruns": state["xruns"],
                          "xruns_playing": state["xruns_playing"], "speed": state["speed"],
                          "mark_frames": mark_frames}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
