"""OpenMP's idle policy is set before torch loads, and the user's own setting wins."""

from __future__ import annotations

import os
import subprocess
import sys

from ganinstrument.openmp import DEFAULTS, configure_openmp


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
    code = ("import sys, os; from ganinstrument.cli import main; "
            "rc = main(['targets']); "
            "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "20000 True"
