"""Time to first frame: from launching `ganinstrument perform` to its first frame out.

Each run launches the real command (demo network, generic mapping, OSC, MIDI and audio as a
performer gets them, supervised as by default) and times the lines it logs against the launch:
torch imported and the model built ("model demo on ..."), the show ready ("playing: ..."),
and the first frame handed to the outputs ("first frame out"). `preview` runs under a private
Xvfb display unless DISPLAY is set; GANINSTRUMENT_HOME is a fresh folder unless set (the
user's real folders are left alone). Prints the median and the slowest of `--runs` runs.

Usage:
    python benchmarks/startup.py                      # null and preview, 5 runs each
    python benchmarks/startup.py --outputs null --runs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MARKS = {"model": "model demo on", "ready": "playing:", "first frame": "first frame out"}


def one_run(output: str, env: dict, cwd: str) -> dict[str, float]:
    cmd = [sys.executable, "-m", "ganinstrument", "perform", "--output", output,
           "--max-frames", "5", "--osc-port", "0"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=env, cwd=cwd)
    times: dict[str, float] = {}
    for line in proc.stderr:
        for name, mark in MARKS.items():
            if name not in times and mark in line:
                times[name] = time.perf_counter() - t0
    proc.wait(60)
    if "first frame" not in times:
        raise SystemExit(f"{output}: no first frame (exit {proc.returncode})")
    return times


def start_xvfb() -> tuple[subprocess.Popen, str]:
    if shutil.which("Xvfb") is None:
        raise SystemExit("preview needs a display: install xvfb or set DISPLAY")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x720x24",
                               "-nolisten", "tcp"], pass_fds=(write_fd,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        return server, ":" + pipe.readline().strip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outputs", default="null,preview", help="comma-separated --output specs")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    env = dict(os.environ)
    xvfb = None
    home = tempfile.TemporaryDirectory()  # a performer's first launch: no presets folder yet
    env.setdefault("GANINSTRUMENT_HOME", home.name)
    if "preview" in args.outputs and not env.get("DISPLAY"):
        xvfb, env["DISPLAY"] = start_xvfb()
    try:
        with tempfile.TemporaryDirectory() as cwd:  # an empty folder, as a performer's would be
            print(f"{'output':<10} {'model':>12} {'ready':>12} {'first frame':>12}   (s after launch: median / max of {args.runs})")
            for output in args.outputs.split(","):
                runs = [one_run(output, env, cwd) for _ in range(args.runs)]
                cells = []
                for name in MARKS:
                    values = [r[name] for r in runs if name in r]
                    cells.append(f"{statistics.median(values):.2f}/{max(values):.2f}" if values else "-")
                print(f"{output:<10} " + " ".join(f"{c:>12}" for c in cells))
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(5)
        home.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
