"""Restart `perform` after a crash, where it left off.

Everything native in the show (rtmidi, PortAudio, OpenGL drivers, CUDA, Spout, the encoder)
can bring the process down, and Python cannot catch a segmentation fault. So `perform` runs as
a child of this small supervisor, which does nothing else: when the child dies of a crash (a
signal on Linux and macOS, an NTSTATUS error code on Windows), it starts it again with the
same arguments, and the new child resumes from the autosave (autosave.py) the old one wrote
at most a couple of seconds earlier. Recordings and logs of a restarted child go to new files
(`take.mp4` -> `take-restart1.mp4`), so what was written before the crash is kept.

It never restarts a child that stopped on purpose (a normal exit, an error it reported, Ctrl-C,
SIGTERM, the window closed), one that crashed before it played (a model that crashes on load
would only crash again), or more than `MAX_RESTARTS` times in `WINDOW_S` seconds.

The child learns its situation from environment variables: CHILD_ENV (set: do not supervise
again), AUTOSAVE_ENV (the autosave path) and RESTART_ENV (0 on the first start, n after the
nth restart).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger("ganinstrument")

CHILD_ENV = "GANINSTRUMENT_SUPERVISED"
AUTOSAVE_ENV = "GANINSTRUMENT_AUTOSAVE"
RESTART_ENV = "GANINSTRUMENT_RESTART"
MAX_RESTARTS = 5
WINDOW_S = 600.0


def crashed(returncode: int) -> str | None:
    """What killed the child, if it was a crash: a description, else None."""
    if returncode < 0:
        sig = -returncode
        if sig in (signal.SIGINT, signal.SIGTERM):
            return None
        try:
            return f"signal {signal.Signals(sig).name}"
        except ValueError:
            return f"signal {sig}"
    if sys.platform == "win32" and returncode >= 0xC0000000:  # NTSTATUS errors: 0xC0000005 ...
        return f"exception 0x{returncode:08X}"
    return None


def restarted_name(path: str, n: int) -> str:
    """`take.mp4` -> `take-restart1.mp4` (a folder keeps its name with the suffix)."""
    if n <= 0:
        return path
    p = Path(path)
    if path.endswith(("/", os.sep)) or p.is_dir():
        return str(p.with_name(f"{p.name}-restart{n}")) + os.sep
    return str(p.with_name(f"{p.stem}-restart{n}{p.suffix}"))


def supervise(argv: list[str], *, python: str | None = None, stop: threading.Event | None = None) -> int:
    """Run `python -m ganinstrument *argv` as a child until it stops on purpose; return its code.

    `stop` (for tests and embedding): set it to stop the child (SIGTERM) and not restart it.
    """
    stop = stop or threading.Event()
    workdir = tempfile.mkdtemp(prefix="ganinstrument-autosave-")
    autosave = Path(workdir) / "autosave.yaml"
    env = dict(os.environ, **{CHILD_ENV: "1", AUTOSAVE_ENV: str(autosave)})
    cmd = [python or sys.executable, "-m", "ganinstrument", *argv]
    crashes: list[float] = []
    restarts = 0
    grace = {"until": 0.0}  # after Ctrl-C the child got its own SIGINT: let it stop by itself
    old_handlers = _forward_signals(stop, grace)
    try:
        while True:
            env[RESTART_ENV] = str(restarts)
            started = time.monotonic()
            proc = subprocess.Popen(cmd, env=env)
            log.debug("perform running as process %d", proc.pid)
            asked = False
            while True:
                try:
                    code = proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    # once: a second SIGTERM could land after perform's handler is gone
                    if stop.is_set() and not asked and time.monotonic() >= grace["until"]:
                        asked = True
                        _terminate_soon(proc)
            if stop.is_set():
                # a SIGTERM we sent may land as the child finishes (its handler already gone)
                return 0 if code == -signal.SIGTERM else code
            how = crashed(code)
            if how is None:
                return code
            ran_s = time.monotonic() - started
            now = time.monotonic()
            crashes = [t for t in crashes if now - t < WINDOW_S] + [now]
            if not autosave.exists():
                log.error("perform crashed (%s) after %.1f s, before it played; not restarting", how, ran_s)
                return 1
            if len(crashes) > MAX_RESTARTS:
                log.error("perform crashed (%s) %d times in %d minutes; giving up", how, len(crashes),
                          WINDOW_S // 60)
                return 1
            restarts += 1
            log.error("perform crashed (%s) after %.1f s; restarting from the look it autosaved "
                      "(restart %d)", how, ran_s, restarts)
    finally:
        _restore_signals(old_handlers)
        for leftover in (autosave, *Path(workdir).glob(".*.tmp")):
            try:
                leftover.unlink()
            except OSError:
                pass
        try:
            os.rmdir(workdir)
        except OSError:
            pass


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        if sys.platform == "win32":
            # Windows has no SIGTERM: the console's Ctrl-C already reached the child; a
            # programmatic stop ends it the hard way after it had its chance
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.terminate()
        else:
            proc.send_signal(signal.SIGTERM)  # perform stops cleanly on SIGTERM
    except OSError:
        pass


def _forward_signals(stop: threading.Event, grace: dict):
    """Ctrl-C or SIGTERM to the supervisor: stop for good, and tell the child to stop. After
    Ctrl-C the terminal has sent the child its own SIGINT: it gets 3 s to stop by itself."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        if signum == signal.SIGINT:
            grace["until"] = time.monotonic() + 3.0
        stop.set()  # the wait loop tells the child, once

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, handler)
    return old


def _terminate_soon(proc: subprocess.Popen) -> None:
    # not from inside the signal handler on Windows (it may wait): a thread does it
    threading.Thread(target=_terminate, args=(proc,), daemon=True).start()


def _restore_signals(old) -> None:
    if not old:
        return
    for sig, handler in old.items():
        signal.signal(sig, handler)
