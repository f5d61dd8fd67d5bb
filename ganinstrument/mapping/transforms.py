"""Pure value transforms: what a binding does to a raw MIDI/OSC value before it reaches a target.

The pipeline for an absolute control, in this order (the order Mixxx, Ableton and ReaLearn
agree on):

    decode (7-bit, 14-bit pair, pitch bend, OSC input range) -> x in [0, 1]
    -> deadzone -> invert -> curve -> range [lo, hi] -> (takeover, in takeover.py)

A relative encoder instead decodes to signed ticks, and each tick moves the target by `step`
target units. Buttons decode to press/release edges (see `press_of` and `toggle_value`).

Every function is pure and total on its documented domain; out-of-domain input is clipped,
never raised on, because this runs on stage for every message.
"""

from __future__ import annotations

import math

from ..common.text import shorten_repr

__all__ = [
    "CURVES", "ENCODINGS", "DEFAULT_CURVE_K",
    "normalize7", "combine14", "normalize14", "normalize_pitchbend", "normalize_range",
    "decode_relative", "deadzone", "invert", "curve", "curve_inverse", "to_range", "from_range",
    "shape", "press_of", "toggle_value",
]

CURVES = ("linear", "exp", "log", "scurve")
# Relative encodings by their value semantics (notes 4.4); Ableton / ReaLearn names in comments.
ENCODINGS = (
    "twos_complement",     # +1 = 1, -1 = 127        Ableton "2's Comp.",        ReaLearn Relative 1
    "binary_offset",       # +1 = 65, -1 = 63        Ableton "Bin Offset",       ReaLearn Relative 2
    "sign_magnitude",      # +1 = 1, -1 = 65         Ableton "Signed Bit",       ReaLearn Relative 3
    "sign_magnitude_inv",  # +1 = 65, -1 = 1         Ableton "Signed Bit 2"
)
DEFAULT_CURVE_K = {"linear": 0.0, "exp": 3.0, "log": 3.0, "scurve": 6.0}


def _clip01(x: float) -> float:
    if x != x:  # NaN: the safest place for a control is its bottom
        return 0.0
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


# -- decoding -------------------------------------------------------------------------------
def normalize7(value: float) -> float:
    """A 7-bit data value 0..127 -> [0, 1]."""
    return _clip01(value / 127.0)


def combine14(msb: int, lsb: int) -> int:
    """A 14-bit value from its two 7-bit halves: MSB * 128 + LSB, 0..16383."""
    return (int(msb) & 0x7F) << 7 | (int(lsb) & 0x7F)


def normalize14(value: float) -> float:
    """A 14-bit value 0..16383 -> [0, 1]."""
    return _clip01(value / 16383.0)


def normalize_pitchbend(value: float) -> float:
    """mido's pitchwheel -8192..8191 -> [0, 1], with the rest position 0 at exactly 0.5."""
    if value <= 0:
        return _clip01(0.5 + 0.5 * value / 8192.0)
    return _clip01(0.5 + 0.5 * value / 8191.0)


def normalize_range(value: float, lo: float, hi: float) -> float:
    """A value in an arbitrary input range (OSC) -> [0, 1], clipped; lo > hi reverses."""
    if hi == lo:
        return 0.0
    return _clip01((value - lo) / (hi - lo))


def decode_relative(value: int, encoding: str) -> int:
    """A relative encoder's 7-bit value -> signed ticks (magnitude = acceleration).

    0 (and 64 for binary offset, 64 / 0 for the sign-magnitude pair's zero codes) is no move.
    """
    v = int(value) & 0x7F
    if encoding == "twos_complement":
        return v - 128 if v >= 64 else v
    if encoding == "binary_offset":
        return v - 64
    if encoding == "sign_magnitude":
        return -(v & 0x3F) if v & 0x40 else v
    if encoding == "sign_magnitude_inv":
        return (v & 0x3F) if v & 0x40 else -v
    raise ValueError(f"encoding must be one of {ENCODINGS}, got {shorten_repr(encoding)}")


# -- shaping a normalised value x in [0, 1] -----------------------------------------------------
def deadzone(x: float, amount: float, bipolar: bool = False) -> float:
    """Ignore jitter: for a bipolar control, |x - 0.5| <= amount reads as 0.5; for a unipolar
    one, the bottom and top `amount` read as 0 and 1. The rest is stretched so the full output
    range is still reached, and the result stays monotonic (non-decreasing) in x.
    """
    x = _clip01(x)
    amount = min(max(float(amount), 0.0), 0.49)
    if amount == 0.0:
        return x
    if bipolar:
        d = x - 0.5
        if abs(d) <= amount:
            return 0.5
        return _clip01(0.5 + math.copysign((abs(d) - amount) / (0.5 - amount) * 0.5, d))
    return _clip01((x - amount) / (1.0 - 2.0 * amount))


def invert(x: float) -> float:
    """Top is bottom: 1 - x (its own inverse)."""
    return 1.0 - _clip01(x)


def _curve_k(name: str, k: float | None) -> float | None:
    """The strength k of curve `name` (its default where k is None), or None where the curve is
    the identity (linear, or k too small to bend); an unknown name is an error."""
    if name == "linear":
        return None
    if name not in DEFAULT_CURVE_K:
        raise ValueError(f"curve must be one of {CURVES}, got {shorten_repr(name)}")
    k = DEFAULT_CURVE_K[name] if k is None else float(k)
    if k <= 1e-9:
        return None
    return k


def curve(x: float, name: str = "linear", k: float | None = None) -> float:
    """Bend [0, 1] onto [0, 1], keeping 0 -> 0 and 1 -> 1, monotonic increasing.

    linear: x. exp: (e^(kx) - 1) / (e^k - 1), fine control near the bottom (k > 0; default 3).
    log: the inverse of exp with the same k, fine control near the top. scurve: a logistic
    through (0.5, 0.5) with slope k/4 there (default 6), fine at both ends.
    """
    x = _clip01(x)
    k = _curve_k(name, k)
    if k is None:
        return x
    if name == "exp":
        return _clip01(math.expm1(k * x) / math.expm1(k))
    if name == "log":
        return _clip01(math.log1p(math.expm1(k) * x) / k)
    if name == "scurve":
        lo, hi = _sigmoid(-k / 2.0), _sigmoid(k / 2.0)
        return _clip01((_sigmoid(k * (x - 0.5)) - lo) / (hi - lo))
    raise ValueError(f"curve must be one of {CURVES}, got {shorten_repr(name)}")


def curve_inverse(y: float, name: str = "linear", k: float | None = None) -> float:
    """The x with curve(x, name, k) == y (for feedback and takeover display)."""
    y = _clip01(y)
    k = _curve_k(name, k)
    if k is None:
        return y
    if name == "exp":
        return _clip01(math.log1p(math.expm1(k) * y) / k)
    if name == "log":
        return _clip01(math.expm1(k * y) / math.expm1(k))
    if name == "scurve":
        lo, hi = _sigmoid(-k / 2.0), _sigmoid(k / 2.0)
        s = min(max(lo + y * (hi - lo), 1e-300), 1.0 - 1e-16)
        return _clip01(0.5 + math.log(s / (1.0 - s)) / k)
    raise ValueError(f"curve must be one of {CURVES}, got {shorten_repr(name)}")


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


def to_range(x: float, lo: float, hi: float) -> float:
    """[0, 1] -> [lo, hi] (lo > hi runs the other way)."""
    x = _clip01(x)
    return lo + (hi - lo) * x


def from_range(value: float, lo: float, hi: float) -> float:
    """The inverse of to_range, clipped to [0, 1]."""
    return normalize_range(value, lo, hi)


def shape(x: float, *, lo: float, hi: float, curve_name: str = "linear", k: float | None = None,
          inverted: bool = False, dead: float = 0.0, bipolar: bool = False) -> float:
    """The whole absolute pipeline: deadzone -> invert -> curve -> range."""
    x = deadzone(x, dead, bipolar)
    if inverted:
        x = invert(x)
    return to_range(curve(x, curve_name, k), lo, hi)


# -- buttons --------------------------------------------------------------------------------
def press_of(kind: str, value: float) -> bool:
    """Whether a button message means "pressed": a note_on with velocity > 0, a CC (or other
    7-bit value) >= 64 (Ableton's rule for switches), an OSC value >= 0.5; note_off never."""
    if kind == "note_off":
        return False
    if kind == "note_on":
        return value > 0
    if kind == "osc":
        return value >= 0.5
    return value >= 64


def toggle_value(current: float, off: float, on: float) -> float:
    """Where a toggle goes on press: to `off` if the target is nearer `on` than `off`, else to
    `on`. Reading the target (not a stored flag) keeps the toggle right after a preset recall."""
    return off if abs(current - on) < abs(current - off) else on
