"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and would catch a breach:
a copy of the package with one upward import and one circle added fails them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run([tool, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_contracts_hold():
    result = lint_imports(ROOT, ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_or_a_circle_breaks_them(tmp_path):
    shutil.copytree(ROOT / "ganinstrument", tmp_path / "ganinstrument",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    ops = tmp_path / "ganinstrument" / "generator" / "ops.py"
    ops.write_text(ops.read_text() + "\nfrom ..engine.loop import Engine  # noqa\n")  # a room reaching up
    osc = tmp_path / "ganinstrument" / "sources" / "osc.py"
    osc.write_text(osc.read_text() + "\nfrom ..outputs.base import Sinks  # noqa\n")  # one room into its neighbour
    schema = tmp_path / "ganinstrument" / "mapping" / "schema.py"
    schema.write_text(schema.read_text() + "\nfrom .parse import parse  # noqa\n")  # a circle
    result = lint_imports(tmp_path, tmp_path)
    assert result.returncode != 0
    out = result.stdout
    assert "The rooms are layers (each imports only the ones below) BROKEN" in out
    assert "ganinstrument.generator.ops -> ganinstrument.engine.loop" in out
    assert "ganinstrument.sources.osc -> ganinstrument.outputs.base" in out
    assert "No import circles inside a room BROKEN" in out and ".schema -> .parse" in out
