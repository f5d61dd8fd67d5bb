"""MIDI learn: detection from event lists, YAML edits that keep the file, and the terminal loop."""

from __future__ import annotations

import pytest
import yaml

from ganinstrument.commands.learn import learn_loop
from ganinstrument.common.clock import FakeClock
from ganinstrument.common.events import ControlEvent
from ganinstrument.mapping import load_mapping
from ganinstrument.mapping.learn import Detection, LearnError, capture, detect
from ganinstrument.mapping.learn_yaml import add_binding, binding_fields, update_text
from ganinstrument.state.params import ActionSpec, Registry, TargetSpec


def cc(number, *values, channel=0):
    return [ControlEvent("control_change", channel, number, float(v)) for v in values]


def ev(kind, number=0, value=0, channel=0):
    return ControlEvent(kind, channel, number, float(value))


# -- detection --------------------------------------------------------------------------------
@pytest.mark.parametrize("events, expected", [
    (cc(7, *range(20, 90, 3)), Detection("cc", 0, 7)),
    (cc(7, 127, 126, 120, 100, 64, 30, 0), Detection("cc", 0, 7)),
    (cc(7, 5), Detection("cc", 0, 7)),
    (cc(41, 127, 0), Detection("cc", 0, 41, button=True)),
    (cc(41, 127, 0, 127, 0), Detection("cc", 0, 41, button=True)),
    (cc(41, 1, 0), Detection("cc", 0, 41, button=True)),
    (cc(41, 127), Detection("cc", 0, 41, button=True)),
    (cc(16, 1, 1, 1, 2, 1, 127, 127, 126, 127), Detection("cc", 0, 16, encoder="twos_complement")),
    (cc(16, 65, 65, 66, 65, 63, 63, 62), Detection("cc", 0, 16, encoder="binary_offset")),
    (cc(16, 1, 1, 1, 65, 65, 65), Detection("cc", 0, 16, encoder="sign_magnitude")),
    (cc(16, 65, 65, 65, 1, 1, 1), Detection("cc", 0, 16, encoder="sign_magnitude_inv")),
    (cc(16, 65, 65, 65), Detection("cc", 0, 16, encoder="binary_offset", alternatives=("sign_magnitude_inv",))),
    (cc(16, 1, 1, 1, 1), Detection("cc", 0, 16, encoder="twos_complement", alternatives=("sign_magnitude",))),
    (cc(16, 127, 127, 127, 1, 1), Detection("cc", 0, 16, encoder="twos_complement")),  # turned back first
])
def test_detect_cc(events, expected):
    assert detect(events) == expected


def test_detect_fourteen_bit_pair_either_order_and_lsb_heavy():
    events = []
    for v in range(0, 16383, 700):
        events += cc(1, v >> 7) + cc(33, v & 0x7F)
    assert detect(events) == Detection("cc14", 0, 1)
    lsb_first = [e for pair in zip(events[1::2], events[0::2]) for e in pair]
    assert detect(lsb_first) == Detection("cc14", 0, 1)
    lsb_heavy = cc(33, *range(0, 128, 4)) + cc(1, 10, 11)
    assert detect(lsb_heavy) == Detection("cc14", 0, 1)


def test_detect_pair_needs_both_moving():
    assert detect(cc(1, *range(40)) + cc(33, 0)) == Detection("cc", 0, 1)


def test_detect_notes_pitchbend_pressure_program():
    pad = [ev("note_on", 36, 100, 9)] + [ev("aftertouch", 0, v, 9) for v in range(10)] + [ev("note_off", 36, 0, 9)]
    assert detect(pad) == Detection("note", 9, 36)
    assert detect([ev("pitchwheel", 0, v) for v in (0, 2000, 8191, 0)]) == Detection("pitchbend", 0)
    assert detect([ev("aftertouch", 0, v, 2) for v in (1, 50, 0)]) == Detection("aftertouch", 2)
    assert detect([ev("program_change", 4, 4, 3)] + cc(0, 1)) == Detection("program", 3)


def test_detect_busiest_control_wins_and_others_are_noted():
    found = detect(cc(2, 1) + cc(7, *range(30)))
    assert found == Detection("cc", 0, 7)
    assert any("cc 2" in n for n in found.notes)


def test_detect_nothing():
    with pytest.raises(LearnError, match="nothing moved"):
        detect([])
    with pytest.raises(LearnError):
        detect([ControlEvent("osc", address="/x")])


# -- the YAML file ------------------------------------------------------------------------------
EXISTING = """\
# My nanoKONTROL2 set  (comments stay)
schema_version: 1
info: {name: mine}
defaults: {channel: 1}

bindings:
  # faders
  - {cc: 0..7, target: "z.{i}"}   # templates stay too
  - cc: 16
    target: psi      # knob 1
    curve: exp
  - {note: 36, action: seed.next}

modulation: []
"""


def test_update_appends_after_the_last_binding_keeping_everything():
    new = update_text(EXISTING, {"cc": 20, "channel": 1, "target": "psi"})
    assert new == EXISTING.replace("  - {note: 36, action: seed.next}\n",
                                   "  - {note: 36, action: seed.next}\n  - {cc: 20, channel: 1, target: psi}\n")


def test_update_replaces_the_same_control_block_or_flow():
    new = update_text(EXISTING, {"cc": 16, "channel": 1, "target": "cutoff"})
    assert "  - {cc: 16, channel: 1, target: cutoff}\n  - {note: 36" in new
    assert "knob 1" not in new and "# faders" in new and "# templates stay too" in new
    new = update_text(EXISTING, {"note": 36, "channel": 1, "action": "seed.prev"})
    assert "  - {note: 36, channel: 1, action: seed.prev}\n\nmodulation: []" in new
    assert yaml.safe_load(new)["bindings"][-1] == {"note": 36, "channel": 1, "action": "seed.prev"}


def test_update_refuses_to_split_a_template():
    with pytest.raises(LearnError, match="line 8 already binds this control among several"):
        update_text(EXISTING, {"cc": 3, "channel": 1, "target": "psi"})


def test_update_other_channel_is_another_control():
    new = update_text(EXISTING, {"cc": 3, "channel": 2, "target": "psi"})
    assert new.endswith("  - {cc: 3, channel: 2, target: psi}\n\nmodulation: []\n")


def test_cc14_replaces_its_lsb_or_msb():
    new = update_text("bindings:\n- {cc: 33, target: psi}\n", {"cc14": 1, "channel": 1, "target": "psi"})
    assert new == "bindings:\n- {cc14: 1, channel: 1, target: psi}\n"


@pytest.mark.parametrize("text, expected", [
    ("", None),
    ("schema_version: 1\n", "schema_version: 1\nbindings:\n  - {cc: 1, channel: 1, target: psi}\n"),
    ("schema_version: 1\nbindings:\n", "schema_version: 1\nbindings:\n  - {cc: 1, channel: 1, target: psi}\n"),
    ("bindings: []\n", "bindings: [{cc: 1, channel: 1, target: psi}]\n"),
    ("bindings: [{cc: 2, target: z.0}]", "bindings: [{cc: 2, target: z.0}, {cc: 1, channel: 1, target: psi}]\n"),
])
def test_update_edge_shapes(text, expected):
    new = update_text(text, {"cc": 1, "channel": 1, "target": "psi"})
    if expected is not None:
        assert new == expected
    assert {"cc": 1, "channel": 1, "target": "psi"} in yaml.safe_load(new)["bindings"]


def test_update_refuses_broken_yaml():
    with pytest.raises(LearnError, match="not valid YAML"):
        update_text("bindings: [\n", {"cc": 1, "channel": 1, "target": "psi"})


@pytest.mark.parametrize("found, name, is_action, expected", [
    (Detection("cc", 0, 7), "psi", False, {"cc": 7, "channel": 1, "target": "psi"}),
    (Detection("cc", 1, 41, button=True), "noise", False, {"cc": 41, "channel": 2, "target": "noise", "mode": "momentary"}),
    (Detection("cc", 0, 41, button=True), "seed.next", True, {"cc": 41, "channel": 1, "action": "seed.next"}),
    (Detection("cc", 0, 16, encoder="binary_offset"), "seed", False,
     {"cc": 16, "channel": 1, "target": "seed", "encoder": "binary_offset"}),
    (Detection("cc14", 0, 1), "psi", False, {"cc14": 1, "channel": 1, "target": "psi"}),
    (Detection("note", 9, 36), "preset.next", True, {"note": 36, "channel": 10, "action": "preset.next"}),
    (Detection("pitchbend", 0), "z.0", False, {"pitchbend": True, "channel": 1, "target": "z.0"}),
    (Detection("program", 0), "preset.recall", True, {"program": "any", "channel": 1, "action": "preset.recall"}),
])
def test_binding_fields(found, name, is_action, expected):
    assert binding_fields(found, name, is_action=is_action) == expected


def test_binding_fields_refuse_nonsense():
    with pytest.raises(LearnError, match="program change"):
        binding_fields(Detection("program", 0), "psi", is_action=False)
    with pytest.raises(LearnError, match="continuous"):
        binding_fields(Detection("pitchbend", 0), "seed.next", is_action=True)


REGISTRY = Registry.build([TargetSpec("psi", -1, 2, 1), TargetSpec("seed", 0, 1000, 0, kind="step"),
                           TargetSpec("z.0", -3, 3, 0)],
                          [ActionSpec("seed.next"), ActionSpec("preset.recall", takes_value=True)])


def test_add_binding_creates_then_edits_and_the_schema_accepts(tmp_path):
    path = tmp_path / "sub" / "learned.yaml"
    add_binding(path, Detection("cc", 0, 7), "psi", is_action=False, registry=REGISTRY)
    add_binding(path, Detection("note", 0, 36), "seed.next", is_action=True, registry=REGISTRY)
    add_binding(path, Detection("cc", 0, 16, encoder="twos_complement"), "seed", is_action=False, registry=REGISTRY)
    text = path.read_text()
    assert text.startswith("# ganinstrument mapping, written by `ganinstrument learn`")
    assert len(yaml.safe_load(text)["bindings"]) == 3
    mapping = load_mapping(path, REGISTRY)
    assert [b.name for b in mapping.bindings] == ["psi", "seed.next", "seed"]
    assert mapping.bindings[2].encoder == "twos_complement"
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary left behind


# -- capture and the loop ------------------------------------------------------------------------
class ScriptedSource:
    """drain() returns the next batch each call (after the discarded first call)."""

    def __init__(self, batches):
        self.batches = [[]] + list(batches)

    def drain(self):
        return self.batches.pop(0) if self.batches else []


def test_capture_waits_for_first_then_for_quiet():
    clock = FakeClock()
    source = ScriptedSource([[], [], cc(7, 1), [], cc(7, 2), [], [], []] + [[]] * 100)
    got = capture(source, clock, quiet_s=0.05, sleep=clock.advance)
    assert [e.value for e in got] == [1, 2]
    assert clock.now() == pytest.approx(0.14)  # event 2 at 0.08, then 0.05 s quiet on a 0.02 s poll


def test_capture_gives_up_without_events():
    clock = FakeClock()
    assert capture(ScriptedSource([]), clock, wait_s=1.0, sleep=clock.advance) == []
    assert clock.now() > 1.0


class ArmedSource:
    """Plays `events` on the second drain after arm(): the first one is capture's discard."""

    def __init__(self):
        self.events, self.calls = [], 0

    def arm(self, events):
        self.events, self.calls = events, 0

    def drain(self):
        self.calls += 1
        return self.events if self.calls == 2 else []


def test_learn_loop_end_to_end(tmp_path):
    clock = FakeClock()
    source = ArmedSource()
    script = iter([("?", []), ("psy", []), ("psi", cc(7, *range(0, 60, 5))),
                   ("2", cc(16, 1, 1, 1, 127, 127)), ("seed.next", []), ("", [])])

    def ask(_prompt):
        answer, events = next(script)
        source.arm(events)
        return answer

    said = []
    out = tmp_path / "m.yaml"
    n = learn_loop(REGISTRY, source, out, ask=ask, say=said.append, clock=clock, sleep=clock.advance, quiet_s=0.2)
    text = "\n".join(said)
    assert "   2  seed" in text and "preset.recall  (action)" in text
    assert "did you mean 'psi'" in text
    assert "absolute CC 7, channel 1 -> psi" in text
    assert "relative encoder (twos_complement) on CC 16, channel 1 -> seed" in text
    assert "not written: nothing moved" in text  # seed.next: nobody pressed anything
    assert n == 2 and "2 bindings written" in said[-1]
    assert yaml.safe_load(out.read_text())["bindings"] == [
        {"cc": 7, "channel": 1, "target": "psi"},
        {"cc": 16, "channel": 1, "target": "seed", "encoder": "twos_complement"}]


def test_a_file_that_cannot_be_written_is_said_and_the_session_goes_on(tmp_path):
    clock = FakeClock()
    source = ArmedSource()
    out = tmp_path / "m.yaml"
    script = iter([("psi", cc(7, *range(0, 60, 5))), ("seed", cc(16, 1, 1, 1, 127, 127)),
                   ("psi", cc(8, *range(0, 60, 5))), ("", [])])

    def ask(_prompt):
        answer, events = next(script)
        source.arm(events)
        if answer == "seed":
            out.unlink()
            out.mkdir()  # (the file is gone and a folder is in its way)
        elif answer == "psi" and out.is_dir():
            out.rmdir()
        return answer

    said = []
    n = learn_loop(REGISTRY, source, out, ask=ask, say=said.append, clock=clock, sleep=clock.advance, quiet_s=0.2)
    assert n == 2 and f"not written: {out}: cannot read it (Is a directory)" in said
    assert yaml.safe_load(out.read_text())["bindings"] == [{"cc": 8, "channel": 1, "target": "psi"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.yaml"]


def test_learn_refuses_an_out_it_could_not_write_before_the_conversation(tmp_path, capsys):
    from ganinstrument.commands.cli import main

    (tmp_path / "taken.yaml").mkdir()
    assert main(["learn", "--out", str(tmp_path / "taken.yaml")]) == 1
    err = capsys.readouterr()
    assert f"--out {tmp_path / 'taken.yaml'}: cannot write there: that is a folder" in err.err
    assert "MIDI inputs" not in err.out
    # Asking makes no folder: a learn that fails before its first binding leaves none behind.
    assert main(["learn", "--model", str(tmp_path / "nope.pkl"), "--out", str(tmp_path / "new" / "m.yaml")]) == 1
    assert "nope.pkl" in capsys.readouterr().err and not (tmp_path / "new").exists()
