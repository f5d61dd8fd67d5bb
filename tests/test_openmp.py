"""OpenMP's idle policy is set before torch loads, and the user's own setting wins."""

from __future__ import annotations

import os
import subprocess
import sys

from ganinstrument.common.openmp import DEFAULTS, configure_openmp


def test_defaults_fill_only_what_is_unset(monkeypatch):
    for key in (*DEFAULTS, "OMP_WAIT_POLICY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("KMP_BLOCKTIME", "50")
    configure_openmp()
    assert os.environ["GOMP_SPINCOUNT"] == "20000" and os.environ["KMP_BLOCKTIME"] == "50"


def test_a_wait_policy_of_the_users_own_is_left_alone(monkeypatch):
    for key in DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    configure_openmp()
    assert not any(key in os.environ for key in DEFAULTS)


def test_the_cli_sets_it_for_the_commands_that_load_torch():
    env = {k: v for k, v in os.environ.items() if k not in (*DEFAULTS, "OMP_WAIT_POLICY")}
    code = ("import sys, os; from ganinstrument.commands.cli import main; "
            "rc = main(['targets']); "
            "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "20000 True"


def test_a_live_show_leaves_one_core(monkeypatch):
    from ganinstrument.common.openmp import THREAD_VARS, live_cpu_threads

    for key in THREAD_VARS:
        monkeypatch.delenv(key, raising=False)
    assert live_cpu_threads(cpus=2, default=2) == 1
    assert live_cpu_threads(cpus=8, default=8) == 7
    assert live_cpu_threads(cpus=1, default=1) == 1
    assert live_cpu_threads(cpus=16, default=8) == 8   # hyperthreads: torch took the physical cores
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert live_cpu_threads(cpus=8, default=8) is None  # the user's choice wins


def test_perform_on_the_cpu_plays_with_one_core_left(tmp_path):
    """In a process of its own (torch's thread count is process-wide): perform runs its frames
    with a core fewer than torch's default, and gives the count back when it returns."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    code = (
        "import os, torch; from ganinstrument.commands.cli import main; import ganinstrument.engine.loop as e\n"
        "seen = []\n"
        "real = e.Engine.frame\n"
        "def frame(self):\n"
        "    seen.append(torch.get_num_threads()); return real(self)\n"
        "e.Engine.frame = frame\n"
        "torch.set_num_threads(3)\n"
        "rc = main(['perform', '--device', 'cpu', '--midi-port', 'none', '--osc-port', 'off', '--output', 'null',\n"
        f"           '--max-frames', '3', '--fps', '0', '--no-restart', '--presets-dir', {str(tmp_path)!r}])\n"
        "print(rc, sorted(set(seen)), torch.get_num_threads(), os.cpu_count())\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]  # exit code, threads during the frames, after, CPUs
    assert last == f"0 [{max(1, min(3, os.cpu_count() - 1))}] 3 {os.cpu_count()}", (last, out.stderr[-2000:])
