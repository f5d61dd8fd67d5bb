"""Smoothing: known answers for a step, frame-rate independence, range and monotonicity
properties, and the stage guarantees (NaN ignored, dt <= 0 no-op, stalls snap, no NaN out)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganinstrument.common.clock import FakeClock
from ganinstrument.state.smoothing import (
    FILTER_KINDS,
    CriticallyDamped,
    NoSmoothing,
    OnePole,
    Smoothed,
    SmoothedVector,
    make_filter,
)

PROPS = settings(max_examples=60, deadline=None)

values = st.floats(-100.0, 100.0, allow_nan=False)
times_ms = st.floats(1.0, 5000.0)
smoothing_kinds = st.sampled_from(["one_pole", "critical"])
frame_dts = st.lists(st.floats(1e-4, 0.5), min_size=1, max_size=60)


def run(smoothed: Smoothed, target: float, dts) -> list[float]:
    return [smoothed.step(target, dt) for dt in dts]


def split(total: float, weights: list[float]) -> list[float]:
    """`total` seconds cut into len(weights) jittered frames summing to it."""
    norm = sum(weights)
    return [total * w / norm for w in weights]


# --- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, cls", [("none", NoSmoothing), ("one_pole", OnePole), ("critical", CriticallyDamped)]
)
def test_make_filter_builds_each_kind(kind, cls):
    f = make_filter(kind, 120)
    assert type(f) is cls and f.kind == kind
    assert f.time_ms == (0.0 if kind == "none" else 120.0)
    assert kind in FILTER_KINDS


def test_make_filter_names_the_valid_kinds():
    with pytest.raises(ValueError) as err:
        make_filter("linear", 100)
    assert all(kind in str(err.value) for kind in FILTER_KINDS)


@pytest.mark.parametrize("kind", FILTER_KINDS)
@pytest.mark.parametrize("bad", [-1.0, -1e-9, math.nan, math.inf])
def test_bad_time_is_refused(kind, bad):
    with pytest.raises(ValueError, match="time_ms"):
        make_filter(kind, bad)


def test_time_must_be_a_number():
    with pytest.raises(TypeError, match="time_ms"):
        OnePole("100")  # type: ignore[arg-type]


def test_filters_are_immutable_values():
    assert OnePole(50) == OnePole(50.0) and OnePole(50) != CriticallyDamped(50)
    with pytest.raises(AttributeError):
        OnePole(50).time_ms = 10  # type: ignore[misc]


# --- known answers ------------------------------------------------------------------------


def test_one_pole_covers_one_minus_one_over_e_in_one_time_constant():
    f = OnePole(250)
    assert f.step(0.0, 1.0, 0.25) == pytest.approx(1 - 1 / math.e, abs=1e-15)
    s = Smoothed(f)
    run(s, 1.0, [0.25 / 100] * 100)
    assert s.value == pytest.approx(1 - 1 / math.e, abs=1e-12)
    assert f.step(2.0, -2.0, 0.5) == pytest.approx(-2.0 + 4.0 / math.e**2, abs=1e-15)


def test_critical_step_has_no_overshoot_is_monotone_and_settles_in_about_3_3_time_units():
    time_s = 0.2
    s = Smoothed(CriticallyDamped(time_s * 1000))
    trace = run(s, 1.0, [1 / 240] * 240)  # 1 s = 5 T
    assert all(0.0 <= v <= 1.0 for v in trace)
    assert all(b >= a for a, b in zip(trace, trace[1:]))
    # w = 2/T: remaining (1 + w t) exp(-w t) is 1 % at w t = 6.64, t = 3.32 T
    t_1pct = next(i + 1 for i, v in enumerate(trace) if v >= 0.99) / 240
    assert 3.2 * time_s <= t_1pct <= 3.4 * time_s
    # 59 % after one T, like the one-pole's 63 %: both settings feel alike
    assert trace[int(240 * time_s) - 1] == pytest.approx(1 - 3 / math.e**2, abs=1e-12)


def test_critical_eases_in_where_the_one_pole_starts_abruptly():
    first_op = OnePole(100).step(0.0, 1.0, 1 / 240)
    first_cd, velocity = CriticallyDamped(100).advance(0.0, 0.0, 1.0, 1 / 240)
    assert first_cd < first_op / 10 and velocity > 0


@pytest.mark.parametrize("kind", FILTER_KINDS)
def test_time_zero_and_no_smoothing_jump(kind):
    s = Smoothed(make_filter(kind, 0), value=-3.0)
    assert s.step(7.5, 1 / 60) == 7.5
    assert s.velocity == 0.0 and s.settled(0.0)


def test_no_smoothing_step_is_the_target():
    assert NoSmoothing().step(0.0, 4.0, 1e-6) == 4.0


# --- frame-rate independence --------------------------------------------------------------


@pytest.mark.parametrize("kind, tol", [("one_pole", 1e-9), ("critical", 1e-9)])
def test_30_and_240_fps_converge_to_the_same_value(kind, tol):
    f = make_filter(kind, 180)
    at_30, at_240 = Smoothed(f), Smoothed(f)
    for second in range(3):  # a target change every 0.5 s: piecewise constant
        for half, target in enumerate((1.0, -0.4)):
            run(at_30, target, [1 / 30] * 15)
            run(at_240, target, [1 / 240] * 120)
            assert at_30.value == pytest.approx(at_240.value, abs=tol)
            assert at_30.velocity == pytest.approx(at_240.velocity, abs=tol * 100)


@PROPS
@given(
    kind=smoothing_kinds,
    time_ms=times_ms,
    start=values,
    segments=st.lists(
        st.tuples(values, st.floats(0.001, 2.0), st.lists(st.floats(0.01, 1.0), min_size=1)),
        min_size=1,
        max_size=4,
    ),
)
def test_any_split_of_the_same_wall_time_gives_the_same_value(kind, time_ms, start, segments):
    f = make_filter(kind, time_ms)
    whole, jittered = Smoothed(f, start), Smoothed(f, start)
    for target, duration, weights in segments:
        whole.step(target, duration)
        run(jittered, target, split(duration, weights))
    # the closed forms are exact; what is left is rounding, relative to the values' size
    size = max(1.0, abs(start), *(abs(seg[0]) for seg in segments))
    assert jittered.value == pytest.approx(whole.value, abs=1e-9 * size)
    assert jittered.velocity * f.coast_s() == pytest.approx(
        whole.velocity * f.coast_s(), abs=1e-9 * size
    )


# --- range and monotonicity ---------------------------------------------------------------


@PROPS
@given(kind=smoothing_kinds, time_ms=times_ms, start=values, target=values, dts=frame_dts)
def test_a_step_stays_between_start_and_target_and_approaches_monotonically(
    kind, time_ms, start, target, dts
):
    s = Smoothed(make_filter(kind, time_ms), start)
    trace = [start, *run(s, target, dts)]
    slack = 1e-12 * max(1.0, abs(start), abs(target))  # rounding of target + offset
    lo, hi = min(start, target), max(start, target)
    assert all(lo - slack <= v <= hi + slack for v in trace)
    distance = [abs(v - target) for v in trace]
    assert all(b <= a + slack for a, b in zip(distance, distance[1:]))


# --- the global smoothing scale -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["one_pole", "critical"])
def test_scale_multiplies_the_time_constant(kind):
    slow, ref = Smoothed(make_filter(kind, 100)), Smoothed(make_filter(kind, 200))
    for _ in range(20):
        slow.step(1.0, 1 / 60, scale=2.0)
        ref.step(1.0, 1 / 60)
    assert slow.value == pytest.approx(ref.value, abs=1e-12)


@pytest.mark.parametrize("kind", FILTER_KINDS)
@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_scale_zero_is_instant(kind, scale):
    s = Smoothed(make_filter(kind, 500))
    assert s.step(2.0, 1 / 60, scale=scale) == 2.0 and s.velocity == 0.0


@pytest.mark.parametrize("scale", [math.nan, math.inf])
def test_non_finite_scale_counts_as_configured(scale):
    f = CriticallyDamped(100)
    assert f.advance(0.0, 0.0, 1.0, 0.05, scale=scale) == f.advance(0.0, 0.0, 1.0, 0.05)


# --- stage guarantees ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", FILTER_KINDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_target_is_ignored(kind, bad):
    f = make_filter(kind, 100)
    assert f.advance(0.5, 0.0, bad, 1 / 60) == (0.5, 0.0)
    s = Smoothed(f, value=0.5)
    assert s.step(bad, 1 / 60) == 0.5 and s.target == 0.5
    s.step(1.0, 1 / 60)
    mid = s.value
    s.step(bad, 1 / 60)  # keeps following the last good target
    assert s.target == 1.0 and mid <= s.value <= 1.0 and math.isfinite(s.velocity)


@pytest.mark.parametrize("kind", FILTER_KINDS)
@pytest.mark.parametrize("dt", [0.0, -0.01, math.nan, -math.inf])
def test_non_positive_dt_leaves_the_state_unchanged(kind, dt):
    s = Smoothed(make_filter(kind, 100))
    s.step(1.0, 0.01)
    before = (s.value, s.velocity)
    s.step(1.0, dt)
    assert (s.value, s.velocity) == before


@pytest.mark.parametrize("kind", FILTER_KINDS)
@pytest.mark.parametrize("dt", [10.0, 1e9, 1e300, math.inf])
def test_a_stall_snaps_to_the_target_without_overshoot(kind, dt):
    s = Smoothed(make_filter(kind, 100))
    s.step(1.0, 0.02)  # moving, with velocity for the second order
    assert s.step(-5.0, dt) == -5.0 and s.velocity == 0.0


@pytest.mark.parametrize("kind", ["one_pole", "critical"])
def test_overflow_near_the_float_limit_snaps_instead_of_making_nan(kind):
    s = Smoothed(make_filter(kind, 100), value=-1.7e308)
    v = s.step(1.7e308, 1 / 60)
    assert math.isfinite(v) and math.isfinite(s.velocity)


def test_reset_jumps_and_stops():
    s = Smoothed(CriticallyDamped(300))
    s.step(1.0, 0.05)
    assert s.velocity != 0.0
    s.reset(0.25)
    assert (s.value, s.target, s.velocity) == (0.25, 0.25, 0.0) and s.settled(0.0)
    with pytest.raises(ValueError, match="finite"):
        s.reset(math.nan)


@pytest.mark.parametrize("kind", ["one_pole", "critical"])
def test_settled_once_close_and_slow(kind):
    s = Smoothed(make_filter(kind, 100))
    assert s.settled()
    s.step(1.0, 1 / 60)
    assert not s.settled(1e-3)
    run(s, 1.0, [1 / 60] * 60)  # 1 s = 10 time units
    assert s.settled(1e-3)


def test_passing_through_the_target_fast_is_not_settled():
    s = Smoothed(CriticallyDamped(100), value=1.0)
    s.velocity = 50.0  # as after an abrupt reversal
    assert abs(s.value - s.target) <= 1e-3 and not s.settled(1e-3)


def test_driven_by_a_fake_clock():
    clock = FakeClock()
    s = Smoothed(OnePole(100))
    last = clock.now()
    for dt in (1 / 60, 1 / 30, 0.0, 1 / 144):
        clock.advance(dt)
        now = clock.now()
        s.step(1.0, now - last)
        last = now
    assert s.value == pytest.approx(1 - math.exp(-clock.now() / 0.1), abs=1e-12)


# --- the vector version -------------------------------------------------------------------


@PROPS
@given(
    kind=st.sampled_from(FILTER_KINDS),
    time_ms=st.sampled_from([0.0, 16.0, 120.0, 900.0]),
    n=st.integers(1, 16),
    seed=st.integers(0, 2**32 - 1),
    dts=st.lists(st.sampled_from([0.0, 1 / 240, 1 / 60, 1 / 30, 0.3, 100.0]), min_size=1),
    scale=st.sampled_from([1.0, 0.0, 0.5, 3.0]),
)
def test_vector_equals_scalar_element_wise(kind, time_ms, n, seed, dts, scale):
    rng = np.random.default_rng(seed)
    f = make_filter(kind, time_ms)
    start = rng.uniform(-2, 2, n)
    vec = SmoothedVector(f, start)
    scalars = [Smoothed(f, x) for x in start]
    for i, dt in enumerate(dts):
        target = rng.uniform(-2, 2, n) if i % 7 == 0 else None  # targets change now and then
        if target is not None and n > 1:
            target[rng.integers(n)] = np.nan  # one bad reading each time: ignored
        vec.step(target, dt, scale=scale)
        for j, s in enumerate(scalars):
            s.step(None if target is None else float(target[j]), dt, scale=scale)
    np.testing.assert_array_equal(vec.value, [s.value for s in scalars])
    np.testing.assert_array_equal(vec.velocity, [s.velocity for s in scalars])
    np.testing.assert_array_equal(vec.target, [s.target for s in scalars])
    assert vec.settled(1e-4) == all(s.settled(1e-4) for s in scalars)


def test_vector_state_is_read_only_and_live():
    vec = SmoothedVector(OnePole(100), np.zeros(512))
    out = vec.step(np.ones(512), 0.1)
    with pytest.raises(ValueError):
        out[0] = 5.0
    vec.step(None, 0.1)
    assert out[0] == pytest.approx(1 - math.exp(-2.0))  # the view follows the state


def test_vector_reset_settled_and_shapes():
    vec = SmoothedVector(CriticallyDamped(50), 0.0, shape=(4, 8))
    assert vec.shape == (4, 8) and vec.settled()
    vec.step(1.0, 0.01)  # a scalar target broadcasts
    assert not vec.settled(1e-3)
    vec.reset(np.arange(8.0))  # broadcasts over the rows
    assert vec.settled(0.0) and vec.value[3, 7] == 7.0 and not vec.velocity.any()
    with pytest.raises(ValueError, match="shape"):
        vec.set_target(np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        SmoothedVector(OnePole(1), [0.0, math.nan])
