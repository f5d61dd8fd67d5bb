"""Reading one binding entry, and the buttons of banks and pages, for parse.py.

`binding` turns one entry of a `bindings:` list (after merging its `use:` template) into `Proto`s:
one per control number when it names a range or list, with `{i}` / `{n}` / `{number}` filled in,
and with its button mode and takeover resolved; names are checked later (names.py).
`button_source` reads a bank's next/prev or a page's select button. Also here, shared with the
other sections: `Defaults` and the field readers `read_channel` and `read_curve`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..common.text import shorten_repr
from ..state.params import Registry
from .checks import MISSING, Checker
from .located import LDict
from .schema import QUANTIZE_GRIDS, SOURCE_KINDS, Source
from .takeover import MODES as TAKEOVER_MODES
from .transforms import CURVES, ENCODINGS

COMMON_KEYS = ("channel", "target", "action", "value", "use", "optional", "allow_multi", "start", "smoothing_ms",
               "quantize")
# option -> the source kinds it applies to (None: any)
OPTION_KINDS = {
    "lsb": ("cc14",), "bits": ("nrpn",), "offset": ("program",), "input_range": ("osc",),
    "velocity": ("note",), "encoder": ("cc",), "step": ("cc",), "mode": ("cc", "note", "osc"),
    "range": None, "curve": None, "invert": None, "deadzone": None, "bipolar": None, "takeover": None,
}
BINDING_KEYS = SOURCE_KINDS + COMMON_KEYS + tuple(OPTION_KINDS)
NUMBER_LIMITS = {"cc": 127, "cc14": 127, "nrpn": 16383, "note": 127, "polytouch": 127, "program": 127}
BUTTON_KINDS = ("cc", "note", "osc")
ACTION_KINDS = ("cc", "note", "osc", "program")
ABSOLUTE_TAKEOVER = ("cc", "cc14", "nrpn")  # pickup by default; OSC none unless `defaults.takeover`
SPRINGS = ("pitchbend", "aftertouch", "polytouch")  # none unless the binding says otherwise
_RANGE = re.compile(r"^\s*(\d+)\s*\.\.\s*(\d+)\s*$")
_CURVE = re.compile(r"^\s*([a-z]+)\s*(?:\s([0-9.eE+-]+))?\s*$")


@dataclass
class Defaults:
    channel: int | None = 0
    takeover: str | None = None
    smoothing_ms: float | None = None


@dataclass
class Proto:
    """A binding before names are checked: Binding kwargs plus what template expansion needs."""

    kwargs: dict
    line: int
    optional: bool = False
    index: int = 0  # position within its template plus `start` (the glob match it takes)
    group: int = 0  # one id per template line (globs expand per group)
    scope: tuple[int, int] | None = None  # (bank, page) or None for global bindings
    extra: dict = field(default_factory=dict)


# -- fields shared by the sections ----------------------------------------------------------
def read_channel(d: LDict, key: str, ck: Checker, what: str, default):
    value = d.get(key, MISSING)
    if value is MISSING:
        return default
    if value == "any":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16:
        hint = ("channels are 1..16 in mapping files, as devices show them (status 0xB0 is channel 1)"
                if value == 0 else "1..16, or 'any'")
        ck.problem(d.line_of(key), f"{what}: {key} must be 1..16 or any, got {shorten_repr(value)}", hint)
        return default
    return value - 1


def read_curve(d: LDict, ck: Checker, what: str):
    raw = d.get("curve", "linear")
    m = _CURVE.match(raw) if isinstance(raw, str) else None
    if not m or m.group(1) not in CURVES:
        ck.problem(d.line_of("curve"), f"{what}: curve must be one of {' | '.join(CURVES)}, optionally with a "
                   f"strength ('exp 4'), got {shorten_repr(raw)}")
        return "linear", None
    k = None
    if m.group(2) is not None:
        try:
            k = float(m.group(2))
        except ValueError:
            k = -1.0
        if not 0 < k <= 50:
            ck.problem(d.line_of("curve"),
                       f"{what}: curve strength must be a number in (0, 50], got {shorten_repr(m.group(2))}")
            k = None
    return m.group(1), k




# -- one binding --------------------------------------------------------------------------------
def _use(d: LDict, ck: Checker, templates: dict[str, LDict], what: str) -> LDict:
    name = d.get("use")
    if name is None:
        return d
    if not isinstance(name, str):
        ck.problem(d.line_of("use"), f"{what}: use: expected a template's name, got {shorten_repr(name)}")
        return d
    if name not in templates:
        close = Registry.suggest(str(name), templates, n=1)
        ck.problem(d.line_of("use"), f"{what}: unknown template {shorten_repr(name)}",
                   f"did you mean {shorten_repr(close[0])}?" if close else "define it under 'templates:'")
        return d
    merged = LDict()
    merged.line = d.line
    for src in (templates[name], d):
        for key, value in src.items():
            if key != "use":
                merged[key] = value
                merged.key_lines[key] = src.line_of(key)
    merged.duplicates = list(d.duplicates)
    return merged


def binding(raw, line: int, ck: Checker, defaults: Defaults, templates, what: str, scope, state) -> list[Proto]:
    d = ck.mapping(raw, line, what)
    if d is None:
        return []
    d = _use(d, ck, templates, what)
    ck.keys(d, BINDING_KEYS, what)
    kinds = [k for k in SOURCE_KINDS if k in d]
    if len(kinds) != 1:
        found = f"found {', '.join(kinds)}" if kinds else "found none"
        ck.problem(d.line, f"{what}: expected exactly one source ({' | '.join(SOURCE_KINDS)}); {found}",
                   "e.g. {cc: 7, target: psi}")
        return []
    kind = kinds[0]
    for key, allowed in OPTION_KINDS.items():
        if key in d and allowed is not None and kind not in allowed:
            ck.problem(d.line_of(key), f"{what}: {key} applies only to {' / '.join(allowed)} sources, not {kind}")
    numbers, address = _numbers(d, kind, ck, what)
    if kind == "osc":
        channel = None
        if "channel" in d:
            ck.problem(d.line_of("channel"), f"{what}: OSC has no channel")
    else:
        channel = read_channel(d, "channel", ck, what, defaults.channel)
    lsb = ck.integer(d, "lsb", 0, 127, what, default=None) if kind == "cc14" else None
    if kind == "cc14" and numbers:
        if lsb is not None and len(numbers) > 1:
            ck.problem(d.line_of("lsb"), f"{what}: lsb can only be given for a single cc14 control")
        for n in numbers:
            if lsb is None and n is not None and n > 31:
                ck.problem(d.line_of("cc14"), f"{what}: cc14 MSB {n} has no standard LSB (only 0..31 pair with "
                           f"n+32)", "give the LSB controller with 'lsb: N'")
    target = ck.string(d, "target", what, default=None)
    action = ck.string(d, "action", what, default=None)
    if ("target" in d) == ("action" in d):
        ck.problem(d.line, f"{what}: expected exactly one of target or action",
                   "target: a value to play (psi, z.0); action: an event (seed.next, preset.recall)")
    kw = _options(d, kind, target, action, defaults, ck, what)
    value = d.get("value")
    if value is not None and not isinstance(value, str):
        value = ck.number(d, "value", what, default=None)
    start = ck.integer(d, "start", 0, 100000, what, default=0)
    optional = bool(ck.boolean(d, "optional", what))
    if numbers is None or kw is None or (target is None and action is None):
        return []
    state["group"] += 1
    out = []
    for i, number in enumerate(numbers):
        subs = {"i": i + (start or 0), "n": i + (start or 0) + 1, "number": number}
        t = _sub(target, subs, d, "target", ck, what, first=i == 0)
        a = _sub(action, subs, d, "action", ck, what, first=i == 0)
        v = value
        if isinstance(value, str):
            v = _sub(value, subs, d, "value", ck, what, first=i == 0)
            try:
                v = float(v) if v is not None else None
            except ValueError:
                if i == 0:
                    ck.problem(d.line_of("value"), f"{what}: value must be a number, got {shorten_repr(value)}")
                return []
        src = Source(kind, channel, number, (number + 32 if lsb is None and kind == "cc14" and number is not None
                                             and number <= 31 else lsb), address)
        out.append(Proto(dict(kw, source=src, target=t, action=a, value=v, line=d.line), d.line, optional,
                         index=i + (start or 0), group=state["group"], scope=scope))
    return out


def _numbers(d: LDict, kind: str, ck: Checker, what: str):
    """The control numbers a source names: [n], several (a template), [None] (any / none)."""
    raw, line = d[kind], d.line_of(kind)
    if kind in ("pitchbend", "aftertouch"):
        if raw is not True:
            ck.problem(line, f"{what}: write '{kind}: true' (it is one control per channel), got {shorten_repr(raw)}")
            return None, ""
        return [None], ""
    if kind == "osc":
        if not isinstance(raw, str) or not raw.startswith("/"):
            ck.problem(line, f"{what}: osc must be an address starting with '/', got {shorten_repr(raw)}",
                       "e.g. osc: /fx/psi")
            return None, ""
        return [None], raw
    if kind in ("program", "polytouch") and raw == "any":
        return [None], ""
    hi = NUMBER_LIMITS[kind]
    numbers: list = []
    if isinstance(raw, str) and _RANGE.match(raw):
        a, b = map(int, _RANGE.match(raw).groups())
        if a > b:
            ck.problem(line, f"{what}: range {shorten_repr(raw)} runs backwards",
                       f"write {b}..{a}, or a list for another order")
            return None, ""
        numbers = list(range(a, b + 1))
    elif isinstance(raw, list) and raw:
        numbers = list(raw)
    else:
        numbers = [raw]
    bad = [n for n in numbers if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= hi]
    if bad:
        extra = " or any" if kind in ("program", "polytouch") else ""
        ck.problem(line, f"{what}: {kind} must be a whole number 0..{hi}{extra}, a list of them or a range a..b; "
                   f"got {shorten_repr(bad[0])}", "numbers are as on the wire: CC 0..127, notes 0..127 (60 = middle C)")
        return None, ""
    if len(set(numbers)) != len(numbers):
        ck.problem(line, f"{what}: {kind} lists a number twice")
        return None, ""
    return numbers, ""


def _sub(text, subs: dict, d: LDict, key: str, ck: Checker, what: str, first: bool):
    if text is None or "{" not in text:
        return text
    try:
        return text.format_map(subs)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        if first:
            ck.problem(d.line_of(key), f"{what}: {key} {shorten_repr(text)} has a bad placeholder ({exc})",
                       "placeholders are {i} (0-based), {n} (1-based) and {number} (the control number)")
        return None


def _options(d: LDict, kind: str, target, action, defaults: Defaults, ck: Checker, what: str) -> dict | None:
    """Binding kwargs other than source/target/action/value, with the mode resolved."""
    n_before = len(ck.problems)
    curve, k = read_curve(d, ck, what)
    kw = dict(curve=curve, curve_k=k,
              range=ck.pair(d, "range", what, default=None),
              invert=bool(ck.boolean(d, "invert", what)),
              deadzone=ck.number(d, "deadzone", what, default=0.0, lo=0.0, hi=0.49) or 0.0,
              bipolar=bool(ck.boolean(d, "bipolar", what, default=kind == "pitchbend")),
              smoothing_ms=ck.number(d, "smoothing_ms", what, default=defaults.smoothing_ms, lo=0.0),
              velocity=bool(ck.boolean(d, "velocity", what)),
              offset=ck.integer(d, "offset", -128, 128, what, default=0) or 0,
              input_range=ck.pair(d, "input_range", what, default=(0.0, 1.0)) or (0.0, 1.0),
              bits=ck.choice(d, "bits", (7, 14), what, default=14) or 14,
              allow_multi=bool(ck.boolean(d, "allow_multi", what)))
    encoder = ck.choice(d, "encoder", ENCODINGS + ("absolute",), what, default=None)
    mode = ck.choice(d, "mode", ("momentary", "toggle", "trigger"), what, default=None)
    takeover = ck.choice(d, "takeover", TAKEOVER_MODES, what, default=None)
    if encoder == "absolute":
        encoder = None
    quantize = ck.choice(d, "quantize", tuple(QUANTIZE_GRIDS), what, default=None)
    if quantize is not None:
        if action is None:
            ck.problem(d.line_of("quantize"), f"{what}: quantize applies to actions (they wait for the beat)")
        elif isinstance(action, str) and action.startswith("tempo."):
            ck.problem(d.line_of("quantize"), f"{what}: {action} keeps time itself; it cannot wait for the beat")
        kw["quantize"] = quantize
    if action is not None:
        if kind not in ACTION_KINDS:
            ck.problem(d.line_of(kind), f"{what}: an action needs a button-like source ({' / '.join(ACTION_KINDS)}), "
                       f"not {kind}", "bind continuous controls to a target")
        if mode not in (None, "trigger"):
            ck.problem(d.line_of("mode"), f"{what}: an action fires on press; mode must be trigger (or absent)")
        mode = "trigger"
    elif encoder is not None:
        if mode is not None:
            ck.problem(d.line_of("mode"), f"{what}: a relative encoder has no button mode")
        mode = "relative"
        kw["encoder"] = encoder
        kw["step"] = ck.number(d, "step", what, default=None, lo=1e-12)
    else:
        if "step" in d:
            ck.problem(d.line_of("step"), f"{what}: step applies to relative encoders (give 'encoder:')")
        if kind == "program":
            ck.problem(d.line_of(kind), f"{what}: a program change selects; bind it to an action",
                       "e.g. {program: any, action: preset.recall}")
        if mode is None:
            mode = "momentary" if kind == "note" else "continuous"
        if mode == "trigger" and "value" not in d:
            ck.problem(d.line, f"{what}: a trigger on a target needs 'value:' (what the target is set to on press)")
    if mode != "continuous":
        if takeover is not None:
            ck.problem(d.line_of("takeover"), f"{what}: takeover applies to absolute controls (faders, knobs), "
                       f"not {mode} bindings")
        takeover = "none"
    elif takeover is None and kind in SPRINGS:
        takeover = "none"  # it returns to rest by itself: nothing to pick up (unless asked per binding)
    elif takeover is None:
        takeover = defaults.takeover or ("pickup" if kind in ABSOLUTE_TAKEOVER else "none")
    if kw["velocity"] and mode not in ("momentary", "trigger", "toggle"):
        ck.problem(d.line_of("velocity"), f"{what}: velocity applies to note buttons")
    kw.update(mode=mode, takeover=takeover)
    return kw if len(ck.problems) == n_before else None


def button_source(raw, line: int, ck: Checker, defaults: Defaults, what: str) -> Source | None:
    """A page-select / next / prev button: {note: N} or {cc: N} or {osc: /addr}, and a channel."""
    d = ck.mapping(raw, line, what)
    if d is None:
        return None
    ck.keys(d, BUTTON_KINDS + ("channel",), what)
    kinds = [k for k in BUTTON_KINDS if k in d]
    if len(kinds) != 1:
        ck.problem(d.line, f"{what}: expected one button source (cc | note | osc)", "e.g. {note: 25}")
        return None
    kind = kinds[0]
    if kind == "osc":
        numbers, address = _numbers(d, kind, ck, what)
        return Source("osc", None, None, None, address) if numbers else None
    number = ck.integer(d, kind, 0, 127, what)
    channel = read_channel(d, "channel", ck, what, defaults.channel)
    return Source(kind, channel, number) if number is not None else None

