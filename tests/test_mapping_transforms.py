"""Value transforms: known answers and Hypothesis properties (range, monotonicity, inverses)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganinstrument.mapping import transforms as tf

unit = st.floats(0.0, 1.0, allow_nan=False)
anything = st.floats(allow_nan=True, allow_infinity=True)
curves = st.sampled_from(tf.CURVES)
strength = st.one_of(st.none(), st.floats(0.1, 20.0))
bounds = st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)).filter(lambda p: p[0] != p[1])
fast = settings(max_examples=100, deadline=None)


# -- known answers -----------------------------------------------------------------------------
def test_decoders_known_values():
    assert tf.normalize7(0) == 0.0 and tf.normalize7(127) == 1.0
    assert tf.combine14(0x40, 0) == 8192 and tf.combine14(127, 127) == 16383
    assert tf.normalize14(16383) == 1.0
    assert tf.normalize_pitchbend(-8192) == 0.0
    assert tf.normalize_pitchbend(0) == 0.5
    assert tf.normalize_pitchbend(8191) == 1.0
    assert tf.normalize_range(5, 0, 10) == 0.5 and tf.normalize_range(12, 0, 10) == 1.0
    assert tf.normalize_range(2, 10, 0) == 0.8  # reversed input range


@pytest.mark.parametrize("encoding, plus, minus, zero", [
    ("twos_complement", {1: 1, 7: 7, 63: 63}, {127: -1, 121: -7, 64: -64}, 0),
    ("binary_offset", {65: 1, 71: 7, 127: 63}, {63: -1, 57: -7, 0: -64}, 64),
    ("sign_magnitude", {1: 1, 7: 7, 63: 63}, {65: -1, 71: -7, 127: -63}, 0),
    ("sign_magnitude_inv", {65: 1, 71: 7, 127: 63}, {1: -1, 7: -7, 63: -63}, 64),
])
def test_relative_encodings_by_value_semantics(encoding, plus, minus, zero):
    """The table of notes 4.4 (Ableton: 2's Comp., Bin Offset, Signed Bit, Signed Bit 2)."""
    for value, ticks in {**plus, **minus}.items():
        assert tf.decode_relative(value, encoding) == ticks, (encoding, value)
    assert tf.decode_relative(zero, encoding) == 0


def test_unknown_encoding_and_curve_are_errors():
    with pytest.raises(ValueError, match="encoding"):
        tf.decode_relative(1, "rot64")
    with pytest.raises(ValueError, match="curve"):
        tf.curve(0.5, "cubic")


def test_deadzone_known_values():
    assert tf.deadzone(0.52, 0.05, bipolar=True) == 0.5
    assert tf.deadzone(0.0, 0.05, bipolar=True) == 0.0 and tf.deadzone(1.0, 0.05, bipolar=True) == 1.0
    assert tf.deadzone(0.01, 0.02) == 0.0 and tf.deadzone(0.99, 0.02) == 1.0
    assert tf.deadzone(0.5, 0.02) == pytest.approx(0.5)


def test_curves_known_shapes():
    assert tf.curve(0.5, "exp") < 0.5 < tf.curve(0.5, "log")
    assert tf.curve(0.5, "scurve") == pytest.approx(0.5)
    assert tf.curve(0.1, "scurve") < 0.1 and tf.curve(0.9, "scurve") > 0.9
    assert tf.shape(1.0, lo=0.3, hi=1.1) == pytest.approx(1.1)
    assert tf.shape(1.0, lo=0.3, hi=1.1, inverted=True) == pytest.approx(0.3)


def test_buttons():
    assert tf.press_of("note_on", 1) and not tf.press_of("note_on", 0) and not tf.press_of("note_off", 127)
    assert tf.press_of("control_change", 64) and not tf.press_of("control_change", 63)
    assert tf.press_of("osc", 1.0) and not tf.press_of("osc", 0.0)
    assert tf.toggle_value(0.0, 0.0, 1.0) == 1.0 and tf.toggle_value(1.0, 0.0, 1.0) == 0.0
    assert tf.toggle_value(0.9, 0.0, 1.0) == 0.0  # nearer "on": goes off


# -- properties ----------------------------------------------------------------------------------
@fast
@given(x=anything, name=curves, k=strength)
def test_curve_stays_in_unit_range_for_any_input(x, name, k):
    y = tf.curve(x, name, k)
    assert 0.0 <= y <= 1.0


@fast
@given(a=unit, b=unit, name=curves, k=strength)
def test_curves_are_monotonic_and_fix_the_ends(a, b, name, k):
    lo, hi = min(a, b), max(a, b)
    assert tf.curve(lo, name, k) <= tf.curve(hi, name, k)
    assert tf.curve(0.0, name, k) == pytest.approx(0.0, abs=1e-12)
    assert tf.curve(1.0, name, k) == pytest.approx(1.0, abs=1e-12)


@fast
@given(x=unit, name=curves, k=st.one_of(st.none(), st.floats(0.1, 12.0)))
def test_curve_inverse_undoes_the_curve(x, name, k):
    assert tf.curve_inverse(tf.curve(x, name, k), name, k) == pytest.approx(x, abs=1e-6)


@fast
@given(x=unit, k=st.floats(0.1, 12.0))
def test_log_is_the_inverse_of_exp(x, k):
    assert tf.curve(tf.curve(x, "exp", k), "log", k) == pytest.approx(x, abs=1e-9)


@fast
@given(x=unit)
def test_invert_is_an_involution(x):
    assert tf.invert(tf.invert(x)) == pytest.approx(x, abs=1e-15)


@fast
@given(a=unit, b=unit, amount=st.floats(0.0, 0.49), bipolar=st.booleans())
def test_deadzone_is_monotonic_in_range_and_keeps_the_ends(a, b, amount, bipolar):
    lo, hi = min(a, b), max(a, b)
    assert 0.0 <= tf.deadzone(lo, amount, bipolar) <= tf.deadzone(hi, amount, bipolar) <= 1.0
    assert tf.deadzone(0.0, amount, bipolar) == 0.0 and tf.deadzone(1.0, amount, bipolar) == 1.0


@fast
@given(x=anything, rng=bounds, name=curves, k=strength, inverted=st.booleans(),
       dead=st.floats(0.0, 0.49), bipolar=st.booleans())
def test_shape_lands_in_the_output_range(x, rng, name, k, inverted, dead, bipolar):
    lo, hi = rng
    y = tf.shape(x, lo=lo, hi=hi, curve_name=name, k=k, inverted=inverted, dead=dead, bipolar=bipolar)
    assert min(lo, hi) - 1e-9 <= y <= max(lo, hi) + 1e-9


@fast
@given(a=unit, b=unit, rng=bounds, name=curves)
def test_shape_is_monotonic_toward_hi(a, b, rng, name):
    lo, hi = rng
    ya, yb = (tf.shape(v, lo=lo, hi=hi, curve_name=name) for v in (min(a, b), max(a, b)))
    assert (ya <= yb + 1e-9) if hi > lo else (ya >= yb - 1e-9)


@fast
@given(x=unit, rng=bounds)
def test_to_range_and_from_range_are_inverses(x, rng):
    assert tf.from_range(tf.to_range(x, *rng), *rng) == pytest.approx(x, abs=1e-9)


@fast
@given(v=st.integers(0, 127), encoding=st.sampled_from(tf.ENCODINGS))
def test_relative_ticks_are_small_signed_integers(v, encoding):
    ticks = tf.decode_relative(v, encoding)
    assert isinstance(ticks, int) and -64 <= ticks <= 64


@fast
@given(ticks=st.integers(1, 63), encoding=st.sampled_from(tf.ENCODINGS))
def test_every_encoding_round_trips_plus_and_minus(ticks, encoding):
    """Each encoding has exactly one code for +n and one for -n (n < 64), and they differ."""
    codes = {v: tf.decode_relative(v, encoding) for v in range(128)}
    assert sum(1 for t in codes.values() if t == ticks) == 1
    assert sum(1 for t in codes.values() if t == -ticks) == 1


@fast
@given(msb=st.integers(0, 127), lsb=st.integers(0, 127))
def test_14_bit_combination_is_exact_and_ordered(msb, lsb):
    v = tf.combine14(msb, lsb)
    assert v == msb * 128 + lsb and divmod(v, 128) == (msb, lsb)
    assert 0.0 <= tf.normalize14(v) <= 1.0


@fast
@given(a=st.integers(-8192, 8191), b=st.integers(-8192, 8191))
def test_pitchbend_is_monotonic(a, b):
    assert (tf.normalize_pitchbend(min(a, b)) <= tf.normalize_pitchbend(max(a, b)))


def test_nan_input_is_safe():
    assert tf.shape(math.nan, lo=0, hi=1) == 0.0
    assert tf.normalize7(math.nan) == 0.0
