"""Soft takeover as a truth table (Mixxx's softtakeover_test in pytest), with a fake clock."""

from __future__ import annotations

import itertools

import pytest

from ganinstrument.common.clock import FakeClock
from ganinstrument.mapping.takeover import THRESHOLD, WHIP_S, TakeoverState, decide, rearm

T = THRESHOLD
NEAR, FAR = T / 2, 0.3  # distances from the current value c = 0.5
ARMED = TakeoverState(None, None)


def state(prev, moved_ago):
    """The takeover state at t = 10 s: previous value, and how long ago the control last moved the target."""
    return TakeoverState(prev, None if moved_ago is None else 10.0 - moved_ago)


# (mode, previous value, last moved s ago, new value, expected: "v" passes, None ignored, or a number)
TABLE = [
    # rule 1: none always passes
    ("none", None, None, 0.5 + FAR, "v"),
    ("none", 0.1, 5.0, 0.9, "v"),
    # rule 2: within the threshold of the current value passes, armed or not
    ("pickup", None, None, 0.5 + NEAR, "v"),
    ("pickup", None, None, 0.5 - NEAR, "v"),
    ("pickup", 0.1, 5.0, 0.5 + NEAR, "v"),
    ("scale", None, None, 0.5 - NEAR, "v"),
    # rule 3: armed and far: the first value only tells where the control is
    ("pickup", None, None, 0.5 + FAR, None),
    ("pickup", None, None, 0.5 - FAR, None),
    ("scale", None, None, 0.5 + FAR, None),
    # rule 4: a fast move (within 50 ms of the last 1:1 move) goes on, even far
    ("pickup", 0.45, 0.010, 0.5 + FAR, "v"),
    ("pickup", 0.45, WHIP_S, 0.5 + FAR, "v"),
    ("scale", 0.45, 0.020, 0.5 - FAR, "v"),
    # ... but not after the window
    ("pickup", 0.1, WHIP_S + 0.001, 0.15, None),
    ("pickup", 0.1, 1.0, 0.15, None),
    # rule 5: crossing the current value picks it up (either direction, or landing on it from afar)
    ("pickup", 0.3, None, 0.7, "v"),
    ("pickup", 0.7, None, 0.3, "v"),
    ("pickup", 0.5, None, 0.9, "v"),
    ("pickup", 0.3, 5.0, 0.7, "v"),
    ("scale", 0.3, None, 0.7, "v"),
    # rule 6: pickup ignores a far value on the same side
    ("pickup", 0.1, None, 0.2, None),
    ("pickup", 0.9, None, 0.8, None),
    ("pickup", 0.8, None, 0.9, None),
    # rule 7: scale ignores no movement
    ("scale", 0.2, None, 0.2, None),
    # rule 8: scale moves the target toward the end the control heads to, proportionally
    ("scale", 0.2, None, 0.3, 0.5 + 0.1 * (1 - 0.5) / (1 - 0.2)),   # up, below c: c rises slower
    ("scale", 0.2, None, 0.1, 0.5 + (-0.1) * (0 - 0.5) / (0 - 0.2)),  # down, below c: c falls faster
    ("scale", 0.9, None, 0.8, 0.5 + (-0.1) * (0 - 0.5) / (0 - 0.9)),
    ("scale", 0.9, None, 1.0, 1.0),                                    # reaching the end meets it
]


@pytest.mark.parametrize("mode, prev, moved_ago, value, expected", TABLE)
def test_truth_table(mode, prev, moved_ago, value, expected):
    out, new = decide(mode, state(prev, moved_ago), value, 0.5, 10.0)
    if expected == "v":
        assert out == value
        assert new == TakeoverState(value, 10.0)  # a 1:1 move: remembered, and its time
    elif expected is None:
        assert out is None
        assert new.prev == (value if prev != value else prev)
        assert new.moved_at == state(prev, moved_ago).moved_at  # an ignored value keeps the time
    else:
        assert out == pytest.approx(expected)
        assert new == TakeoverState(value, None)  # scaled: not a whip


@pytest.mark.parametrize("mode, prev, moved_ago", itertools.product(
    ["pickup", "scale"], [None, 0.0, 0.2, 0.49, 0.5, 0.51, 0.8, 1.0], [None, 0.001, 0.049, 0.051, 3.0]))
def test_exhaustive_invariants(mode, prev, moved_ago):
    """Over a grid of states and values: passing values pass unchanged, scaled ones stay between
    the current value and the end, and prev always becomes the new value."""
    st = state(prev, moved_ago)
    for i in range(0, 101):
        value = i / 100
        out, new = decide(mode, st, value, 0.5, 10.0)
        assert new.prev == value or (out is None and new.prev == prev == value)
        near = abs(value - 0.5) <= T
        whip = moved_ago is not None and moved_ago <= WHIP_S
        if near:
            assert out == value
        elif prev is None:
            assert out is None
        elif whip or min(prev, value) <= 0.5 <= max(prev, value):
            assert out == value
        elif mode == "pickup":
            assert out is None
        elif value != prev:
            end = 1.0 if value > prev else 0.0
            assert min(0.5, end) <= out <= max(0.5, end)


def test_scale_converges_on_the_control_at_the_end():
    st, c = TakeoverState(0.2, None), 0.6
    for i in range(3, 11):
        v = i / 10
        out, st = decide("scale", st, v, c, float(i))
        c = out if out is not None else c
        assert c >= v - 1e-12  # the target never crosses below the control on the way up
    assert c == pytest.approx(1.0)


def test_slow_fader_after_recall_with_fake_clock():
    """A fader parked at 0.2; a preset recall moves the target to 0.6. Moving the fader slowly
    up does nothing until it reaches 0.6, then the target follows it 1:1."""
    clock = FakeClock(0.0)
    st = TakeoverState(0.2, 0.0)  # it had been moving the target
    st = rearm(st)  # the recall
    c, seen = 0.6, []
    for i in range(21, 80):
        clock.advance(0.1)  # slow: 100 ms per step, never a whip
        v = i / 100
        out, st = decide("pickup", st, v, c, clock.now())
        if out is not None:
            c = out
        seen.append(out)
    first = next(i for i, o in enumerate(seen) if o is not None)
    assert 0.6 - T <= (21 + first) / 100 <= 0.6 + T
    assert all(o is None for o in seen[:first]) and all(o is not None for o in seen[first:])


def test_fast_whip_across_the_value_passes():
    clock = FakeClock(0.0)
    st, c = TakeoverState(0.1, None), 0.6
    out, st = decide("pickup", st, 0.9, c, clock.now())  # one jump from below to above: crossed
    assert out == 0.9


def test_rearm_keeps_or_forgets_the_position():
    st = TakeoverState(0.3, 1.0)
    assert rearm(st) == TakeoverState(0.3, None)
    assert rearm(st, forget_position=True) == ARMED
