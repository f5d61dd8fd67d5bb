"""A JACK audio player for the capture test, run as its own process (DESIGN.md section 5).

    python tests/jack_audio.py FILE.wav [--name CLIENT]

Registers the JACK client CLIENT (default "gi-player") with one output port "out", prints
"ready" once active, and outputs silence until a line "go" arrives on stdin; then it plays the
file once (mono: the first channel) and prints one JSON line: the `time.perf_counter()` at the
JACK period whose first sample is the file's first sample, JACK's frame time then,
the frames played and the xruns seen. The start is dated one period before the process
callback runs, as the capture side dates the frames it receives. perf_counter is CLOCK_MONOTONIC on Linux, the same clock
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
    args = parser.parse_args(argv)

    import jack
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ganinstrument.sources.audio import read_wav

    samples, _rate = read_wav(args.wav)
    data = np.ascontiguousarray(samples[:, 0], dtype=np.float32)
    client = jack.Client(args.name, no_start_server=True)
    port = client.outports.register("out")
    go, done = threading.Event(), threading.Event()
    state = {"pos": -1, "start_perf": None, "start_frame": None, "xruns": 0}

    @client.set_process_callback
    def process(frames: int) -> None:
        buf = port.get_array()
        pos = state["pos"]
        if pos < 0:
            if not go.is_set():
                buf.fill(0.0)
                return
            # The period's samples are those of the period just captured; like the capture side
            # (AudioInput's stamps), date its first sample one period before its processing time.
            state["start_perf"] = time.perf_counter() - frames / client.samplerate
            state["start_frame"] = client.last_frame_time
            pos = 0
        n = max(0, min(frames, len(data) - pos))
        buf[:n] = data[pos:pos + n]
        buf[n:] = 0.0
        state["pos"] = pos + n
        if pos + n >= len(data):
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
        print(json.dumps({"start_perf": state["start_perf"], "start_frame": state["start_frame"],
                          "frames": len(data), "rate": client.samplerate, "xruns": state["xruns"]}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
