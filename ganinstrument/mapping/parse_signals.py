"""Reading the signals a mapping declares itself, for parse.py: the `lfos:` section (routed as
`lfo.<name>`) and the `envelopes:` section (routed as `env.<name>`).

    lfos:
      - {name: sway, shape: sine, rate: 4}          # a cycle of 4 beats (a bar in 4/4)
      - {name: shiver, shape: square, rate: 1/8., width: 0.25}
      - {name: drift, shape: smooth_random, rate: 2 bars}
      - {name: breath, rate: 0.2 hz, phase: 0.5}

`rate`: a cycle's length: a number of beats (4), or a note value (1/4: a quarter note, one
beat; 1/16: a sixteenth, a quarter of a beat; 1/1: four beats) with `.` for dotted (x 1.5) or
`t` for triplet (x 2/3), from a 1/16 triplet to 64 beats; or `N bars` (N times the meter's
beats); or `N hz` (free-running, 0.001 .. 50). `shape`: schema.LFO_SHAPES (default sine). `phase`: cycles
added (0 .. 1). `width`: the square's high part (0 .. 1, default 0.5).

    envelopes:
      - {name: hit, trigger: downbeat, attack: 10 ms, decay: 1/4}
      - {name: flash, trigger: onset.low, decay: 300 ms}
      - {name: swell, trigger: bar 4, attack: 2, decay: 4}

`trigger`: an event signal (beat, downbeat, onset, onset.low, ...; names.resolve checks it
against the instrument's), `bar N` (the downbeat of every N-th bar), or `button` (only by
hand: every envelope adds an action `env.<name>` a pad can fire). `attack`, `decay`: a
time (`N ms`, `N s`) or a length in beats (a number of beats, or a note value), up to 60 s or
64 beats; default attack 0, decay 250 ms.
"""

from __future__ import annotations

import re

from .checks import Checker
from .located import LDict
from .schema import LFO_SHAPES, EnvelopeDef, LfoDef

LFO_KEYS = ("name", "shape", "rate", "phase", "width")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
BEATS_MIN, BEATS_MAX = 1.0 / 6.0, 64.0  # (a 1/16 triplet .. 64 beats)
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?\s*(\.|t)?\s*(bars?|hz)?\s*$")


def parse_rate(raw) -> dict | None:
    """{rate_beats | rate_bars | rate_hz: float} of a rate, or None when it is not one."""
    if isinstance(raw, bool) or raw is None:
        return None
    match = _RATE.match(str(raw).lower())
    if not match:
        return None
    number, denominator, modifier, unit = match.groups()
    if denominator is not None:  # a note value: 1/4 is a quarter note, a beat
        if float(denominator) == 0 or unit is not None:
            return None
        value = 4.0 * float(number) / float(denominator)
    else:
        value = float(number)
    value *= {".": 1.5, "t": 2.0 / 3.0}.get(modifier or "", 1.0)
    if unit == "hz":
        return {"rate_hz": value, "rate_beats": None} if 0.001 <= value <= 50.0 and not modifier else None
    if unit in ("bar", "bars"):
        return {"rate_bars": value, "rate_beats": None} if 1.0 / 16.0 <= value <= 64.0 else None
    return {"rate_beats": value} if BEATS_MIN - 1e-12 <= value <= BEATS_MAX else None


def _named(data: LDict, ck: Checker, section: str, keys: tuple[str, ...], kind: str):
    """Each item of a section of named things (lfos, envelopes): (what, its mapping, its name or
    None when it is not one, the problems before it), the name checked and not used twice."""
    seen: set[str] = set()
    for _, what, d, n_before in ck.items(data, section, keys):
        name = ck.string(d, "name", what)
        if name is not None and not NAME.match(name):
            ck.problem(d.line_of("name"), f"{what}: name must be lower-case letters, digits and _ (up to 32), "
                                          f"starting with a letter; got {name!r}"[:200])
        elif name in seen:
            ck.problem(d.line_of("name"), f"{what}: the {kind} name {name!r} is used twice")
        yield what, d, name, n_before
        if len(ck.problems) == n_before and name is not None:
            seen.add(name)


def lfos(data: LDict, ck: Checker) -> list[LfoDef]:
    out: list[LfoDef] = []
    for what, d, name, n_before in _named(data, ck, "lfos", LFO_KEYS, "LFO"):
        shape = ck.choice(d, "shape", LFO_SHAPES, what, default="sine")
        rate = parse_rate(d.get("rate", 1))
        if rate is None:
            ck.problem(d.line_of("rate"), f"{what}: rate must be beats (1/16 .. 64, e.g. 1/4, 1/8., 1/8t, 4), "
                                          f"N bars, or N hz (0.001 .. 50); got {str(d.get('rate'))[:40]!r}")
        phase = ck.number(d, "phase", what, default=0.0, lo=0.0, hi=1.0)
        width = ck.number(d, "width", what, default=0.5, lo=0.0, hi=1.0)
        if len(ck.problems) == n_before and name is not None and rate is not None:
            out.append(LfoDef(name, shape or "sine", **{"rate_beats": None, **rate}, phase=phase or 0.0,
                              width=0.5 if width is None else width, line=d.line))
    return out


ENVELOPE_KEYS = ("name", "trigger", "attack", "decay")
_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*$")
_EVERY = re.compile(r"^\s*bars?\s+(\d+)\s*$")


def parse_length(raw) -> tuple[float, float | None] | None:
    """(seconds, None) or (0, beats) of an envelope's attack or decay; None when it is not one."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)) and raw == 0:
        return 0.0, None
    text = str(raw).lower()
    match = _TIME.match(text)
    if match:
        seconds = float(match[1]) / (1000.0 if match[2] == "ms" else 1.0)
        return (seconds, None) if seconds <= 60.0 else None
    rate = parse_rate(raw)
    if rate is None or rate.get("rate_beats") is None:  # (not Hz, not bars: a bar's beats are the meter's)
        return None
    return 0.0, rate["rate_beats"]


def envelopes(data: LDict, ck: Checker) -> list[EnvelopeDef]:
    out: list[EnvelopeDef] = []
    for what, d, name, n_before in _named(data, ck, "envelopes", ENVELOPE_KEYS, "envelope"):
        trigger = ck.string(d, "trigger", what, hint="an event (beat, downbeat, onset, onset.low, ...) or bar N")
        every = _EVERY.match(trigger) if trigger is not None else None
        if every is not None and not 1 <= int(every[1]) <= 64:
            ck.problem(d.line_of("trigger"), f"{what}: bar N counts 1 .. 64 bars, got {trigger!r}")
        times = {}
        for key, default in (("attack", 0), ("decay", "250 ms")):
            length = parse_length(d.get(key, default))
            if length is None:
                ck.problem(d.line_of(key), f"{what}: {key} must be a time (N ms, N s, up to 60 s) or beats "
                                           f"(2, 1/4, 1/8.; up to 64); got {str(d.get(key))[:40]!r}")
            if key == "decay" and length == (0.0, None):
                ck.problem(d.line_of(key), f"{what}: decay must be longer than 0 (it is how long the envelope shows)")
                length = None
            times[key] = length
        if len(ck.problems) == n_before and name is not None and trigger is not None:
            (attack_s, attack_beats), (decay_s, decay_beats) = times["attack"], times["decay"]
            out.append(EnvelopeDef(name, "downbeat" if every else trigger, int(every[1]) if every else None,
                                   attack_s, attack_beats, decay_s, decay_beats, line=d.line))
    return out
