"""Reading a mapping file's sections into the frozen dataclasses of schema.py.

One pass collects every problem (checks.Checker); bindings are first read into `_Proto`s so
that templates (number ranges, globs) can be expanded and names checked against a registry
before anything frozen is built (names.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..params import Registry
from . import names
from .checks import MISSING, Checker, Problem
from .located import LDict, LList, YamlSyntaxError, line_of, load_located
from .schema import (
    FEATURE_RANGES, FEATURES, MODULATION_MODES, ONSET_FEATURES, SCHEMA_VERSION, SOURCE_KINDS,
    Bank, DeviceMatch, Info, Mapping, MappingError, Page, Source,
)
from .takeover import MODES as TAKEOVER_MODES
from .transforms import CURVES, ENCODINGS

TOP_KEYS = ("schema_version", "info", "device", "defaults", "templates", "bindings", "banks", "modulation")
INFO_KEYS = ("name", "author", "device", "source", "notes")
DEFAULT_KEYS = ("channel", "takeover", "smoothing_ms")
COMMON_KEYS = ("channel", "target", "action", "value", "use", "optional", "allow_multi", "start", "smoothing_ms")
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
MODULATION_KEYS = ("feature", "target", "action", "value", "depth", "offset", "input_range", "curve", "invert",
                   "attack_ms", "release_ms", "mode", "pulse", "cooldown_ms", "name", "optional")
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


def parse(text: str, path: str, registry: Registry | None) -> Mapping:
    ck = Checker(path)
    try:
        data = load_located(text)
    except YamlSyntaxError as exc:
        raise MappingError(path, [Problem(exc.line, str(exc), "check indentation, colons and brackets")]) from None
    if not isinstance(data, LDict):
        raise MappingError(path, [Problem(line_of(data, 1), "expected a mapping file: key: value lines at the top "
                                          "level (schema_version, info, device, bindings, ...)")])
    ck.keys(data, TOP_KEYS, "mapping")
    version = data.get("schema_version", MISSING)
    if version is MISSING:
        ck.problem(data.line, "schema_version is missing", f"add 'schema_version: {SCHEMA_VERSION}' at the top")
    elif isinstance(version, bool) or not isinstance(version, int) or version < 1:
        ck.problem(data.line_of("schema_version"), f"schema_version must be a positive whole number, got {version!r}")
    elif version > SCHEMA_VERSION:
        ck.problem(data.line_of("schema_version"), f"schema_version {version} is newer than this ganinstrument "
                   f"understands ({SCHEMA_VERSION})", "update ganinstrument")
    info = _info(data, ck)
    device = _device(data, ck)
    defaults = _defaults(data, ck)
    templates = _templates(data, ck)
    state = {"group": 0}
    protos: list[Proto] = []
    raw = data.get("bindings", MISSING)
    if raw is not MISSING and raw is not None:
        items = ck.sequence(raw, data.line_of("bindings"), "bindings")
        for i, item in enumerate(items or ()):
            protos += binding(item, items.line_of(i), ck, defaults, templates, f"bindings[{i}]", None, state)
    banks = _banks(data, ck, defaults, templates, protos, state)
    routes = _modulation(data, ck)
    names.check_duplicates(protos, banks, ck)
    bindings, routes = names.resolve(protos, routes, registry, ck)
    if ck.problems:
        raise MappingError(path, ck.problems)
    global_bindings = tuple(b for b, p in bindings if p.scope is None)
    built_banks = tuple(
        Bank(bank["name"], tuple(Page(page["name"], tuple(b for b, p in bindings if p.scope == (bi, pi)),
                                      page["select"], page["line"]) for pi, page in enumerate(bank["pages"])),
             bank["next"], bank["prev"], bank["line"])
        for bi, bank in enumerate(banks))
    return Mapping(schema_version=version, info=info, device=device, bindings=global_bindings, banks=built_banks,
                   modulation=tuple(routes), path=path, warnings=tuple(w.format(path) for w in ck.warnings),
                   resolved=registry is not None)


# -- header sections ----------------------------------------------------------------------------
def _info(data: LDict, ck: Checker) -> Info:
    raw = data.get("info")
    if raw is None:
        return Info()
    d = ck.mapping(raw, data.line_of("info"), "info")
    if d is None:
        return Info()
    ck.keys(d, INFO_KEYS, "info")
    values = {k: ck.string(d, k, "info", default="") or "" for k in INFO_KEYS}
    return Info(**values)


def _device(data: LDict, ck: Checker) -> DeviceMatch:
    raw = data.get("device")
    if raw is None:
        return DeviceMatch()
    if isinstance(raw, str):
        d = LDict(input=raw, output=raw)
        d.line = data.line_of("device")
        d.key_lines = {"input": d.line, "output": d.line}
    else:
        d = ck.mapping(raw, data.line_of("device"), "device")
        if d is None:
            return DeviceMatch()
        ck.keys(d, ("input", "output"), "device")
    return DeviceMatch(input=ck.regex_or_text(d, "input", "device") or "",
                       output=ck.regex_or_text(d, "output", "device") or "")


def _channel(d: LDict, key: str, ck: Checker, what: str, default):
    value = d.get(key, MISSING)
    if value is MISSING:
        return default
    if value == "any":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16:
        hint = ("channels are 1..16 in mapping files, as devices show them (status 0xB0 is channel 1)"
                if value == 0 else "1..16, or 'any'")
        ck.problem(d.line_of(key), f"{what}: {key} must be 1..16 or any, got {value!r}", hint)
        return default
    return value - 1


def _defaults(data: LDict, ck: Checker) -> Defaults:
    raw = data.get("defaults")
    out = Defaults()
    if raw is None:
        return out
    d = ck.mapping(raw, data.line_of("defaults"), "defaults")
    if d is None:
        return out
    ck.keys(d, DEFAULT_KEYS, "defaults")
    out.channel = _channel(d, "channel", ck, "defaults", 0)
    out.takeover = ck.choice(d, "takeover", TAKEOVER_MODES, "defaults", default=None)
    out.smoothing_ms = ck.number(d, "smoothing_ms", "defaults", default=None, lo=0.0)
    return out


def _templates(data: LDict, ck: Checker) -> dict[str, LDict]:
    raw = data.get("templates")
    if raw is None:
        return {}
    d = ck.mapping(raw, data.line_of("templates"), "templates")
    out: dict[str, LDict] = {}
    for name, body in (d or {}).items():
        t = ck.mapping(body, d.line_of(name), f"templates.{name}")
        if t is not None:
            ck.keys(t, tuple(k for k in BINDING_KEYS if k != "use"), f"templates.{name}")
            out[str(name)] = t
    return out


def _use(d: LDict, ck: Checker, templates: dict[str, LDict], what: str) -> LDict:
    name = d.get("use")
    if name is None:
        return d
    if name not in templates:
        close = Registry.suggest(str(name), templates, n=1)
        ck.problem(d.line_of("use"), f"{what}: unknown template {name!r}",
                   f"did you mean {close[0]!r}?" if close else "define it under 'templates:'")
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


# -- bindings -----------------------------------------------------------------------------------
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
        channel = _channel(d, "channel", ck, what, defaults.channel)
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
                    ck.problem(d.line_of("value"), f"{what}: value must be a number, got {value!r}")
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
            ck.problem(line, f"{what}: write '{kind}: true' (it is one control per channel), got {raw!r}")
            return None, ""
        return [None], ""
    if kind == "osc":
        if not isinstance(raw, str) or not raw.startswith("/"):
            ck.problem(line, f"{what}: osc must be an address starting with '/', got {raw!r}", "e.g. osc: /fx/psi")
            return None, ""
        return [None], raw
    if kind in ("program", "polytouch") and raw == "any":
        return [None], ""
    hi = NUMBER_LIMITS[kind]
    numbers: list = []
    if isinstance(raw, str) and _RANGE.match(raw):
        a, b = map(int, _RANGE.match(raw).groups())
        if a > b:
            ck.problem(line, f"{what}: range {raw!r} runs backwards", f"write {b}..{a}, or a list for another order")
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
                   f"got {bad[0]!r}", "numbers are as on the wire: CC 0..127, notes 0..127 (60 = middle C)")
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
            ck.problem(d.line_of(key), f"{what}: {key} {text!r} has a bad placeholder ({exc})",
                       "placeholders are {i} (0-based), {n} (1-based) and {number} (the control number)")
        return None


def _curve(d: LDict, ck: Checker, what: str):
    raw = d.get("curve", "linear")
    m = _CURVE.match(raw) if isinstance(raw, str) else None
    if not m or m.group(1) not in CURVES:
        ck.problem(d.line_of("curve"), f"{what}: curve must be one of {' | '.join(CURVES)}, optionally with a "
                   f"strength ('exp 4'), got {raw!r}")
        return "linear", None
    k = None
    if m.group(2) is not None:
        try:
            k = float(m.group(2))
        except ValueError:
            k = -1.0
        if not 0 < k <= 50:
            ck.problem(d.line_of("curve"), f"{what}: curve strength must be a number in (0, 50], got {m.group(2)!r}")
            k = None
    return m.group(1), k


def _options(d: LDict, kind: str, target, action, defaults: Defaults, ck: Checker, what: str) -> dict | None:
    """Binding kwargs other than source/target/action/value, with the mode resolved."""
    n_before = len(ck.problems)
    curve, k = _curve(d, ck, what)
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
    channel = _channel(d, "channel", ck, what, defaults.channel)
    return Source(kind, channel, number) if number is not None else None


def _banks(data: LDict, ck: Checker, defaults, templates, protos: list[Proto], state) -> list[dict]:
    raw = data.get("banks")
    if raw is None:
        return []
    items = ck.sequence(raw, data.line_of("banks"), "banks") or LList()
    banks, seen = [], set()
    for bi, item in enumerate(items):
        what = f"banks[{bi}]"
        d = ck.mapping(item, items.line_of(bi), what)
        if d is None:
            continue
        ck.keys(d, ("name", "next", "prev", "pages"), what)
        name = ck.string(d, "name", what) or f"bank{bi}"
        if name in seen:
            ck.problem(d.line_of("name"), f"{what}: bank name {name!r} is used twice")
        seen.add(name)
        bank = {"name": name, "line": d.line, "pages": []}
        for key in ("next", "prev"):
            bank[key] = button_source(d[key], d.line_of(key), ck, defaults, f"{what}.{key}") if key in d else None
        pages = ck.sequence(d.get("pages"), d.line_of("pages"), f"{what}.pages") if "pages" in d else None
        if not pages:
            ck.problem(d.line, f"{what}: a bank needs 'pages:', a list of pages with bindings")
            continue
        page_names = set()
        for pi, praw in enumerate(pages):
            pwhat = f"{what}.pages[{pi}]"
            p = ck.mapping(praw, pages.line_of(pi), pwhat)
            if p is None:
                continue
            ck.keys(p, ("name", "select", "bindings"), pwhat)
            pname = ck.string(p, "name", pwhat, default=f"{pi + 1}") or f"{pi + 1}"
            if pname in page_names:
                ck.problem(p.line_of("name"), f"{pwhat}: page name {pname!r} is used twice in bank {name!r}")
            page_names.add(pname)
            select = button_source(p["select"], p.line_of("select"), ck, defaults, f"{pwhat}.select") \
                if "select" in p else None
            bank["pages"].append({"name": pname, "select": select, "line": p.line})
            blist = ck.sequence(p.get("bindings"), p.line_of("bindings"), f"{pwhat}.bindings") or LList()
            for j, b in enumerate(blist):
                protos += binding(b, blist.line_of(j), ck, defaults, templates, f"{pwhat}.bindings[{j}]",
                                  (bi, pi), state)
        banks.append(bank)
    return banks


# -- modulation -------------------------------------------------------------------------------
def _modulation(data: LDict, ck: Checker) -> list[tuple[dict, bool]]:
    """Route kwargs (names not yet checked) and whether each is optional."""
    raw = data.get("modulation")
    if raw is None:
        return []
    items = ck.sequence(raw, data.line_of("modulation"), "modulation") or LList()
    out = []
    for i, item in enumerate(items):
        what = f"modulation[{i}]"
        d = ck.mapping(item, items.line_of(i), what)
        if d is None:
            continue
        n_before = len(ck.problems)
        ck.keys(d, MODULATION_KEYS, what)
        feature = ck.choice(d, "feature", FEATURES, what)
        target = ck.string(d, "target", what, default=None)
        action = ck.string(d, "action", what, default=None)
        if ("target" in d) == ("action" in d):
            ck.problem(d.line, f"{what}: expected exactly one of target or action")
        mode = ck.choice(d, "mode", MODULATION_MODES, what, default="add")
        curve, k = _curve(d, ck, what)
        kw = dict(feature=feature, target=target, action=action, mode=mode, curve=curve, curve_k=k,
                  value=ck.number(d, "value", what, default=None),
                  depth=ck.number(d, "depth", what, default=1.0),
                  offset=ck.number(d, "offset", what, default=1.0 if mode == "multiply" else 0.0),
                  input_range=ck.pair(d, "input_range", what, default=FEATURE_RANGES.get(feature, (0.0, 1.0))),
                  invert=bool(ck.boolean(d, "invert", what)),
                  attack_ms=ck.number(d, "attack_ms", what, default=0.0, lo=0.0),
                  release_ms=ck.number(d, "release_ms", what, default=0.0, lo=0.0),
                  cooldown_ms=ck.number(d, "cooldown_ms", what, default=0.0, lo=0.0),
                  name=ck.string(d, "name", what, default="") or "", line=d.line)
        event = feature in ONSET_FEATURES
        pulse = d.get("pulse")
        if pulse is not None:
            p = ck.mapping(pulse, d.line_of("pulse"), f"{what}.pulse")
            if p is not None:
                ck.keys(p, ("decay_ms",), f"{what}.pulse")
                kw["pulse_decay_ms"] = ck.number(p, "decay_ms", f"{what}.pulse", lo=1e-3)
            if feature is not None and not event:
                ck.problem(d.line_of("pulse"), f"{what}: pulse applies to onset features ({', '.join(ONSET_FEATURES)})")
            for key in ("attack_ms", "release_ms"):
                if key in d:
                    ck.problem(d.line_of(key), f"{what}: {key} does not apply to a pulse",
                               "a pulse jumps to 1 at the onset and decays over pulse.decay_ms")
        elif event and target is not None:
            ck.problem(d.line, f"{what}: {feature} is an event, not a value",
                       "give 'pulse: {decay_ms: 150}' to make an envelope of it, or an 'action'")
        if action is not None:
            if feature is not None and not event:
                ck.problem(d.line_of("feature"), f"{what}: actions fire on onsets; feature must be one of "
                           f"{', '.join(ONSET_FEATURES)}")
            for key in ("depth", "offset", "curve", "mode", "attack_ms", "release_ms", "pulse", "input_range",
                        "invert"):
                if key in d:
                    ck.problem(d.line_of(key), f"{what}: {key} applies to routes with a target, not actions")
        elif "cooldown_ms" in d:
            ck.problem(d.line_of("cooldown_ms"), f"{what}: cooldown_ms applies to action routes")
        if len(ck.problems) == n_before:
            out.append((kw, bool(d.get("optional") is True)))
    return out
