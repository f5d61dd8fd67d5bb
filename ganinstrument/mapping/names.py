"""Names in a mapping: duplicate controls, and targets/actions checked against a Registry.

Target names depend on the loaded model, so this is where a generic mapping is fitted to
one: globs (`edit.*`) expand to the registry's matching targets in registry order, and a name
marked `optional` that this model lacks is skipped with a warning instead of an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase

from ..common.text import shorten_repr
from ..state.params import Registry, SignalSpec
from .checks import Checker
from .parse_modulation import RouteWhere
from .schema import Binding, ModulationRoute

NRPN_CCS = (99, 98, 6, 38, 96, 97, 101, 100)  # parameter select, data entry, inc/dec, RPN select
_GLOB = re.compile(r"[*?\[]")


def is_glob(name: str | None) -> bool:
    return name is not None and _GLOB.search(name) is not None


# -- duplicates ------------------------------------------------------------------------------
def _occupied(source) -> list[tuple]:
    """(kind, number) keys a source takes on its channel (cc14 takes two controllers)."""
    if source.kind == "cc14":
        return [("cc", source.number), ("cc", source.lsb)]
    if source.kind == "osc":
        return [("osc", source.address)]
    return [(source.kind, source.number)]


def check_duplicates(protos, banks: list[dict], ck: Checker) -> None:
    """One control, one binding per page: report a second one unless it says allow_multi."""
    entries: dict[tuple, list] = {}
    buttons = []
    for bank in banks:
        for key in ("next", "prev"):
            if bank[key] is not None:
                buttons.append((bank[key], bank["line"], f"bank {shorten_repr(bank['name'])} {key}"))
        for page in bank["pages"]:
            if page["select"] is not None:
                buttons.append((page["select"], page["line"], f"page {shorten_repr(page['name'])} select"))
    items = [(p.kwargs["source"], p.scope, p.line, p.kwargs.get("allow_multi", False), "a binding") for p in protos]
    items += [(src, None, line, False, what) for src, line, what in buttons]
    nrpn_channels = {s.channel for s, *_ in items if s.kind == "nrpn"}
    said: set[tuple[int, int]] = set()  # a template line clashing with another: said once
    for source, scope, line, multi, what in items:
        if source.kind == "cc" and source.number in NRPN_CCS and any(
                _channels_meet(source.channel, ch) for ch in nrpn_channels):
            ck.problem(line, f"{source.describe()} is used by NRPN on this channel (CC 99/98 select, 6/38 data, "
                       f"96/97 inc/dec, 101/100 RPN)", "move it to another channel or controller")
        for key in _occupied(source):
            for other_source, other_scope, other_line, _, other_what in entries.get(key, ()):
                if (_channels_meet(source.channel, other_source.channel) and _scopes_meet(scope, other_scope)
                        and not multi and (line, source) != (other_line, other_source)):
                    if (line, other_line) not in said:
                        said.add((line, other_line))
                        ck.problem(line, f"{source.describe()} is already bound by {other_what} at line "
                                   f"{other_line}", "one binding per control and page; add 'allow_multi: true' "
                                   "to drive several targets, or put them on different pages of a bank")
                    break
            entries.setdefault(key, []).append((source, scope, line, multi, what))


def _channels_meet(a, b) -> bool:
    return a is None or b is None or a == b


def _scopes_meet(a, b) -> bool:
    return a is None or b is None or a == b


# -- names against a registry ------------------------------------------------------------------
def _unknown_hint(name: str, registry: Registry, pool) -> str:
    prefix, _, rest = name.partition(".")
    if prefix == "z" and rest.isdigit():
        zs = [t for t in registry.targets if t.startswith("z.")]
        return f"this instrument has {len(zs)} z groups" + (f" ({zs[0]}..{zs[-1]})" if zs else "") + \
            "; mark it optional: true to fit models with fewer"
    close = Registry.suggest(name, pool)
    if close:
        return f"did you mean {' or '.join(repr(c) for c in close)}?"
    if prefix == "blend":
        return "blend.* targets exist only with a second model (check --model-b FILE); mark it optional: true"
    if prefix == "edit":
        return "edit names follow the model's layers (StyleGAN2 edit.b64, StyleGAN3 edit.L6_...); use 'edit.*'"
    if prefix == "dir":
        return "dir.* targets exist when the instrument is given a directions file"
    return "run 'ganinstrument check' with the model you will play to see its names"


_WITH_ARTICLE = {"target": "a target", "action": "an action"}


def _report_missing(name, kind: str, what: str, registry: Registry, optional: bool, line: int, ck: Checker) -> None:
    """Report `name`, which is not one of this instrument's `kind`s ("target" or "action"): the
    other kind's name written under this key, an optional name skipped, or an unknown name."""
    if kind == "target":
        other, pool, others = "action", registry.targets, registry.actions
    else:
        other, pool, others = "target", registry.actions, registry.targets
    shown = shorten_repr(name)
    if name in others:
        ck.problem(line, f"{what} {shown} is {_WITH_ARTICLE[other]}, not {_WITH_ARTICLE[kind]}",
                   f"write '{other}: {name}'")
    elif optional:
        ck.warn(line, f"skipped {what} {shown}: this instrument has no such {kind} (optional)")
    else:
        ck.problem(line, f"unknown {what} {shown} (expected {_WITH_ARTICLE[kind]} of this instrument)",
                   _unknown_hint(name, registry, pool))


def _check_target(name, registry: Registry, optional: bool, line: int, ck: Checker, what: str) -> bool:
    if name in registry.targets:
        return True
    _report_missing(name, "target", what, registry, optional, line, ck)
    return False


def _check_action(name, value, source_kind, registry: Registry, optional: bool, line: int, ck: Checker) -> bool:
    spec = registry.actions.get(name)
    if spec is None:
        _report_missing(name, "action", "action", registry, optional, line, ck)
        return False
    if spec.takes_value and value is None and source_kind != "program":
        ck.problem(line, f"action {shorten_repr(name)} needs a value", "e.g. value: 1 (a slot number)")
        return False
    if not spec.takes_value and value is not None:
        ck.problem(line, f"action {shorten_repr(name)} takes no value; remove 'value:'")
        return False
    return True


def resolve(protos, routes, registry: Registry | None, ck: Checker,
            signals: Mapping[str, SignalSpec] | None = None, own: Mapping[str, SignalSpec] | None = None,
            envelopes=()):
    """Expand globs and check names; returns ([(Binding, Proto)], [ModulationRoute]). Without a
    registry, routes' features are checked against `signals` when given. `own`: the signals the
    mapping declares itself (its LFOs), known either way."""
    out = []
    glob_matches: dict[int, list[str]] = {}
    reported: set[tuple] = set()
    for p in protos:
        kw = dict(p.kwargs)
        target, action = kw["target"], kw["action"]
        if registry is None:
            if is_glob(target) and ("glob", p.group) not in reported:
                reported.add(("glob", p.group))
                ck.warn(p.line, f"target {shorten_repr(target)} is expanded only against a model's registry")
            out.append((Binding(**kw), p))
            continue
        if is_glob(target):
            matches = glob_matches.setdefault(p.group, [t for t in registry.targets if fnmatchcase(t, target)])
            if not matches:
                if ("glob", p.group) not in reported:
                    reported.add(("glob", p.group))
                    if p.optional:
                        ck.warn(p.line, f"skipped: no target of this instrument matches {shorten_repr(target)} (optional)")
                    else:
                        ck.problem(p.line, f"no target of this instrument matches {shorten_repr(target)}",
                                   _unknown_hint(target.rstrip("*?[]"), registry, registry.targets))
                continue
            if p.index >= len(matches):
                if ("surplus", p.group) not in reported:
                    reported.add(("surplus", p.group))
                    ck.warn(p.line, f"{shorten_repr(target)} matches {len(matches)} targets here; the controls from "
                            f"{kw['source'].describe()} on stay unbound")
                continue
            kw["target"] = target = matches[p.index]
        elif target is not None and not _check_target(target, registry, p.optional, p.line, ck, "target"):
            continue
        if action is not None and not _check_action(action, kw["value"], kw["source"].kind, registry, p.optional,
                                                   p.line, ck):
            continue
        if target is not None:
            _check_range(kw, registry.targets[target], p.line, ck)
        out.append((Binding(**kw), p))
    built_routes = []
    known = registry.signals if registry is not None else signals
    if known is not None and own:
        known = {**known, **own}
    for env in envelopes if known is not None else ():  # what triggers an envelope: an event
        spec = known.get(env.trigger)
        if env.trigger != "button" and (spec is None or not spec.event):
            events = ", ".join(s.name for s in known.values() if s.event)
            ck.problem(env.line, f"envelopes: {env.name}: trigger must be an event ({events}), 'bar N' or 'button', "
                                 f"got {shorten_repr(env.trigger)}")
    for kw, optional, where in routes:
        line = kw["line"]
        if known is not None and not _check_signal(kw, known, optional, where, ck):
            continue
        if registry is not None:
            if kw["target"] is not None and not _check_target(kw["target"], registry, optional, line, ck, "target"):
                continue
            if kw["action"] is not None and not _check_action(kw["action"], kw["value"], "", registry, optional,
                                                              line, ck):
                continue
        built_routes.append(ModulationRoute(**kw))
    return out, built_routes


def _check_signal(kw: dict, signals: Mapping[str, SignalSpec], optional: bool, where: RouteWhere,
                  ck: Checker) -> bool:
    """A route's `feature` is a known signal, and the route fits its kind: an event (an onset)
    drives a target only as a pulse, and is what fires actions; a value has no pulse. Fills in
    the signal's input range when the route gives none."""
    name, what, lines = kw["feature"], where.what, where.lines
    spec = signals.get(name)
    shown = shorten_repr(name)
    if spec is None:
        if optional:
            ck.warn(lines["feature"], f"{what}: skipped feature {shown}: this instrument has no such signal (optional)")
        else:
            close = Registry.suggest(name, signals)
            ck.problem(lines["feature"], f"{what}: unknown feature {shown} (expected a signal: "
                                         f"{', '.join(signals) or 'none'})",
                       f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "")
        return False
    if kw["input_range"] is None:
        kw["input_range"] = spec.input_range
    events = ", ".join(s.name for s in signals.values() if s.event)
    if spec.event and kw["target"] is not None and kw.get("pulse_decay_ms") is None:
        ck.problem(kw["line"], f"{what}: {shown} is an event, not a value",
                   "give 'pulse: {decay_ms: 150}' to make an envelope of it, or an 'action'")
        return False
    if not spec.event and kw.get("pulse_decay_ms") is not None:
        ck.problem(lines["pulse"], f"{what}: pulse applies to event features ({events}), not {shown}")
        return False
    if not spec.event and kw["action"] is not None:
        ck.problem(lines["feature"], f"{what}: actions fire on events; feature must be one of {events}")
        return False
    return True


def _check_range(kw: dict, spec, line: int, ck: Checker) -> None:
    lo, hi = kw["range"] if kw["range"] is not None else (spec.minimum, spec.maximum)
    if not spec.extrapolate and (min(lo, hi) < spec.minimum or max(lo, hi) > spec.maximum):
        ck.warn(line, f"range [{lo:g}, {hi:g}] goes beyond {spec.name}'s [{spec.minimum:g}, {spec.maximum:g}]; "
                      "values there are clamped")
    value = kw["value"]
    outside = value is not None and not spec.minimum <= value <= spec.maximum
    if outside and kw["action"] is None and not spec.extrapolate:
        ck.warn(line, f"value {value:g} is outside {spec.name}'s [{spec.minimum:g}, {spec.maximum:g}]; it is clamped")
