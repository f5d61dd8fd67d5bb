"""Mapping files: frozen objects, every problem at once with its line, templates, names, `check`."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from ganinstrument.commands import check as check_mod
from ganinstrument.commands.cli import main
from ganinstrument.common.errors import GanInstrumentError
from ganinstrument.common.userdirs import shipped_folder
from ganinstrument.mapping import (
    Binding,
    Mapping,
    MappingError,
    ModulationRoute,
    Router,
    Source,
    load_mapping,
    parse_mapping,
)
from ganinstrument.modulation.audio import AUDIO_SIGNALS
from ganinstrument.state.params import ActionSpec, Registry, TargetSpec

SHIPPED = sorted(shipped_folder("mappings").glob("*.yaml"))


def small_registry(z_groups: int = 4, blend: bool = False) -> Registry:
    targets = [TargetSpec("psi", -1.0, 2.0, 1.0), TargetSpec("cutoff", 0, 14, 14),
               TargetSpec("seed", 0, 2**32 - 1, 0, kind="step"),
               TargetSpec("noise", 0, 2, 0, kind="choice", choices=("const", "random", "none"))]
    targets += [TargetSpec(f"z.{i}", -3.0, 3.0, 0.0) for i in range(z_groups)]
    targets += [TargetSpec(f"edit.b{r}", 0.0, 1.0, 0.0) for r in (4, 8, 16)]
    if blend:
        targets += [TargetSpec("blend.all", -1.0, 2.0, 0.0, extrapolate=True)]
    actions = [ActionSpec(n) for n in ("seed.next", "seed.prev", "z.random", "preset.next", "preset.prev")]
    actions += [ActionSpec("preset.recall", takes_value=True), ActionSpec("preset.save", takes_value=True)]
    return Registry.build(targets, actions, AUDIO_SIGNALS)


REG = small_registry()


def parse(text: str, registry=REG) -> Mapping:
    return parse_mapping(textwrap.dedent(text), "m.yaml", registry)


def problems_of(text: str, registry=REG) -> list[tuple[int, str]]:
    with pytest.raises(MappingError) as info:
        parse(text, registry)
    return [(p.line, p.message + " | " + p.hint) for p in info.value.problems]


def assert_problems(found, expected):
    """`expected`: (line, fragment) pairs, each matching exactly one problem; no other problems."""
    unmatched = list(found)
    for line, fragment in expected:
        hits = [p for p in unmatched if p[0] == line and fragment in p[1]]
        assert hits, f"no problem at line {line} with {fragment!r}; problems: {found}"
        unmatched.remove(hits[0])
    assert not unmatched, f"unexpected problems: {unmatched}"


# -- the good path ---------------------------------------------------------------------------------
GOOD = """\
    schema_version: 1
    info: {name: test, author: me, device: a box, source: the manual p. 12}
    device: {input: nanokontrol2, output: "/nano.*2/"}
    defaults: {channel: 2, takeover: pickup}
    templates:
      soft: {smoothing_ms: 120, curve: "exp 4"}
    bindings:
      - {cc: 0..3, target: "z.{i}"}
      - {cc: 16, target: psi, range: [0.3, 1.1], use: soft}
      - {cc14: 10, target: cutoff, invert: true}
      - {note: 36..38, action: preset.recall, value: "{n}", channel: 10}
      - {program: any, action: preset.recall, offset: 1}
      - {cc: 60, encoder: binary_offset, target: seed}
      - {pitchbend: true, target: psi, deadzone: 0.05, allow_multi: true}
      - {osc: /fx/z0, target: z.0, input_range: [0, 127]}
      - {nrpn: 300, target: edit.b4, bits: 7}
      - {note: 40, target: noise, mode: toggle, range: [0, 1]}
    modulation:
      - {feature: rms_db, target: psi, depth: 0.4, attack_ms: 10, release_ms: 250, name: loud}
      - {feature: onset.low, action: seed.next, cooldown_ms: 500}
      - {feature: onset, target: z.1, pulse: {decay_ms: 120}, mode: multiply}
"""


def test_a_good_file_becomes_frozen_objects():
    m = parse(GOOD)
    assert m.resolved and m.warnings == () and m.info.source == "the manual p. 12"
    assert m.device.matches_input("nanoKONTROL2 MIDI 1") and m.device.matches_output("NANO KONTROL 2")
    assert not m.device.matches_input("MIDImix")
    assert [b.target for b in m.bindings[:4]] == ["z.0", "z.1", "z.2", "z.3"]
    assert m.bindings[0].source == Source("cc", 1, 0)  # channel 2 in the file is 1 on the wire
    assert m.bindings[0].takeover == "pickup" and m.bindings[0].mode == "continuous"
    psi = m.bindings[4]
    assert (psi.range, psi.curve, psi.curve_k, psi.smoothing_ms) == ((0.3, 1.1), "exp", 4.0, 120.0)
    cut = m.bindings[5]
    assert cut.source == Source("cc14", 1, 10, 42) and cut.invert
    pads = m.bindings[6:9]
    assert [(b.action, b.value, b.source.channel, b.source.number) for b in pads] == [
        ("preset.recall", 1.0, 9, 36), ("preset.recall", 2.0, 9, 37), ("preset.recall", 3.0, 9, 38)]
    prog = m.bindings[9]
    assert prog.source.number is None and prog.offset == 1 and prog.mode == "trigger"
    enc = m.bindings[10]
    assert (enc.mode, enc.encoder, enc.takeover) == ("relative", "binary_offset", "none")
    assert m.bindings[11].bipolar and m.bindings[11].takeover == "none"  # a spring: defaults do not apply
    assert m.bindings[12].source == Source("osc", None, None, None, "/fx/z0") and m.bindings[12].takeover == "pickup"
    assert m.bindings[13].source.number == 300 and m.bindings[13].bits == 7
    assert m.bindings[14].mode == "toggle"
    loud, kick, pulse = m.modulation
    assert loud == ModulationRoute(feature="rms_db", target="psi", depth=0.4, input_range=(-60.0, 0.0),
                                   attack_ms=10.0, release_ms=250.0, name="loud", line=19)
    assert kick.action == "seed.next" and kick.cooldown_ms == 500 and REG.signals[kick.feature].event
    assert pulse.pulse_decay_ms == 120 and pulse.offset == 1.0  # multiply's neutral offset
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.bindings[0].target = "psi"  # type: ignore[misc]
    for b in m.all_bindings():  # no raw dicts or lists anywhere
        assert isinstance(b, Binding)
        for f in dataclasses.fields(b):
            assert not isinstance(getattr(b, f.name), (dict, list))


def test_defaults_per_source_kind():
    m = parse("""\
        schema_version: 1
        bindings:
          - {cc: 1, target: psi}
          - {note: 2, target: z.0}
          - {aftertouch: true, target: z.1}
          - {osc: /a, target: z.2}
          - {cc: 3, action: z.random}
    """)
    cc, note, at, osc, button = m.bindings
    assert (cc.mode, cc.takeover, cc.source.channel) == ("continuous", "pickup", 0)
    assert (note.mode, note.takeover) == ("momentary", "none")
    assert (at.mode, at.takeover) == ("continuous", "none")  # springs back: no pickup
    assert osc.takeover == "none" and button.mode == "trigger"


# -- every problem at once, with its line -------------------------------------------------------------
def test_every_problem_is_reported_at_once_with_its_line():
    found = problems_of("""\
        schema_version: 1
        bindngs: []
        defaults: {channel: 0}
        bindings:
          - {cc: 200, target: psi}
          - {cc: 1, target: psy}
          - {cc: 2, target: seed.next}
          - {cc: 3, target: z.0, range: abc}
          - {cc: 4, target: z.0, wobble: 1}
          - {cc: 5, note: 5, target: z.1}
          - {cc: 6}
          - {cc: 7, target: z.2, curve: cubic}
          - {cc: 8, target: z.3, encoder: twos_complment}
          - {note: 9, target: z.0, mode: toggle, takeover: pickup}
          - {note: 10, target: z.0, mode: trigger}
          - {program: any, target: psi}
          - {note: 11, action: preset.recall}
          - {cc: 12, target: z.0, use: nope}
          - {cc: 1, target: psi}
          - {cc: 13, action: seed.next, value: 3}
          - {cc: 14, target: z.9}
          - {pitchbend: 3, target: psi}
          - {cc14: 40, target: psi}
          - {note: 12, target: z.0, channel: 17}
    """)
    assert_problems(found, [
        (2, "unknown key 'bindngs' | did you mean 'bindings'"),
        (3, "channels are 1..16 in mapping files"),
        (5, "cc must be a whole number 0..127"),
        (6, "unknown target 'psy'"),
        (7, "'seed.next' is an action, not a target"),
        (8, "range must be [lo, hi]"),
        (9, "unknown key 'wobble'"),
        (10, "expected exactly one source"),
        (11, "expected exactly one of target or action"),
        (12, "curve must be one of linear | exp | log | scurve"),
        (13, "did you mean 'twos_complement'"),
        (14, "takeover applies to absolute controls"),
        (15, "a trigger on a target needs 'value:'"),
        (16, "a program change selects; bind it to an action"),
        (17, "action 'preset.recall' needs a value"),
        (18, "unknown template 'nope'"),
        (19, "cc 1 ch 1 is already bound by a binding at line 6"),
        (20, "takes no value"),
        (21, "this instrument has 4 z groups (z.0..z.3)"),
        (22, "write 'pitchbend: true'"),
        (23, "cc14 MSB 40 has no standard LSB"),
        (24, "channel must be 1..16 or any"),
    ])


def test_problems_in_header_banks_and_modulation_with_lines():
    found = problems_of("""\
        info: {name: 3}
        device: {input: "/[unclosed/"}
        banks:
          - name: b
            next: {pitchbend: true}
            pages:
              - {name: one, bindings: [{cc: 0, target: z.0}]}
              - {name: one, bindings: [{cc: 0, target: z.1}]}
          - {name: c}
        modulation:
          - {feature: loudness, target: psi}
          - {feature: onset, target: psi}
          - {feature: rms_db, target: psi, pulse: {decay_ms: 100}}
          - {feature: onset, target: psi, pulse: {decay_ms: 100}, attack_ms: 5}
          - {feature: rms_db, action: seed.next}
          - {feature: onset, action: seed.nxt}
          - {feature: onset, action: z.random, depth: 2}
    """)
    assert_problems(found, [
        (1, "schema_version is missing"),
        (1, "name must be non-empty text"),
        (2, "not a valid regular expression"),
        (5, "unknown key 'pitchbend'"), (5, "expected one button source"),
        (8, "page name 'one' is used twice"),
        (9, "a bank needs 'pages:'"),
        (11, "modulation[0]: unknown feature 'loudness' (expected a signal: onset_strength, rms_db"),
        (12, "modulation[1]: 'onset' is an event, not a value"),
        (13, "modulation[2]: pulse applies to event features (onset, onset.low, onset.mid, onset.high), not 'rms_db'"),
        (14, "attack_ms does not apply to a pulse"),
        (15, "modulation[4]: actions fire on events; feature must be one of onset, onset.low"),
        (16, "unknown action 'seed.nxt' (expected an action of this instrument) | did you mean 'seed.next'"),
        (17, "depth applies to routes with a target, not actions"),
    ])


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(MappingError) as info:
        parse("schema_version: 1\nbindings:\n  - {cc: 1, target: psi\n  - {cc: 2}\n")
    (problem,) = info.value.problems
    assert problem.line == 4 and "not valid YAML" in problem.message


def test_duplicate_yaml_keys_and_wrong_top_level_are_problems():
    assert_problems(problems_of("schema_version: 1\nbindings: []\nbindings: []\n"),
                    [(3, "key 'bindings' appears twice")])
    assert_problems(problems_of("- just\n- a list\n"), [(1, "expected a mapping file")])
    assert_problems(problems_of("schema_version: 9\n"), [(1, "newer than this ganinstrument")])


def test_error_types_and_message():
    with pytest.raises(MappingError) as info:
        parse("schema_version: 1\nbindings:\n  - {cc: 1, target: psy}\n  - {cc: 2, target: pis}\n")
    err = info.value
    assert isinstance(err, GanInstrumentError) and isinstance(err, ValueError)
    text = str(err)
    assert text.startswith("2 problems in m.yaml:")
    assert "m.yaml:3: unknown target 'psy'" in text and "m.yaml:4: unknown target 'pis'" in text
    assert "did you mean 'psi'?" in text


def test_a_file_with_one_bad_binding_is_not_applied_at_all():
    with pytest.raises(MappingError):
        parse("schema_version: 1\nbindings:\n  - {cc: 1, target: psi}\n  - {cc: 2, target: nope}\n")


def test_duplicates_across_pages_channels_and_nrpn():
    found = problems_of("""\
        schema_version: 1
        bindings:
          - {cc: 7, target: psi, channel: any}
          - {nrpn: 5, target: z.0}
          - {cc: 6, target: z.1}
          - {cc: 40..43, target: "z.{i}"}
        banks:
          - name: b
            pages:
              - {name: p1, bindings: [{cc: 20, target: z.2}]}
              - {name: p2, bindings: [{cc: 20, target: z.3}, {cc: 7, target: z.3, channel: 3}]}
              - {name: p3, bindings: [{cc: 41..42, target: "edit.*"}]}
    """)
    assert_problems(found, [
        (5, "cc 6 ch 1 is used by NRPN on this channel"),
        (11, "cc 7 ch 3 is already bound by a binding at line 3"),
        (12, "cc 41 ch 1 is already bound by a binding at line 6"),  # once for the whole template line
    ])


# -- templates and names ---------------------------------------------------------------------------
def test_globs_optional_names_and_warnings():
    text = """\
        schema_version: 1
        bindings:
          - {cc: 0..7, target: "z.{i}", optional: true}
          - {cc: 16..20, target: "edit.*"}
          - {cc: 21..22, target: "edit.*", start: 2}
          - {cc: 30, target: blend.all, optional: true}
          - {cc: 31, target: "dir.*", optional: true}
    """
    m = parse(text)
    assert [b.target for b in m.bindings] == ["z.0", "z.1", "z.2", "z.3", "edit.b4", "edit.b8", "edit.b16",
                                              "edit.b16"]
    assert [b.source.number for b in m.bindings[4:]] == [16, 17, 18, 21]
    assert m.warnings == (
        "m.yaml:3: skipped target 'z.4': this instrument has no such target (optional)",
        "m.yaml:3: skipped target 'z.5': this instrument has no such target (optional)",
        "m.yaml:3: skipped target 'z.6': this instrument has no such target (optional)",
        "m.yaml:3: skipped target 'z.7': this instrument has no such target (optional)",
        "m.yaml:4: 'edit.*' matches 3 targets here; the controls from cc 19 ch 1 on stay unbound",
        "m.yaml:5: 'edit.*' matches 3 targets here; the controls from cc 22 ch 1 on stay unbound",
        "m.yaml:6: skipped target 'blend.all': this instrument has no such target (optional)",
        "m.yaml:7: skipped: no target of this instrument matches 'dir.*' (optional)",
    )
    with_blend = parse(text, small_registry(z_groups=8, blend=True))
    assert "blend.all" in [b.target for b in with_blend.bindings]
    assert len([b for b in with_blend.bindings if b.target.startswith("z.")]) == 8
    assert_problems(problems_of("schema_version: 1\nbindings:\n  - {cc: 1, target: blend.all}\n"),
                    [(3, "blend.* targets exist only with a second model")])
    assert_problems(problems_of("schema_version: 1\nbindings:\n  - {cc: 1..2, target: \"edit.{x}\"}\n"),
                    [(3, "bad placeholder")])


def test_structure_only_keeps_globs_and_the_router_refuses_them():
    m = parse("schema_version: 1\nbindings:\n  - {cc: 0..1, target: \"edit.*\"}\n  - {cc: 5, target: anything}\n",
              registry=None)
    assert not m.resolved and [b.target for b in m.bindings] == ["edit.*", "edit.*", "anything"]
    assert m.warnings == ("m.yaml:3: target 'edit.*' is expanded only against a model's registry",)
    with pytest.raises(MappingError, match="load the mapping with the instrument's registry"):
        Router(m, REG)


def test_the_documented_example_is_a_valid_mapping():
    from ganinstrument.mapping import schema

    doc = schema.__doc__
    example = doc[doc.index("    schema_version: 1"):doc.index("Names depend on the model")]
    m = parse(example, small_registry(z_groups=8))
    assert m.banks[0].pages[1].name == "look" and len(m.modulation) == 2
    assert all("'edit.*' matches 3 targets" in w for w in m.warnings)  # this registry has 3 edits


def test_load_mapping_missing_file(tmp_path):
    with pytest.raises(MappingError, match="no such mapping file"):
        load_mapping(tmp_path / "nope.yaml")


# -- shipped files and `ganinstrument check` ------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_registry():
    return check_mod.registry_for("demo")


def test_every_shipped_mapping_passes_check_against_the_demo(demo_registry, monkeypatch, capsys):
    assert len(SHIPPED) >= 7
    monkeypatch.setattr(check_mod, "registry_for", lambda model, model_b=None, directions="auto": demo_registry)
    assert main(["check", *map(str, SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert out.count("OK   ") == len(SHIPPED) and "FAIL" not in out
    for path in SHIPPED:
        m = load_mapping(path, demo_registry)
        assert m.info.source and m.info.device and m.schema_version == 1
        assert any(b.action == "preset.recall" for b in m.all_bindings())
        if path.stem not in ("generic", "beat-example"):  # (those two are for any controller)
            assert m.device.input, path
        Router(m, demo_registry)  # compiles


def test_check_reports_every_problem_and_exits_1(tmp_path, demo_registry, monkeypatch, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nbindings:\n  - {cc: 1, target: psy}\n  - {cc: 300, target: psi}\n")
    good = tmp_path / "good.yaml"
    good.write_text("schema_version: 1\nbindings:\n  - {cc: 1, target: psi}\n")
    monkeypatch.setattr(check_mod, "registry_for", lambda model, model_b=None, directions="auto": demo_registry)
    assert main(["check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"OK   {good}: mapping: 1 bindings" in out
    assert f"FAIL {bad}: 2 problems" in out
    assert f"{bad}:3: unknown target 'psy'" in out and "did you mean 'psi'" in out
    assert f"{bad}:4: bindings[1]: cc must be a whole number 0..127" in out
    assert "1 of 2 files have problems" in out
    assert main(["check", "--structure-only", str(good)]) == 0


def test_check_presets_names_against_the_registry(tmp_path, demo_registry, capsys):
    shipped = sorted(shipped_folder("presets").glob("*.yaml"))
    assert check_mod.run_check(shipped, demo_registry) == 0
    bad = tmp_path / "p.yaml"
    bad.write_text("schema_version: 1\nname: p\ntargets:\n  psi: 0.5\n  zz.0: 1.0\nedits:\n  edit.b65: 0.3\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("schema_version: 1\ntargets:\n  psi: [1\n")
    capsys.readouterr()
    assert check_mod.run_check([bad, broken], demo_registry) == 1
    out = capsys.readouterr().out
    assert f"{bad}:5: unknown target 'zz.0'" in out and "did you mean 'z.0'" in out
    assert f"{bad}:7: unknown target 'edit.b65'" in out
    assert f"FAIL {broken}" in out and "not valid YAML" in out


def test_without_a_model_check_still_checks_the_features(tmp_path, capsys):
    """`check --structure-only` knows no model's targets, but the signals do not depend on a
    model: a misspelt feature, a pulse on a value and an action on a value are still found,
    each on its own line; a target nobody can know is left alone."""
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent("""\
        schema_version: 1
        modulation:
          - {feature: rms_dbb, target: psi}
          - {feature: rms_db, target: z.99,
             pulse: {decay_ms: 100}}
          - {feature: bands.low, action: seed.next}
          - {feature: onset.low, target: whatever.model.has, pulse: {decay_ms: 100}}
    """))
    assert main(["check", "--structure-only", str(path)]) == 1
    out = capsys.readouterr()
    lines = [x for x in (out.out + out.err).splitlines() if "m.yaml:" in x and "FAIL" not in x]
    assert "m.yaml: 3 problems" in out.out + out.err
    assert any("m.yaml:3:" in x and "unknown feature 'rms_dbb'" in x and "did you mean 'rms_db'" in x for x in lines)
    assert any("m.yaml:5:" in x and "pulse applies to event features" in x for x in lines)
    assert any("m.yaml:6:" in x and "actions fire on events" in x for x in lines)
    assert len(lines) == 3, lines
    assert parse_mapping(path.read_text(), "m.yaml").modulation  # (no model, no signals given: names unchecked)
