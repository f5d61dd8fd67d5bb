"""Clocks: the real one never goes back; the fake one moves only when told and refuses to go back."""

from __future__ import annotations

import math

import pytest

from ganinstrument.common.clock import Clock, FakeClock, MonotonicClock


def test_both_clocks_satisfy_the_protocol():
    assert isinstance(MonotonicClock(), Clock)
    assert isinstance(FakeClock(), Clock)


def test_monotonic_clock_never_decreases_and_advances():
    clock = MonotonicClock()
    times = [clock.now() for _ in range(1000)]
    assert all(isinstance(t, float) for t in times)
    assert all(b >= a for a, b in zip(times, times[1:]))
    start = clock.now()
    while clock.now() == start:  # perf_counter resolution is sub-microsecond
        pass
    assert clock.now() > start


def test_fake_clock_starts_where_told_and_stays_put():
    clock = FakeClock(start=12.5)
    assert clock.now() == 12.5
    assert clock.now() == 12.5
    assert FakeClock().now() == 0.0


def test_fake_clock_advance_and_set():
    clock = FakeClock()
    assert clock.advance(0.25) == 0.25
    assert clock.advance(0) == 0.25
    assert clock.now() == 0.25
    assert clock.set(3.0) == 3.0
    assert clock.set(3.0) == 3.0  # staying put is allowed
    assert clock.now() == 3.0


def test_fake_clock_sums_frame_steps_like_the_engine_does():
    clock = FakeClock()
    for _ in range(60):
        clock.advance(1 / 60)
    assert math.isclose(clock.now(), 1.0, rel_tol=1e-12)


@pytest.mark.parametrize(
    "call, arg",
    [
        ("advance", -0.001),
        ("advance", math.nan),
        ("advance", math.inf),
        ("set", 0.999),
        ("set", math.nan),
        ("set", math.inf),
    ],
)
def test_fake_clock_refuses_to_go_back_or_leave_the_reals(call, arg):
    clock = FakeClock(start=1.0)
    with pytest.raises(ValueError, match="dt|t must"):
        getattr(clock, call)(arg)
    assert clock.now() == 1.0  # unchanged after a refused move


def test_fake_clock_rejects_bad_start_and_types():
    with pytest.raises(ValueError, match="start"):
        FakeClock(start=math.nan)
    with pytest.raises(TypeError, match="dt"):
        FakeClock().advance("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="t must"):
        FakeClock().set(True)  # type: ignore[arg-type]
