"""Preset files: every field round-trips, saves are atomic, broken files say what is wrong."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from ganinstrument.state.preset_bank import PresetBank
from ganinstrument.state.presets import (
    ModelRef,
    Preset,
    PresetError,
    file_sha256,
    load_preset_file,
    save_preset_file,
)


def _preset(**over):
    base = dict(
        targets={"psi": 0.7, "z.0": -1.25, "seed": 42.0, "edit.b64": 1.5, "blend.all": 0.25, "blend.b8": -0.5},
        latent=(0.5, -1.0, 2.0),
        models=(ModelRef("a", "/models/a.pkl", "ab" * 32), ModelRef("b", "/models/b.pkl", None)),
        name="sunset",
        saved_at="2026-11-22T20:00:00",
    )
    base.update(over)
    return Preset(**base)


def test_every_field_round_trips(tmp_path):
    p = _preset()
    path = save_preset_file(tmp_path / "sunset.yaml", p)
    q = load_preset_file(path)
    assert dict(q.targets) == dict(p.targets)
    assert q.latent == p.latent
    assert q.models == p.models
    assert q.name == p.name and q.saved_at == p.saved_at and q.schema_version == 1
    # Edits and blends get their own sections, for people reading the file.
    data = yaml.safe_load(path.read_text())
    assert data["edits"] == {"edit.b64": 1.5} and set(data["blends"]) == {"blend.all", "blend.b8"}


def test_seed_latent_and_unknown_sections_round_trip(tmp_path):
    p = _preset(latent=None, extra={"notes": "from rehearsal"})
    q = load_preset_file(save_preset_file(tmp_path / "x.yaml", p))
    assert q.latent is None and q.extra == {"notes": "from rehearsal"}


def test_every_problem_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("schema_version: 1\ntargets: {psi: high, z.0: .nan}\nlatent: {vector: [1, two]}\n"
                    "models: [{role: a}]\n")
    with pytest.raises(PresetError) as info:
        load_preset_file(path)
    err = info.value
    assert str(path) in str(err) and len(err.problems) == 4
    assert any("targets.psi" in p for p in err.problems)
    assert any("latent.vector[1]" in p for p in err.problems)


@pytest.mark.parametrize("text, needle", [
    ("targets: [1, 2\n", "not valid YAML"),
    ("- just\n- a list\n", "mapping at the top level"),
    ("targets: {psi: 1}\n", "schema_version is missing"),
    ("schema_version: 99\n", "newer than this ganinstrument"),
])
def test_broken_files_name_the_file_and_the_problem(tmp_path, text, needle):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(PresetError, match=needle) as info:
        load_preset_file(path)
    assert "broken.yaml" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(PresetError, match="no such preset file"):
        load_preset_file(tmp_path / "nope.yaml")


_SLOW_SAVE = """
import os, sys, time
from ganinstrument.state import presets
real_fsync = os.fsync
def slow_fsync(fd):
    print("writing", flush=True)
    time.sleep(30)
    real_fsync(fd)
presets.os.fsync = slow_fsync
p = presets.Preset(targets={f"z.{i}": float(i) for i in range(5000)}, name="new")
presets.save_preset_file(sys.argv[1], p)
"""


def test_a_save_killed_mid_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "01 live.yaml"
    save_preset_file(path, _preset(name="old"))
    before = path.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"  # mid-write: data written, not yet renamed
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert path.read_bytes() == before
    assert load_preset_file(path).name == "old"


def test_save_failure_is_a_preset_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PresetError, match="cannot write"):
        save_preset_file(blocker / "sub" / "p.yaml", _preset())


def test_bank_slots_and_walk(tmp_path):
    for name in ("03 sunset.yaml", "01 intro.yaml", "notes.txt", "10-drop.yml"):
        (tmp_path / name).write_text("schema_version: 1\n")
    bank = PresetBank(tmp_path)
    assert [p.name for p in bank.files()] == ["01 intro.yaml", "03 sunset.yaml", "10-drop.yml"]
    assert bank.slot_path(3).name == "03 sunset.yaml" and bank.slot_path(2) is None
    assert bank.path_for_save(2).name == "02.yaml" and bank.path_for_save(10).name == "10-drop.yml"
    assert bank.step(+1).name == "01 intro.yaml"
    assert bank.step(+1).name == "03 sunset.yaml"
    assert bank.step(-2).name == "10-drop.yml"  # wraps
    bank.mark(tmp_path / "03 sunset.yaml")
    assert bank.step(+1).name == "10-drop.yml"
    assert PresetBank(tmp_path / "missing").step(1) is None


def test_file_hash_tracks_content(tmp_path):
    f = tmp_path / "m.bin"
    f.write_bytes(b"abc")
    h1 = file_sha256(f)
    time.sleep(0.01)
    f.write_bytes(b"abcd")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**6))
    assert file_sha256(f) != h1 and file_sha256(tmp_path / "none") is None
