"""Reading the `modulation:` section (routes from modulation signals: audio features) for parse.py.

Each route is read into ModulationRoute kwargs with its names not yet checked, and whether it is
optional. names.resolve checks the names against the registry: the target or action, and the
signal (`feature:`), whose kind (a value, or an event such as an onset) decides which keys fit
(pulse, attack/release, action). The routes' runtime is modulation/routes.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checks import Checker
from .located import LDict
from .parse_bindings import read_curve
from .schema import MODULATION_MODES


@dataclass(frozen=True)
class RouteWhere:
    """Where a route is: "modulation[3]", and the lines of its keys, for the checks names.resolve
    makes once the route's signal is known."""

    what: str
    lines: dict[str, int]


MODULATION_KEYS = ("feature", "target", "action", "value", "depth", "offset", "input_range", "curve", "invert",
                   "attack_ms", "release_ms", "mode", "pulse", "cooldown_ms", "name", "optional")


def modulation_routes(data: LDict, ck: Checker) -> list[tuple[dict, bool, RouteWhere]]:
    """Route kwargs (names not yet checked), whether each is optional, and where it is."""
    out = []
    for _, what, d, n_before in ck.items(data, "modulation", MODULATION_KEYS):
        feature = ck.string(d, "feature", what, hint="a signal, e.g. rms_db, bands.low, onset.low")
        target = ck.string(d, "target", what, default=None)
        action = ck.string(d, "action", what, default=None)
        if ("target" in d) == ("action" in d):
            ck.problem(d.line, f"{what}: expected exactly one of target or action")
        mode = ck.choice(d, "mode", MODULATION_MODES, what, default="add")
        curve, k = read_curve(d, ck, what)
        kw = dict(feature=feature, target=target, action=action, mode=mode, curve=curve, curve_k=k,
                  value=ck.number(d, "value", what, default=None),
                  depth=ck.number(d, "depth", what, default=1.0),
                  offset=ck.number(d, "offset", what, default=1.0 if mode == "multiply" else 0.0),
                  input_range=ck.pair(d, "input_range", what, default=None),
                  invert=bool(ck.boolean(d, "invert", what)),
                  attack_ms=ck.number(d, "attack_ms", what, default=0.0, lo=0.0),
                  release_ms=ck.number(d, "release_ms", what, default=0.0, lo=0.0),
                  cooldown_ms=ck.number(d, "cooldown_ms", what, default=0.0, lo=0.0),
                  name=ck.string(d, "name", what, default="") or "", line=d.line)
        pulse = d.get("pulse")
        if pulse is not None:
            p = ck.mapping(pulse, d.line_of("pulse"), f"{what}.pulse")
            if p is not None:
                ck.keys(p, ("decay_ms",), f"{what}.pulse")
                kw["pulse_decay_ms"] = ck.number(p, "decay_ms", f"{what}.pulse", lo=1e-3)
            for key in ("attack_ms", "release_ms"):
                if key in d:
                    ck.problem(d.line_of(key), f"{what}: {key} does not apply to a pulse",
                               "a pulse jumps to 1 at the onset and decays over pulse.decay_ms")
        if action is not None:
            for key in ("depth", "offset", "curve", "mode", "attack_ms", "release_ms", "pulse", "input_range",
                        "invert"):
                if key in d:
                    ck.problem(d.line_of(key), f"{what}: {key} applies to routes with a target, not actions")
        elif "cooldown_ms" in d:
            ck.problem(d.line_of("cooldown_ms"), f"{what}: cooldown_ms applies to action routes")
        if len(ck.problems) == n_before:
            where = RouteWhere(what, {key: d.line_of(key) for key in ("feature", "pulse", "action")})
            out.append((kw, bool(d.get("optional") is True), where))
    return out
