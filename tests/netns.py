"""A private network namespace with only the loopback device, for the Ableton Link tests: Link
finds peers by multicast, which must never reach this machine's real networks.

`run_in_netns(argv)` runs a command in a fresh namespace (`unshare --net`; not root: in a user
namespace of its own too): loopback up, a multicast route on it, nothing else. Fails the
test, in one line, where the machine does not allow namespaces (util-linux and iproute2 are in
.ci/apt-packages).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

SETUP = "ip link set lo up && ip route add 224.0.0.0/4 dev lo && exec \"$@\""


def run_in_netns(argv: list[str], timeout_s: float, env: dict | None = None) -> subprocess.CompletedProcess:
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the Link tests need {' and '.join(missing)} (util-linux, iproute2) for a private network")
    user = [] if os.geteuid() == 0 else ["--map-root-user"]  # (root needs no user namespace)
    proc = subprocess.run(["unshare", "--net", *user, "sh", "-c", SETUP, "sh", *argv],
                          capture_output=True, text=True, timeout=timeout_s, env=env)
    if proc.returncode != 0 and ("unshare failed" in proc.stderr or "Operation not permitted" in proc.stderr):
        pytest.fail(f"this machine does not allow a private network namespace (unshare --net): "
                    f"{proc.stderr.strip().splitlines()[-1]}")
    return proc
