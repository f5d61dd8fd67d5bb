"""perform's crash supervisor: real child processes, really killed by signals.

The first tests use small shell scripts as the child (they stand in for `python -m
ganinstrument`, to crash on cue); the last one runs the real `perform`, kills it with SIGSEGV
mid-show, and checks that it comes back with the look it had.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from ganinstrument.commands.cli import main
from ganinstrument.commands.supervisor import CHILD_ENV, crashed, restarted_name, supervise

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and shell scripts")


def test_what_counts_as_a_crash():
    assert crashed(-signal.SIGSEGV) == "signal SIGSEGV"
    assert crashed(-signal.SIGABRT) == "signal SIGABRT"
    assert crashed(-signal.SIGKILL) == "signal SIGKILL"         # the OOM killer, say
    for code in (0, 1, 2, 130, -signal.SIGINT, -signal.SIGTERM):
        assert crashed(code) is None


def test_restarted_names_keep_what_was_written():
    assert restarted_name("take.mp4", 0) == "take.mp4"
    assert restarted_name("take.mp4", 1) == "take-restart1.mp4"
    assert restarted_name("/shows/a/params.jsonl", 2) == "/shows/a/params-restart2.jsonl"
    assert restarted_name("frames/", 1) == "frames-restart1" + os.sep


def fake_python(tmp_path: Path, body: str) -> str:
    """A stand-in for the interpreter: a shell script run as `<it> -m ganinstrument ARGS`."""
    path = tmp_path / "fake-python"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_a_child_that_crashes_after_playing_is_restarted_until_it_stops(tmp_path):
    # plays (writes the autosave), then crashes on its first two starts; the third stops normally
    runs = tmp_path / "runs"
    script = fake_python(tmp_path, f'''
echo "$GANINSTRUMENT_RESTART $*" >> {runs}
echo "targets: {{}}" > "$GANINSTRUMENT_AUTOSAVE"
[ "$GANINSTRUMENT_RESTART" -lt 2 ] && kill -SEGV $$
exit 0''')
    assert supervise(["perform", "--fps", "30"], python=script) == 0
    lines = runs.read_text().splitlines()
    assert lines == ["0 -m ganinstrument perform --fps 30", "1 -m ganinstrument perform --fps 30",
                     "2 -m ganinstrument perform --fps 30"]


def test_no_restart_for_a_crash_before_playing_nor_for_an_error_exit(tmp_path):
    runs = tmp_path / "runs"
    crash = fake_python(tmp_path, f'echo x >> {runs}; kill -SEGV $$')
    assert supervise(["perform"], python=crash) == 1
    assert runs.read_text().count("x") == 1
    runs.unlink()
    error = fake_python(tmp_path, f'echo x >> {runs}; echo "targets: {{}}" > "$GANINSTRUMENT_AUTOSAVE"; exit 1')
    assert supervise(["perform"], python=error) == 1
    assert runs.read_text().count("x") == 1


def test_gives_up_after_too_many_crashes(tmp_path):
    runs = tmp_path / "runs"
    script = fake_python(tmp_path, f'echo x >> {runs}; echo "targets: {{}}" > "$GANINSTRUMENT_AUTOSAVE"; '
                                   f'kill -ABRT $$')
    assert supervise(["perform"], python=script) == 1
    assert runs.read_text().count("x") == 6                 # the first start and 5 restarts


def test_stop_ends_the_child_with_sigterm_and_does_not_restart(tmp_path):
    runs = tmp_path / "runs"
    script = fake_python(tmp_path, f'''
echo start >> {runs}
trap 'echo term >> {runs}; exit 0' TERM
while true; do sleep 0.05; done''')
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    t0 = time.monotonic()
    assert supervise(["perform"], python=script, stop=stop) == 0
    assert time.monotonic() - t0 < 5
    assert runs.read_text().split() == ["start", "term"]


# -- the real perform ----------------------------------------------------------------------


def performers_under(pid: int) -> list[int]:
    """Child processes of `pid` running `python -m ganinstrument perform` (a session's JACK
    server, say, is a child too)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(fields[1]) == pid and b"ganinstrument" in cmdline and b"perform" in cmdline:
                found.append(int(entry.name))
    return found


def wait_for(predicate, timeout_s: float, step: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def send_osc(port: int, address: str, value: float) -> None:
    from pythonosc.udp_client import SimpleUDPClient

    SimpleUDPClient("127.0.0.1", port).send_message(address, value)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the child through /proc")
def test_perform_killed_by_sigsegv_comes_back_with_its_look(tmp_path, monkeypatch):
    monkeypatch.delenv(CHILD_ENV, raising=False)
    port = free_udp_port()
    log = tmp_path / "params.jsonl"
    takes = tmp_path / "takes"
    argv = ["perform", "--model", "demo", "--device", "cpu", "--mapping", "generic", "--midi-port", "none",
            "--audio-device", "none", "--osc-port", str(port), "--output", f"null,takes:{takes}", "--fps", "20",
            "--presets-dir", str(tmp_path), "--log-params", str(log)]
    stop = threading.Event()
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("rc", supervise(argv, stop=stop)), daemon=True)
    runner.start()
    try:
        assert wait_for(lambda: len(rows(log)) > 5, 120), "perform did not start playing"
        first = performers_under(os.getpid())
        # move psi over OSC until the log shows it (and an autosave has had time to follow)
        assert wait_for(lambda: (send_osc(port, "/ganinstrument/psi", 0.25) or True)
                        and rows(log)[-1]["values"]["psi"] < 0.26, 30, step=0.2)
        send_osc(port, "/ganinstrument/record.toggle", 1.0)  # start a take (as R or a pad would)
        assert wait_for(lambda: (takes / ".recording").is_file(), 30), "no take started"
        time.sleep(2.5)  # two keyframes (fragments) into the take, and an autosave of the look
        children = [p for p in performers_under(os.getpid()) if p in first]
        assert len(children) == 1
        os.kill(children[0], signal.SIGSEGV)
        restarted = tmp_path / "params-restart1.jsonl"
        assert wait_for(lambda: len(rows(restarted)) > 3, 120), "perform did not come back"
        again = rows(restarted)
        assert again[0]["values"]["psi"] == pytest.approx(0.25, abs=0.01)   # the look it had
        assert rows(log)[0]["values"]["psi"] == 1.0                         # the old log is kept
        # the take the crash cut plays up to its last fragment; recording went on in a new take
        assert wait_for(lambda: len(list(takes.glob("take-*.mp4"))) == 2, 30), "the take did not go on"
        cut = sorted(takes.glob("take-*.mp4"))[0]
        with av.open(str(cut)) as c:
            assert sum(1 for _ in c.decode(video=0)) >= 20  # >= 1 s at 20 fps
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive() and result["rc"] == 0
    # The take after the restart renders again from the session kept beside it, starting from
    # the look the restarted show began with (psi 0.25), close to what was recorded live.
    cut, resumed = sorted(takes.glob("take-*.mp4"))
    assert not cut.with_suffix(".json").exists()  # (the crash gave it no note)
    note = json.loads(resumed.with_suffix(".json").read_text())
    assert (takes / note["session"]).is_file() and note["frames"] >= 2
    again = tmp_path / "again"
    assert main(["render", "--take", str(resumed), "--out", f"{again}/", "--device", "cpu"]) == 0
    rendered = sorted(again.glob("*.png"))
    assert abs(len(rendered) - note["frames"]) <= 2  # (live frame times jitter around 1/20 s)
    with av.open(str(resumed)) as c:
        live = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    middle = len(live) // 2
    again_middle = np.asarray(Image.open(rendered[min(middle, len(rendered) - 1)]))
    assert np.abs(again_middle.astype(int) - live[middle].astype(int)).mean() < 6  # (H.264 is lossy)


def test_ctrl_c_lets_the_child_stop_by_itself(tmp_path):
    # as in a terminal: SIGINT reaches the whole process group, supervisor and child alike;
    # the child stops on its own SIGINT and is not sent a SIGTERM on top
    import subprocess

    runs = tmp_path / "runs"
    script = fake_python(tmp_path, f'''
trap 'echo int >> {runs}; sleep 0.5; exit 0' INT
trap 'echo term >> {runs}; exit 0' TERM
echo start >> {runs}
while true; do sleep 0.05; done''')
    code = (f"import sys; from ganinstrument.commands.supervisor import supervise; "
            f"sys.exit(supervise(['perform'], python={script!r}))")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    assert wait_for(lambda: runs.exists() and "start" in runs.read_text(), 20)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    assert runs.read_text().split() == ["start", "int"]
