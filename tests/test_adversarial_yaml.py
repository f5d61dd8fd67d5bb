"""Hostile YAML in mappings and presets: alias bombs, deep nesting, huge files and huge values are
refused in a few bounded lines naming the file (and the line), fast; fuzzed bytes and YAML-ish
text give a parsed result or one GanInstrumentError, never another exception or a hang."""

from __future__ import annotations

import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganinstrument.commands.check import registry_for, run_check
from ganinstrument.common.errors import GanInstrumentError
from ganinstrument.common.yamlsafe import MAPPING_BYTES, MAX_DEPTH, PRESET_BYTES
from ganinstrument.mapping import Mapping, MappingError, load_mapping
from ganinstrument.state.presets import Preset, PresetError, load_preset_file

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def registry():
    return registry_for("demo")


def _bomb(levels: int, top: str) -> str:
    """A 'billion laughs': each level is 9 aliases of the one before (9**levels strings)."""
    lines = ["schema_version: 1", 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    lines.append(f"{top}: *l{levels}")
    return "\n".join(lines) + "\n"


def _bounded(message: str, path) -> None:
    """One GanInstrumentError's text: names the file; a few lines, each of bounded length."""
    assert str(path) in message, message
    lines = message.splitlines()
    assert len(lines) <= 22, f"{len(lines)} lines"
    assert all(len(line) <= len(str(path)) + 450 for line in lines), max(map(len, lines))


def _mapping_error(path, registry) -> MappingError:
    with pytest.raises(MappingError) as err:
        load_mapping(path, registry)
    _bounded(str(err.value), path)
    return err.value


def _preset_error(path) -> PresetError:
    with pytest.raises(PresetError) as err:
        load_preset_file(path)
    _bounded(str(err.value), path)
    return err.value


# -- aliases, depth, size, long values -------------------------------------------------------
def test_alias_bomb_in_a_mapping_is_refused_with_its_line(tmp_path, registry):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(5, "bindings"))
    err = _mapping_error(path, registry)
    assert f"{path}:3: an alias (*l0) is not accepted" in str(err)  # the first *l0


def test_alias_bomb_in_a_preset_is_refused_with_its_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(5, "targets"))
    err = _preset_error(path)
    assert "line 3: an alias (*l0) is not accepted" in str(err)


def test_check_reports_an_alias_bomb_without_expanding_it(tmp_path, registry, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(5, "bindings"))
    assert run_check([path], registry) == 1
    out = capsys.readouterr().out
    assert "an alias (*l0)" in out and len(out) < 1000


def test_merge_keys_need_aliases_and_are_refused(tmp_path, registry):
    path = tmp_path / "merge.yaml"
    path.write_text("schema_version: 1\nbase: &b {cc: 1, target: psi}\nbindings:\n  - {<<: *b, cc: 2}\n")
    assert f"{path}:4: an alias (*b)" in str(_mapping_error(path, registry))


@pytest.mark.parametrize("flow", [True, False], ids=["[[[", "block"])
def test_deep_nesting_is_refused(tmp_path, registry, flow):
    depth = 5000 if flow else 200  # indentation makes a deep block file grow as depth**2
    body = "[" * depth + "]" * depth if flow else \
        "\n" + "".join(f"{'  ' * (i + 1)}- \n" for i in range(depth))
    for load, err_type in ((lambda p: load_mapping(p, registry), MappingError), (load_preset_file, PresetError)):
        path = tmp_path / "deep.yaml"
        path.write_text(f"schema_version: 1\ntargets: {body}\n")
        with pytest.raises(err_type) as err:
            load(path)
        assert f"more than {MAX_DEPTH} levels" in str(err.value)
        _bounded(str(err.value), path)


def test_a_file_over_the_size_limit_is_refused_and_says_the_limit(tmp_path, registry):
    path = tmp_path / "huge.yaml"
    # valid YAML, and a valid mapping but for its size
    path.write_text("schema_version: 1\nbindings:\n" + "  - {cc: 1, target: psi}  # padding padding\n" *
                    (MAPPING_BYTES // 40))
    err = _mapping_error(path, registry)
    assert f"{MAPPING_BYTES // 1024} KB" in str(err)
    preset = tmp_path / "huge-preset.yaml"
    preset.write_text("schema_version: 1\ntargets: {psi: 1}\n" + "# padding\n" * (PRESET_BYTES // 10))
    assert f"{PRESET_BYTES // 1024} KB" in str(_preset_error(preset))


def test_an_endless_file_is_not_read_to_its_end(registry):
    """/dev/zero never ends: only the limit is read, then refused."""
    _mapping_error("/dev/zero", registry)
    _preset_error("/dev/zero")


def test_long_values_are_clipped_in_messages(tmp_path, registry, capsys):
    name = "y" * 100_000
    path = tmp_path / "long.yaml"
    path.write_text(f"schema_version: 1\ninfo: {{name: {'n' * 20_000}}}\nbindings:\n"
                    f"  - {{cc: 1, target: {name}}}\n  - {{cc: 2, mode: {name}, target: psi}}\n")
    err = _mapping_error(path, registry)
    assert "… (100002 characters)" in str(err)  # the quoted value, cut
    ok = tmp_path / "long-name.yaml"
    ok.write_text(f"schema_version: 1\ninfo: {{name: {'n' * 200_000}}}\nbindings: []\n")
    assert run_check([ok], registry) == 0
    out = capsys.readouterr().out
    assert "… (200002 characters)" in out and len(out) < 500
    preset = tmp_path / "long-preset.yaml"
    preset.write_text(f"schema_version: 1\ntargets: {{psi: {name}}}\nlatent: {name}\n")
    assert "… (100002 characters)" in str(_preset_error(preset))


def test_a_scalar_yaml_cannot_build_is_one_error_with_its_line(tmp_path, registry):
    path = tmp_path / "date.yaml"
    path.write_text("schema_version: 1\ninfo: {name: x}\nbindings:\n  - {cc: 2001-02-30, target: psi}\n")
    assert f"{path}:4:" in str(_mapping_error(path, registry))
    preset = tmp_path / "date-preset.yaml"
    preset.write_text("schema_version: 1\nsaved_at: 2001-02-30\ntargets: {psi: 1}\n")
    assert "line 2" in str(_preset_error(preset))


# -- fuzzing --------------------------------------------------------------------------------
YAMLISH = st.text(alphabet=string.ascii_letters[:6] + string.digits[:4] + " \n\t:-[]{},&*!|>'\"#%@`?<=~.\\",
                  max_size=300)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["psi", "z.0", "seed.next", "cc", "0..7", "/osc"]))
KEYS = st.sampled_from(["schema_version", "info", "device", "defaults", "templates", "bindings", "banks",
                        "modulation", "cc", "note", "target", "action", "channel", "range", "curve", "mode",
                        "name", "pages", "select", "use", "targets", "latent", "vector", "edits", "blends",
                        "models", "path", "feature", "amount"]) | st.text(max_size=8)
TREES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=6),
                     max_leaves=40)


def _dumped(tree) -> str:
    return yaml.safe_dump(tree, default_flow_style=None, allow_unicode=True)


def _fuzz_mapping(tmp_path, registry, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        result = load_mapping(path, registry)
    except GanInstrumentError as exc:
        assert isinstance(exc, MappingError), type(exc)
        _bounded(str(exc), path)
    else:
        assert isinstance(result, Mapping)


def _fuzz_preset(tmp_path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        result = load_preset_file(path)
    except GanInstrumentError as exc:
        assert isinstance(exc, PresetError), type(exc)
        _bounded(str(exc), path)
    else:
        assert isinstance(result, Preset)


@FUZZ
@given(data=st.binary(max_size=300) | YAMLISH.map(str.encode))
def test_fuzz_mapping_bytes_and_text(tmp_path, registry, data):
    _fuzz_mapping(tmp_path, registry, data)


@FUZZ
@given(tree=TREES)
def test_fuzz_mapping_trees(tmp_path, registry, tree):
    _fuzz_mapping(tmp_path, registry, _dumped({"schema_version": 1, "bindings": tree} if isinstance(tree, list)
                                              else tree).encode())


@FUZZ
@given(data=st.binary(max_size=300) | YAMLISH.map(str.encode))
def test_fuzz_preset_bytes_and_text(tmp_path, data):
    _fuzz_preset(tmp_path, data)


@FUZZ
@given(tree=TREES)
def test_fuzz_preset_trees(tmp_path, tree):
    _fuzz_preset(tmp_path, _dumped({"schema_version": 1, "targets": tree} if isinstance(tree, dict)
                                   else tree).encode())
