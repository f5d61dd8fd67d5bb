"""A wheel built from this repository, installed in a fresh venv, finds its own mappings and
presets: `perform` and `check` run from an empty folder, with nothing from the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED_MAPPINGS = sorted(p.name for p in (REPO / "ganinstrument" / "data" / "mappings").glob("*.yaml"))
SHIPPED_PRESETS = sorted(p.name for p in (REPO / "ganinstrument" / "data" / "presets").glob("*.yaml"))


def _run(cmd, cwd, env, timeout=240):
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A venv (seeing the system's torch, numpy, ...) with ganinstrument installed from a wheel."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"  # a copy, so the build writes nothing into the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "ganinstrument", src / "ganinstrument",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    rc, out = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", root / "dist",
                    src], root, env)
    assert rc == 0, out
    (wheel,) = (root / "dist").glob("ganinstrument-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert len(SHIPPED_MAPPINGS) >= 7 and len(SHIPPED_PRESETS) >= 3
    assert sorted(Path(n).name for n in names if n.startswith("ganinstrument/data/mappings/")) == SHIPPED_MAPPINGS
    assert sorted(Path(n).name for n in names if n.startswith("ganinstrument/data/presets/")) == SHIPPED_PRESETS
    rc, out = _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", root / "venv"], root, env)
    assert rc == 0, out
    bindir = root / "venv" / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    rc, out = _run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], root, env)
    assert rc == 0, out
    return root / "venv", bindir


@pytest.fixture
def empty(tmp_path, venv):
    """An empty folder to run from, a fresh per-user folder, and the venv's environment."""
    cwd = tmp_path / "empty"
    cwd.mkdir()
    home = tmp_path / "home"
    env = dict(os.environ, GANINSTRUMENT_HOME=str(home), PATH=f"{venv[1]}{os.pathsep}{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    return cwd, home, env


def test_the_package_comes_from_the_wheel(venv, empty):
    cwd, _home, env = empty
    rc, out = _run([venv[1] / "python", "-c", "import ganinstrument; print(ganinstrument.__file__)"], cwd, env)
    assert rc == 0, out
    assert Path(out.strip()).resolve().is_relative_to(venv[0].resolve()), out  # not the checkout


def test_perform_from_an_empty_folder(venv, empty):
    cwd, home, env = empty
    rc, out = _run([venv[1] / "ganinstrument", "perform", "--max-frames", "3", "--output", "null", "--fps", "0",
                    "--device", "cpu", "--midi-port", "none", "--audio-device", "none", "--osc-port", "off",
                    "--no-restart", "--preset", "1"], cwd, env)
    assert rc == 0, out
    assert "no such mapping" not in out and "no such preset" not in out
    # the default presets folder: the user's, seeded with the shipped presets (slot 1 recalled)
    assert sorted(p.name for p in (home / "presets").iterdir()) == SHIPPED_PRESETS
    assert list(cwd.iterdir()) == [] or all(p.name == "takes" for p in cwd.iterdir())


def test_check_a_shipped_mapping_by_name(venv, empty):
    cwd, _home, env = empty
    rc, out = _run([venv[1] / "ganinstrument", "check", "generic", "korg-nanokontrol2"], cwd, env)
    assert rc == 0, out
    assert out.count("OK   ") == 2, out


def test_a_missing_mapping_says_where_it_looked(venv, empty):
    cwd, home, env = empty
    rc, out = _run([venv[1] / "ganinstrument", "perform", "--mapping", "nosuch", "--max-frames", "1", "--output",
                    "null", "--midi-port", "none", "--audio-device", "none", "--osc-port", "off", "--no-restart",
                    "--device", "cpu"], cwd, env)
    assert rc == 1, out
    line = next(x for x in out.splitlines() if "nosuch" in x)
    assert "no such mapping file" in line and str(home / "mappings") in line
    assert str(venv[0]) in line or "site-packages" in line  # the shipped folder, inside the venv
    assert "generic" in line  # the shipped names
