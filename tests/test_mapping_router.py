"""The router on literal ControlEvent streams, garbage, and end to end with the demo instrument."""

from __future__ import annotations

import math
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganinstrument.common.clock import FakeClock
from ganinstrument.common.events import ControlEvent, ParamUpdate
from ganinstrument.common.userdirs import shipped_folder
from ganinstrument.mapping import Router, load_mapping, parse_mapping
from ganinstrument.state.params import ActionSpec, Registry, TargetSpec

REG = Registry.build(
    [TargetSpec("psi", -1.0, 2.0, 1.0), TargetSpec("seed", 0, 2**32 - 1, 0, kind="step"),
     TargetSpec("noise", 0, 2, 0, kind="choice", choices=("const", "random", "none"))]
    + [TargetSpec(f"z.{i}", -3.0, 3.0, 0.0) for i in range(8)]
    + [TargetSpec(f"edit.b{r}", 0.0, 1.0, 0.0) for r in (4, 8, 16, 32)],
    [ActionSpec("seed.next"), ActionSpec("z.random"), ActionSpec("preset.next"),
     ActionSpec("preset.recall", takes_value=True)])


def cc(number, value, ch=0, t=0.0):
    return ControlEvent("control_change", ch, number, value, t)


def note(number, velocity, ch=0, t=0.0):
    return ControlEvent("note_on", ch, number, velocity, t)


def make(bindings: str, *, takeover="none", extra="", current=None, clock=None):
    text = f"schema_version: 1\ndefaults: {{takeover: {takeover}}}\nbindings:\n" + textwrap.indent(
        textwrap.dedent(bindings), "  ") + textwrap.dedent(extra)
    mapping = parse_mapping(text, "t.yaml", REG)
    return Router(mapping, REG, clock or FakeClock(1.0), current=current)


def values(updates):
    return [(u.target, round(u.value, 6)) for u in updates]


# -- 7-bit, curves, coalescing -------------------------------------------------------------------------
def test_cc_to_target_range_curve_invert_and_smoothing():
    r = make("""\
        - {cc: 0, target: z.0}
        - {cc: 1, target: psi, range: [0.3, 1.1], invert: true, smoothing_ms: 25}
        - {cc: 2, target: edit.b4, curve: exp}
    """)
    out = r.route([cc(0, 127), cc(1, 0), cc(2, 127)])
    assert values(out) == [("z.0", 3.0), ("psi", 1.1), ("edit.b4", 1.0)]
    assert out[1].smoothing_ms == 25 and out[0].smoothing_ms is None and out[0].source == "cc 0 ch 1"
    out = r.route([cc(0, 0), cc(2, 64)])
    assert values(out)[0] == ("z.0", -3.0)
    assert out[1].value < 64 / 127 * 0.5  # exp: fine near the bottom


def test_coalescing_keeps_latest_value_every_edge_and_every_tick():
    r = make("""\
        - {cc: 0, target: z.0}
        - {cc: 1, target: psi}
        - {note: 36, target: z.1}
        - {cc: 2, action: seed.next}
        - {cc: 3, encoder: twos_complement, target: z.2, step: 0.1}
    """)
    events = [cc(0, v) for v in range(0, 128, 8)] + [cc(1, 10), note(36, 127), note(36, 0), cc(2, 127), cc(2, 0),
                                                    cc(2, 127), cc(3, 3), cc(0, 99), cc(3, 2), cc(3, 127)]
    out = r.route(events)
    assert values(out) == [("psi", round(-1 + 3 * 10 / 127, 6)), ("z.1", 3.0), ("z.1", -3.0),
                           ("seed.next", 0.0), ("seed.next", 0.0), ("z.0", round(-3 + 6 * 99 / 127, 6)),
                           ("z.2", 0.4)]
    assert [u.action for u in out].count(True) == 2


# -- 14-bit pairs and NRPN -----------------------------------------------------------------------------
def test_cc14_pairs_in_either_order_msb_only_and_lsb_only():
    r = make("- {cc14: 1, target: edit.b4}\n- {cc14: 2, target: edit.b8, channel: 2}\n")
    assert values(r.route([cc(1, 64), cc(33, 0)])) == [("edit.b4", round(8192 / 16383, 6))]
    assert values(r.route([cc(33, 127), cc(1, 127)])) == [("edit.b4", 1.0)]  # LSB first
    assert values(r.route([cc(33, 0)])) == [("edit.b4", round(127 * 128 / 16383, 6))]  # fine change only
    assert values(r.route([cc(1, 0)])) == [("edit.b4", 0.0)]  # MSB only: sent at the end of the call
    # per channel: channel 2's pair does not mix with channel 1's
    out = r.route([cc(2, 100, ch=1), cc(1, 10), cc(34, 5, ch=1), cc(33, 3)])
    assert sorted(values(out)) == [("edit.b4", round((10 * 128 + 3) / 16383, 6)),
                                   ("edit.b8", round((100 * 128 + 5) / 16383, 6))]


def test_a_pair_split_across_calls_settles_on_the_exact_value():
    r = make("- {cc14: 7, target: psi}\n")
    r.route([cc(7, 80)])
    assert values(r.route([cc(39, 77)])) == [("psi", round(-1 + 3 * (80 * 128 + 77) / 16383, 6))]


def test_nrpn_14_and_7_bit_per_channel_with_rpn_deselect_and_inc_dec():
    r = make("""\
        - {nrpn: 300, target: edit.b4}
        - {nrpn: 5, target: edit.b8, bits: 7, channel: 3}
        - {cc: 6, target: z.0, channel: 4}
    """)
    select300 = [cc(99, 2), cc(98, 44)]  # 2 * 128 + 44 = 300
    assert values(r.route(select300 + [cc(6, 64), cc(38, 0)])) == [("edit.b4", round(8192 / 16383, 6))]
    assert values(r.route([cc(6, 127), cc(38, 127)])) == [("edit.b4", 1.0)]  # stays selected
    # channel 3 (7-bit NRPN) interleaved with channel 1: separate selection state
    out = r.route([cc(99, 0, ch=2), cc(6, 1), cc(98, 5, ch=2), cc(38, 0), cc(6, 127, ch=2)])
    assert sorted(values(out)) == [("edit.b4", round((1 * 128) / 16383, 6)), ("edit.b8", 1.0)]
    # an RPN selection stops data entries from reaching NRPN bindings
    assert r.route([cc(101, 0), cc(100, 0), cc(6, 30)]) == []
    # data increment / decrement move one 7-bit notch
    r.route(select300 + [cc(6, 0), cc(38, 0)])
    inc = r.route([cc(96, 1)])
    assert values(inc) == [("edit.b4", round(1 / 127, 6))]
    # CC 6 on a channel without NRPN bindings is a plain CC
    assert values(r.route([cc(6, 127, ch=3)])) == [("z.0", 3.0)]


# -- buttons ------------------------------------------------------------------------------------------
def test_note_buttons_momentary_velocity_toggle_trigger_and_actions():
    state = {"noise": 0.0}
    r = make("""\
        - {note: 36, target: z.0, range: [0, 2]}
        - {note: 37, target: z.1, velocity: true, range: [0, 1]}
        - {note: 38, target: noise, mode: toggle, range: [0, 1]}
        - {note: 39, target: psi, mode: trigger, value: 0.5}
        - {note: 40, action: z.random}
        - {cc: 20, target: z.2, mode: momentary}
    """, current=lambda name: state.get(name, REG.targets[name].default))
    assert values(r.route([note(36, 100), ControlEvent("note_off", 0, 36, 64)])) == [("z.0", 2.0), ("z.0", 0.0)]
    assert values(r.route([note(37, 127), note(37, 0)])) == [("z.1", 1.0), ("z.1", 0.0)]  # velocity 0 = off
    assert values(r.route([note(37, 64)])) == [("z.1", round(64 / 127, 6))]
    out = r.route([note(38, 127), note(38, 0)])
    assert values(out) == [("noise", 1.0)]  # release ignored
    state["noise"] = 1.0
    assert values(r.route([note(38, 127)])) == [("noise", 0.0)]  # reads the target: after a recall too
    assert values(r.route([note(39, 1), note(39, 0)])) == [("psi", 0.5)]
    assert r.route([note(40, 0)]) == []
    out = r.route([ControlEvent("note_on", 0, 40, 127, timestamp=12.5)])
    # (an action carries the time its control moved: a tap is the hit's moment, not the frame's)
    assert out == [ParamUpdate("z.random", 0.0, action=True, source="note 40 ch 1", time_s=12.5)]
    assert values(r.route([cc(20, 127), cc(20, 0)])) == [("z.2", 3.0), ("z.2", -3.0)]


@pytest.mark.parametrize("encoding, up, down", [
    ("twos_complement", 1, 127), ("binary_offset", 65, 63), ("sign_magnitude", 1, 65),
    ("sign_magnitude_inv", 65, 1)])
def test_relative_encoders_of_each_encoding(encoding, up, down):
    r = make(f"- {{cc: 10, encoder: {encoding}, target: psi, step: 0.25}}\n"
             f"- {{cc: 11, encoder: {encoding}, target: seed}}\n"
             f"- {{cc: 12, encoder: {encoding}, target: edit.b4, invert: true}}\n")
    assert values(r.route([cc(10, up), cc(10, up), cc(10, down)])) == [("psi", 1.25)]
    assert values(r.route([cc(10, up)] * 10)) == [("psi", 2.0)]  # clamped at the range's end
    assert values(r.route([cc(11, up + 2)])) == [("seed", 3.0)]  # accelerated: magnitude is the step count
    assert values(r.route([cc(12, down)])) == [("edit.b4", round(1 / 128, 6))]  # default step: range / 128


def test_program_change_any_and_specific():
    r = make("""\
        - {program: any, action: preset.recall, offset: 1}
        - {program: 9, action: z.random}
        - {program: any, channel: 2, action: seed.next}
    """)
    prog = [ControlEvent("program_change", 0, n) for n in (0, 4, 9)] + [ControlEvent("program_change", 1, 3)]
    assert [(u.target, u.value) for u in r.route(prog)] == [
        ("preset.recall", 1.0), ("preset.recall", 5.0), ("z.random", 0.0), ("seed.next", 0.0)]


def test_pitchbend_aftertouch_polytouch_channel_any_and_osc():
    r = make("""\
        - {pitchbend: true, target: psi, range: [0, 2], deadzone: 0.05}
        - {aftertouch: true, target: z.0}
        - {polytouch: any, target: z.1, range: [0, 1]}
        - {cc: 5, target: z.2, channel: any}
        - {osc: /fx/a, target: edit.b4, input_range: [0, 10]}
        - {osc: /fx/go, action: seed.next}
    """)
    events = [ControlEvent("pitchwheel", 0, 0, 300), ControlEvent("aftertouch", 0, 0, 127),
              ControlEvent("polytouch", 0, 60, 127), cc(5, 127, ch=15),
              ControlEvent("osc", address="/fx/a", value=5.0), ControlEvent("osc", address="/fx/go", value=1.0),
              ControlEvent("osc", address="/fx/go", value=0.0)]
    assert values(r.route(events)) == [("psi", 1.0), ("z.0", 3.0), ("z.1", 1.0), ("z.2", 3.0), ("edit.b4", 0.5),
                                       ("seed.next", 0.0)]
    assert values(r.route([ControlEvent("pitchwheel", 0, 0, -8192)])) == [("psi", 0.0)]


# -- takeover in the router -----------------------------------------------------------------------------
def test_pickup_waits_for_the_fader_and_rearms_after_recall_and_outside_changes():
    clock = FakeClock(1.0)
    state = {"z.0": 0.0}
    r = make("- {cc: 0, target: z.0}\n", takeover="pickup", current=lambda n: state[n], clock=clock)

    def move(v):
        clock.advance(0.2)  # slow moves: never a whip
        out = r.route([cc(0, v)])
        for u in out:
            state[u.target] = u.value
        return values(out)

    assert move(10) == []  # armed, far from 0: ignored (it only learns where the fader is)
    assert move(40) == []  # same side of the value
    assert move(70) == [("z.0", round(-3 + 6 * 70 / 127, 6))]  # crossed 63.5: picked up
    assert move(72) == [("z.0", round(-3 + 6 * 72 / 127, 6))]
    state["z.0"] = -2.0  # a preset recall ...
    r.rearm()
    assert move(74) == []  # ... the fader must come back to the value first
    assert move(10) != []  # crossed -2.0 (= 21 on the fader) on the way down
    state["z.0"] = 2.5  # moved by something else (another control, a script)
    assert move(12) == []  # noticed without rearm(): waiting again
    assert r.stats.takeover_ignored == 4


def test_pickups_name_the_controls_held_back_now_and_nothing_stale():
    clock = FakeClock(1.0)
    state = {n: s.default for n, s in REG.targets.items()}
    r = make("- {cc: 0, target: z.0}\n", takeover="pickup", extra=BANKS.replace("cc: 0..1", "cc: 1..2"),
             current=lambda n: state[n], clock=clock)

    def route(*events):
        clock.advance(0.2)
        for u in r.route(events):
            state[u.target] = u.value

    assert r.pickups() == []
    route(cc(0, 10))  # armed, far from z.0's 0: held back
    [p] = r.pickups()
    assert (p.target, p.control, p.target_value) == ("z.0", "cc 0 ch 1", 0.0)
    assert p.control_value == pytest.approx(-3 + 6 * 10 / 127)
    state["z.0"] = 1.5  # a recall moves the target: the waiting control now aims there
    r.rearm()
    assert r.pickups()[0].target_value == 1.5
    state["z.0"] = p.control_value  # something else brought the target to the fader
    assert r.pickups() == []
    state["z.0"] = 1.5
    route(cc(0, 100))  # crosses 1.5: picked up
    assert r.pickups() == []
    route(cc(0, 10))  # the fader leaves... and z.0 follows (picked up): nothing held back
    assert r.pickups() == []
    state["z.0"] = 2.5
    route(cc(0, 12))
    assert [p.target for p in r.pickups()] == ["z.0"]
    r.rearm(forget_position=True)  # the controller was replugged: where the fader is is unknown
    assert r.pickups() == []
    route(cc(2, 10))  # page z's z.1 (at 0), far: held back
    assert [p.target for p in r.pickups()] == ["z.1"]
    route(note(26, 127))  # another page: z.1's control is not live there
    assert r.pickups() == []
    route(cc(2, 127))  # (moves edit.b8 on that page)
    route(note(25, 127))  # back: the fader moved meanwhile, the old position is stale
    assert r.pickups() == []


def test_another_control_moving_the_target_stops_a_whip():
    clock = FakeClock(1.0)
    state = {"psi": 1.0}
    r = make("- {cc: 0, target: psi}\n- {pitchbend: true, target: psi}\n", takeover="pickup",
             current=lambda n: state[n], clock=clock)

    def route(event, dt):
        clock.advance(dt)
        out = r.route([event])
        for u in out:
            state[u.target] = u.value
        return values(out)

    assert route(cc(0, 85), 0.2) != []  # the fader picks psi up (1.0 is at 84.7)
    assert route(ControlEvent("pitchwheel", 0, 0, -8192), 0.005) == [("psi", -1.0)]
    assert route(cc(0, 90), 0.005) == []  # within 50 ms of its last move, but psi moved elsewhere


def test_scale_takeover_converges():
    clock = FakeClock(1.0)
    state = {"edit.b4": 0.8}
    r = make("- {cc: 0, target: edit.b4, takeover: scale}\n", current=lambda n: state[n], clock=clock)
    seen = []
    for v in (20, 40, 60, 80, 100, 127):
        clock.advance(0.2)
        out = r.route([cc(0, v)])
        for u in out:
            state[u.target] = u.value
        seen.append(round(out[0].value, 4) if out else None)
    assert seen[0] is None  # armed: the first value only tells where the knob is
    moved = seen[1:]
    assert 0.8 < moved[0] < 0.85 and all(b > a for a, b in zip(moved, moved[1:])) and moved[-1] == 1.0
    assert all(m > v / 127 for m, v in zip(moved[:-1], (40, 60, 80, 100)))  # ahead of the knob until the end


# -- banks ------------------------------------------------------------------------------------------------
BANKS = """
banks:
  - name: faders
    next: {note: 26}
    prev: {note: 25}
    pages:
      - name: z
        bindings: [{cc: 0..1, target: "z.{i}"}]
      - name: edits
        select: {note: 1}
        bindings: [{cc: 0..1, target: "edit.*"}]
"""


def test_bank_buttons_change_what_a_fader_reaches_and_rearm_takeover():
    clock = FakeClock(1.0)
    state = {n: s.default for n, s in REG.targets.items()}
    r = make("- {cc: 7, target: psi, takeover: none}\n", takeover="pickup", extra=BANKS,
             current=lambda n: state[n], clock=clock)
    pages = []
    r.on_page.append(lambda bank, page: pages.append((bank, page)))

    def route(*events):
        clock.advance(0.2)
        out = r.route(events)
        for u in out:
            state[u.target] = u.value
        return values(out)

    assert r.pages == {"faders": "z"}
    assert route(cc(0, 64)) == [("z.0", round(-3 + 6 * 64 / 127, 6))]
    assert route(note(26, 127)) == [] and r.pages == {"faders": "edits"} and pages == [("faders", "edits")]
    assert route(cc(0, 1)) == [("edit.b4", round(1 / 127, 6))]  # near edit.b4's 0: picked up at once
    assert route(cc(1, 100)) == []  # far from edit.b8's 0 and armed: waits
    assert route(note(26, 127)) == [] and r.pages == {"faders": "z"}  # wraps around
    assert route(cc(0, 100)) == []  # back on page z: re-armed, position forgotten, z.0 is at 0.02
    assert route(note(1, 127), cc(0, 0)) == [("edit.b4", 0.0)]  # select button, same call
    assert route(note(25, 127)) == [] and r.pages == {"faders": "z"}
    r.set_page("faders", "edits")
    assert {b.target for b in r.active_bindings()} == {"psi", "edit.b4", "edit.b8"}
    with pytest.raises(KeyError):
        r.set_page("faders", "nope")


# -- garbage --------------------------------------------------------------------------------------------
def test_garbage_is_counted_and_never_raises():
    r = make("- {cc: 0, target: z.0}\n- {note: 36, action: seed.next}\n")
    junk = [ControlEvent("control_change", 16, 0, 1), ControlEvent("control_change", -1, 0, 1),
            ControlEvent("control_change", 0, 128, 1), ControlEvent("control_change", 0, 0, 300),
            ControlEvent("control_change", 0, 0, math.nan), ControlEvent("control_change", 0, 0, -1),
            ControlEvent("control_change", None, None, None),  # type: ignore[arg-type]
            ControlEvent("pitchwheel", 0, 0, 9000), ControlEvent("wobble", 0, 0, 1),
            ControlEvent("osc", address="/x", value="text"),  # type: ignore[arg-type]
            ControlEvent("note_on", 0.5, 36, 100)]  # type: ignore[arg-type]
    ignored = [ControlEvent("feature", address="rms_db", value=-20.0), ControlEvent("clock"),
               ControlEvent("sysex")]
    unbound = [cc(99, 1, ch=5), cc(1, 1), note(37, 100), ControlEvent("osc", address="/nothing", value=1.0)]
    assert r.route(junk + ignored + unbound + [cc(0, 127)]) == [ParamUpdate("z.0", 3.0, source="cc 0 ch 1")]
    assert r.stats.garbage == len(junk) and r.stats.ignored == len(ignored)
    assert r.stats.unbound == len(unbound) and r.stats.errors == 0
    assert r.stats.events == len(junk) + len(ignored) + len(unbound) + 1


events = st.builds(
    ControlEvent,
    kind=st.sampled_from(["control_change", "note_on", "note_off", "pitchwheel", "aftertouch", "polytouch",
                          "program_change", "osc", "feature", "sysex", "bogus"]),
    channel=st.one_of(st.integers(-3, 20), st.none(), st.floats()),
    number=st.one_of(st.integers(-5, 20000), st.none()),
    value=st.one_of(st.floats(), st.integers(-20000, 20000), st.text(max_size=3), st.none()),
    address=st.sampled_from(["", "/fx/a", "/x"]))


@settings(max_examples=60, deadline=None)
@given(stream=st.lists(events, max_size=40))
def test_random_streams_never_raise_and_stay_in_range(stream):
    r = make("""\
        - {cc: 0..3, target: "z.{i}"}
        - {cc14: 10, target: psi}
        - {nrpn: 1, target: edit.b4}
        - {cc: 20, encoder: sign_magnitude, target: edit.b8}
        - {note: 36, target: noise, mode: toggle, range: [0, 1]}
        - {program: any, action: preset.recall}
        - {osc: /fx/a, target: edit.b16}
    """, takeover="pickup")
    for update in r.route(stream):
        if not update.action:
            spec = REG.targets[update.target]
            assert spec.minimum <= update.value <= spec.maximum
    assert r.stats.errors == 0


# -- end to end with the demo instrument --------------------------------------------------------------------
@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    from ganinstrument import Instrument

    return Instrument("demo", device="cpu", presets_dir=tmp_path_factory.mktemp("presets"))


def test_end_to_end_nanokontrol2_moves_the_instrument(inst):
    mapping = load_mapping(shipped_folder("mappings") / "korg-nanokontrol2.yaml", inst.registry)
    clock = FakeClock(1.0)
    r = Router(mapping, inst.registry, clock, current=inst.state.target)
    inst.on_recall.append(r.rearm)

    def play(*events):
        clock.advance(0.2)
        for update in r.route(events):
            assert inst.apply(update), inst.warnings
        inst.state.step(1.0)  # smoothing settles (Instrument.step would also render: slow here)

    play(cc(0, 64), cc(0, 127))  # fader 1: picked up near 0, then a fast move to the top
    assert inst.get("z.0") == pytest.approx(3.0, abs=1e-3)
    play(cc(16, 0), cc(16, 127))  # knob 1 on the "edits" page
    first_edit = next(n for n in inst.registry.targets if n.startswith("edit."))
    assert inst.get(first_edit) == pytest.approx(1.0, abs=1e-3)
    seed = inst.get("seed")
    play(cc(44, 127), cc(44, 0))  # >> : seed.next
    inst.state.step(2.0)
    assert inst.get("seed") == pytest.approx(seed + 1, abs=1e-3)
    play(cc(62, 127), cc(16, 64))  # marker >: the knobs now play psi (armed: 64 is far from psi = 1)
    assert r.pages == {"knobs": "look"} and inst.get("psi") == pytest.approx(1.0)
    play(cc(16, 85))  # crossing psi = 1 (fader 84.7) picks it up
    assert inst.get("psi") == pytest.approx(-1 + 3 * 85 / 127, abs=1e-3)
    play(cc(64, 127), cc(64, 0))  # R1: save slot 1
    assert (inst.bank.directory / "01.yaml").is_file()
    play(cc(0, 0))  # z.0 down (a continuing move? no: 0.2 s later and far, but crosses nothing)
    play(cc(0, 126), cc(0, 20))
    moved = inst.get("z.0")
    play(cc(32, 127), cc(32, 0))  # S1: recall slot 1 (z.0 back to 3.0), takeover re-armed
    assert inst.get("z.0") == pytest.approx(3.0, abs=1e-3) and moved < 0
    play(cc(0, 30))  # the fader is still down: ignored until it comes back up
    assert inst.get("z.0") == pytest.approx(3.0, abs=1e-3)
    assert r.stats.errors == 0 and r.stats.garbage == 0
    assert inst.step(0.1).pixels.shape[-1] == 3  # and the picture renders
