"""Where mappings and presets are found: a path, the user's folder, the shipped ones; a name
found nowhere says where it was looked for."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from ganinstrument.commands.check import run_check
from ganinstrument.commands.perform import resolve_preset
from ganinstrument.common import userdirs
from ganinstrument.mapping import MappingError, load_mapping
from ganinstrument.mapping.resolve import find_mapping
from ganinstrument.state.presets import PresetError


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv(userdirs.HOME_ENV, str(home))
    monkeypatch.chdir(tmp_path)
    return home


def test_the_per_user_folder_on_each_system(monkeypatch, tmp_path):
    monkeypatch.delenv(userdirs.HOME_ENV, raising=False)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert userdirs.user_folder("mappings") == tmp_path / "xdg" / "ganinstrument" / "mappings"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert userdirs.user_dir() == tmp_path / ".config" / "ganinstrument"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert userdirs.user_dir() == tmp_path / "Library" / "Application Support" / "ganinstrument"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    assert userdirs.user_dir() == tmp_path / "Roaming" / "ganinstrument"
    monkeypatch.setenv(userdirs.HOME_ENV, str(tmp_path / "stick"))
    assert userdirs.user_folder("presets") == tmp_path / "stick" / "presets"


def test_shipped_files_are_package_data():
    folder = userdirs.shipped_folder("mappings")
    assert folder.parent.parent == Path(userdirs.__file__).parent.parent  # ganinstrument/data/mappings
    assert "generic" in userdirs.shipped_names("mappings") and len(userdirs.shipped_names("presets")) >= 3


def test_a_name_is_a_path_then_the_users_then_shipped(home):
    assert find_mapping("generic") == userdirs.shipped_folder("mappings") / "generic.yaml"
    mine = home / "mappings" / "generic.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("schema_version: 1\ninfo: {name: mine}\nbindings: [{cc: 1, target: psi}]\n")
    assert find_mapping("generic") == mine and find_mapping("generic.yaml") == mine
    assert load_mapping(find_mapping("generic")).info.name == "mine"
    here = Path("generic")  # a file by that very name in the current folder wins
    here.write_text("schema_version: 1\ninfo: {name: here}\n")
    assert find_mapping("generic") == here


def test_a_missing_mapping_says_where_it_looked(home):
    with pytest.raises(MappingError) as err:
        find_mapping("korg-nanokontrol3")
    text = str(err.value)
    assert "no such mapping file" in text and str(Path.cwd()) in text
    assert str(home / "mappings") in text and str(userdirs.shipped_folder("mappings")) in text
    assert "korg-nanokontrol2" in text  # what there is
    with pytest.raises(MappingError, match="looked for it as a path"):
        find_mapping("gig/x.yaml")


def test_presets_resolve_in_the_folder_then_among_the_shipped(home, tmp_path):
    folder = tmp_path / "gig"
    folder.mkdir()
    assert resolve_preset("1", folder) == userdirs.shipped_folder("presets") / "01 calm.yaml"
    (folder / "01 mine.yaml").write_text("schema_version: 1\ntargets: {psi: 0.5}\n")
    assert resolve_preset("1", folder) == folder / "01 mine.yaml"
    assert resolve_preset("calm", folder).name == "01 calm.yaml"
    with pytest.raises(PresetError) as err:
        resolve_preset("9", folder)
    text = str(err.value)
    assert text.startswith("9: no such preset file") and str(folder) in text
    assert str(userdirs.shipped_folder("presets")) in text


def test_the_default_presets_folder_is_seeded_once(home):
    old = os.umask(0o022)
    try:
        folder = userdirs.default_presets_dir()
    finally:
        os.umask(old)
    assert folder == home / "presets"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # as any folder the user makes
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in folder.iterdir())
    shipped = sorted(p.name for p in userdirs.shipped_folder("presets").glob("*.yaml"))
    assert sorted(p.name for p in folder.iterdir()) == shipped
    (folder / shipped[0]).unlink()  # the performer's choice: not put back
    (folder / "07 mine.yaml").write_text("schema_version: 1\ntargets: {psi: 0.5}\n")
    assert userdirs.default_presets_dir() == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(shipped[1:] + ["07 mine.yaml"])


def test_read_only_commands_and_scripts_do_not_make_the_presets_folder(home, capsys):
    from ganinstrument.instrument.facade import Instrument

    assert run_check(["generic"], None) == 0
    inst = Instrument("demo", device="cpu")
    inst.step(0.1)
    assert not home.exists()  # nothing made it: only a preset action needs the folder
    inst.trigger("preset.save", 4)
    assert (home / "presets" / "04.yaml").is_file() and (home / "presets" / "01 calm.yaml").is_file()


def test_check_takes_shipped_names(home, capsys):
    assert run_check(["generic", "01 calm"], None) == 0
    out = capsys.readouterr().out
    assert out.count("OK   ") == 2
    assert run_check(["nosuch"], None) == 1
    out = capsys.readouterr().out
    assert "no such file" in out and str(home / "mappings") in out and str(home / "presets") in out
