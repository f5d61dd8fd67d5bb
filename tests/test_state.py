"""State: clamping, smoothing by real dt, and a stage side that never raises."""

from __future__ import annotations

import math

import pytest

from ganinstrument.common.events import ParamUpdate
from ganinstrument.state.params import Registry, TargetSpec, UnknownTargetError
from ganinstrument.state.values import SMOOTHING_TARGET, State


def _state(**over):
    specs = [
        SMOOTHING_TARGET,
        TargetSpec("psi", 0.0, 2.0, 1.0, smoothing_ms=100.0),
        TargetSpec("z.0", -3.0, 3.0, 0.0, smoothing="critical", smoothing_ms=200.0),
        TargetSpec("blend.all", -1.0, 2.0, 0.0, extrapolate=True),
        TargetSpec("seed", 0, 1e6, 0, kind="step", smoothing="none", smoothing_ms=0.0),
        TargetSpec("view", 0, 2, 0, kind="choice", choices=("image", "b4", "b8"), smoothing="none"),
    ]
    return State(Registry.build(specs))


def run(state, seconds, fps):
    for _ in range(round(seconds * fps)):
        state.step(1.0 / fps)


def test_set_clamps_and_get_follows_smoothly():
    s = _state()
    assert s.set("psi", 5.0) == 2.0
    assert s.get("psi") == 1.0 and s.target("psi") == 2.0
    s.step(0.1)
    assert s.get("psi") == pytest.approx(2.0 - math.exp(-1.0))
    assert s.set("blend.all", 3.5) == 3.5  # extrapolating targets are not clamped
    assert s.set("seed", 41.6) == 42.0  # steps are whole


@pytest.mark.parametrize("name", ["psi", "z.0"])
def test_smoothing_converges_the_same_at_30_and_240_fps(name):
    a, b = _state(), _state()
    for value in (1.7, -0.4, 0.9):
        a.set(name, value)
        b.set(name, value)
        run(a, 0.5, 30)
        run(b, 0.5, 240)
        assert a.get(name) == pytest.approx(b.get(name), abs=1e-9)


def test_changed_names_until_settled_then_nothing():
    s = _state()
    s.set("psi", 0.0)
    assert s.step(0.01) == {"psi"}
    run(s, 5.0, 60)
    assert s.get("psi") == 0.0  # snapped exactly once arrived
    assert s.step(1 / 60) == set() and not s.moving


def test_global_smoothing_scale_zero_is_instant_and_two_is_slower():
    s = _state()
    s.set("smoothing", 0.0)
    s.step(0.001)
    s.set("psi", 0.0)
    s.step(0.001)
    assert s.get("psi") == 0.0
    slow, normal = _state(), _state()
    slow.set("smoothing", 2.0)
    for st in (slow, normal):
        st.step(0.001)
        st.set("psi", 0.0)
        st.step(0.1)
    assert slow.get("psi") > normal.get("psi") > 0.0


def test_per_binding_override_and_immediate():
    s = _state()
    s.set("psi", 0.0, smoothing_ms=0.0)
    s.step(0.001)
    assert s.get("psi") == 0.0
    s.set("psi", 2.0)  # back to the target's own 100 ms
    s.step(0.1)
    assert 0.0 < s.get("psi") < 2.0
    s.set("z.0", 2.5, immediate=True)
    assert s.get("z.0") == 2.5
    assert "z.0" not in s.step(0.01)


def test_choices_never_smooth():
    s = _state()
    s.set("view", 2)
    assert s.get("view") == 2.0


def test_strict_set_raises_with_did_you_mean():
    s = _state()
    with pytest.raises(UnknownTargetError, match="did you mean 'psi'"):
        s.set("pis", 1.0)
    with pytest.raises(ValueError):
        s.set("psi", float("nan"))


def test_stage_apply_never_raises_and_reports():
    s = _state()
    bad = [ParamUpdate("pis", 1.0, source="midi cc 7"), ParamUpdate("psi", float("inf")),
           ParamUpdate("psi", "x"), ParamUpdate("psi", 0.5)]  # type: ignore[arg-type]
    assert s.apply_all(bad) == 1
    assert s.rejected == 3
    assert any("midi cc 7" in p and "did you mean" in p for p in s.problems)
    assert s.target("psi") == 0.5


def test_jump_all_skips_unknown_and_nonfinite():
    s = _state()
    s.jump_all({"psi": 0.25, "nope": 1.0, "z.0": float("nan")})
    assert s.get("psi") == 0.25 and s.get("z.0") == 0.0
