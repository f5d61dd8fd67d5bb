"""Modulation at run time: the mapping's `modulation:` routes applied to each frame.

Faders set the base; the modulation sources (audio features today) move it around. Per frame
the engine feeds each source's Reading (modulation.source: named values and events, `feed`),
then the instrument calls `apply(values, dt)` right after smoothing: it writes the modulated
values into that frame's `values` and never into the state, so presets store faders, not
audio. Event routes with an action queue ParamUpdates (`pending_actions()`).

The arithmetic is exactly `schema.ModulationRoute`'s docstring (normalise, curve, invert,
attack/release follower, depth/offset, replace -> multiply -> add, clamp by the target's spec),
with these run-time choices where the schema leaves room:

- A pulse starts at 1 in the frame that receives its event (so it shows at once) and decays by
  exp(-dt / tau) each frame after: t in the schema's exp(-t / tau) counts from that frame.
- A silent source (no audio input, or the input was lost) reads as x = 0 for every route
  following its values, so levels release to the route's resting value instead of holding the
  last loud one; a value that is merely absent in a reading (pitch while unvoiced) holds its x.
- Cooldowns are measured between the events' own timestamps (`time_s`), not frame times.

Only the engine thread calls `feed`, `apply` and `pending_actions`. Nothing in `apply` raises:
a failure is counted, logged once, and the frame keeps its base values.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping

from ..common.events import ParamUpdate
from ..mapping.schema import EnvelopeDef, ModulationRoute
from ..mapping.transforms import curve as curve_fn
from ..state.params import Registry, SignalSpec, TargetSpec
from .envelope import Envelopes
from .source import Event, Reading

log = logging.getLogger(__name__)

__all__ = ["Modulation"]


class _Route:
    """One route's run-time state: x held, follower e, pulse level, last action time."""

    __slots__ = ("route", "spec", "signal", "event", "x", "e", "pulse", "last_fire_s", "lo", "span",
                 "attack_s", "release_s", "decay_s")

    def __init__(self, route: ModulationRoute, spec: TargetSpec | None, signal: SignalSpec):
        self.route, self.spec, self.signal = route, spec, signal
        self.event = signal.event
        self.x = 0.0
        self.e = 0.0
        self.pulse = 0.0
        self.last_fire_s: float | None = None
        lo, hi = route.input_range if route.input_range is not None else signal.input_range
        self.lo, self.span = float(lo), float(hi) - float(lo)
        self.attack_s = max(0.0, route.attack_ms) / 1000.0
        self.release_s = max(0.0, route.release_ms) / 1000.0
        self.decay_s = None if route.pulse_decay_ms is None else max(1e-6, route.pulse_decay_ms / 1000.0)

    def shape(self, x: float) -> float:
        y = curve_fn(x, self.route.curve, self.route.curve_k)
        return 1.0 - y if self.route.invert else y

    def follow(self, y: float, dt: float) -> None:
        tau = self.attack_s if y > self.e else self.release_s
        if tau <= 0.0:
            self.e = y
        elif dt > 0.0:
            self.e += (y - self.e) * -math.expm1(-dt / tau)


class Modulation:
    """The modulation routes of one instrument.

    `routes`: the mapping's ModulationRoutes (file order matters for replace). `registry`: the
    instrument's targets (ranges, clamping), actions and signals; `signals`: those the mapping
    declares itself (its LFOs and envelopes); `envelopes`: its envelopes, computed here from the
    events fed (modulation.envelope). A route naming a target, action or signal neither has is left
    out with a warning in `warnings` (the rest still play).
    """

    def __init__(self, routes: Iterable[ModulationRoute], registry: Registry,
                 signals: Mapping[str, SignalSpec] | None = None, envelopes: Iterable[EnvelopeDef] = ()):
        self.registry = registry
        known = {**registry.signals, **(signals or {})}
        self.warnings: list[str] = []
        self._routes: list[_Route] = []
        for route in routes:
            where = f"modulation route {route.name or route.feature} (line {route.line})"
            signal = known.get(route.feature)
            if signal is None:
                self.warnings.append(f"{where}: unknown signal {route.feature!r}; left out")
            elif route.action is not None:
                if route.action not in registry.actions:
                    self.warnings.append(f"{where}: unknown action {route.action!r}; left out")
                elif not signal.event:
                    self.warnings.append(f"{where}: actions fire on events, not {route.feature!r}; left out")
                else:
                    self._routes.append(_Route(route, None, signal))
            elif route.target is not None and (route.target.startswith(("tempo.", "lfo.")) or
                                               route.target in ("preset.morph", "preset.morph_beats")):
                self.warnings.append(f"{where}: {route.target} is read as set, not as modulated; left out")
            elif route.target in registry.targets:
                if signal.event and route.pulse_decay_ms is None:
                    self.warnings.append(f"{where}: {route.feature} needs a pulse to drive a target; left out")
                else:
                    self._routes.append(_Route(route, registry.targets[route.target], signal))
            else:
                self.warnings.append(f"{where}: unknown target {route.target!r}; left out")
        # Per target, in the order the schema combines them: replace (last wins), multiply, add.
        by_target: dict[str, list[_Route]] = {}
        for r in self._routes:
            if r.spec is not None:
                by_target.setdefault(r.route.target, []).append(r)
        order = {"replace": 0, "multiply": 1, "add": 2}
        self._targets = {t: sorted(rs, key=lambda r: order.get(r.route.mode, 2)) for t, rs in by_target.items()}
        self._values: dict[str, float] = {}  # each signal's newest value
        self._silent: set[str] = set()  # signals whose source is silent
        self._events: list[Event] = []
        self._envelopes = Envelopes(envelopes)
        self._actions: list[ParamUpdate] = []
        self._written: dict[str, float] = {}
        self.errors = 0
        for w in self.warnings:
            log.warning("%s", w)

    # -- input ----------------------------------------------------------------------------------
    def feed(self, reading: Reading) -> None:
        """A source's Reading for this frame; its events accumulate until `apply`."""
        for name, value in reading.values.items():
            if reading.silent:
                self._silent.add(name)
                self._values.pop(name, None)
            elif value is not None:
                self._silent.discard(name)
                self._values[name] = value
        self._events.extend(reading.events)

    def fire(self, action: str) -> None:
        """An envelope's action (`env.<name>`): it fires in the next frame."""
        self._events.append(Event(action))

    def follows(self, target: str) -> list[ModulationRoute]:
        """The routes that move `target`, in the order they combine (replace, multiply, add)."""
        return [r.route for r in self._targets.get(target, ())]

    # -- per frame --------------------------------------------------------------------------------
    def apply(self, values: dict[str, float], dt: float) -> set[str]:
        """Advance every route by `dt` seconds and write the modulated targets into `values`
        (which hold the smoothed base values). Returns the targets whose written value differs
        from the previous frame's. Never raises."""
        try:
            return self._apply(values, dt)
        except Exception as exc:  # the picture goes on with the base values
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.warning("modulation failed (%d so far): %r", self.errors, exc)
            self._events.clear()
            return set()

    def pending_actions(self) -> list[ParamUpdate]:
        """Actions fired by onsets since the last call, oldest first (each once)."""
        out, self._actions = self._actions, []
        return out

    # -- inside -----------------------------------------------------------------------------------
    def _apply(self, values: dict[str, float], dt: float) -> set[str]:
        dt = float(dt) if dt is not None and math.isfinite(dt) and dt > 0.0 else 0.0
        events, self._events = self._events, []
        fired: dict[str, list[Event]] = {}
        for ev in events:
            fired.setdefault(ev.name, []).append(ev)
        self._values.update(self._envelopes.step(fired, self._values, dt))
        for r in self._routes:
            route = r.route
            if r.event:
                events = fired.get(route.feature, ())
                if route.action is not None:
                    self._fire(r, events)
                    continue
                if r.decay_s is not None and dt > 0.0:
                    r.pulse *= math.exp(-dt / r.decay_s)
                if events:
                    r.pulse = 1.0
                r.e = r.shape(r.pulse)
                continue
            if route.feature in self._silent:
                r.x = 0.0
            else:
                f = self._values.get(route.feature)
                if f is not None and r.span != 0.0:
                    r.x = min(max((f - r.lo) / r.span, 0.0), 1.0)
            r.follow(r.shape(r.x), dt)
        changed: set[str] = set()
        for target, routes in self._targets.items():
            if target not in values:
                continue
            base = float(values[target])
            v = base
            for r in routes:
                m = r.route.offset + r.route.depth * r.e
                mode = r.route.mode
                if mode == "replace":
                    v = m
                elif mode == "multiply":
                    v *= m
                else:
                    v += m
            v = r.spec.clamp(v) if math.isfinite(v) else base
            values[target] = v
            if self._written.get(target, base) != v:
                changed.add(target)
            self._written[target] = v
        return changed

    def _fire(self, r: _Route, events: Iterable[Event]) -> None:
        route = r.route
        cooldown_s = max(0.0, route.cooldown_ms) / 1000.0
        for ev in events:
            t = ev.time_s if ev.time_s is not None and math.isfinite(ev.time_s) else None
            if t is not None and r.last_fire_s is not None and 0.0 <= t - r.last_fire_s < cooldown_s:
                continue
            r.last_fire_s = t if t is not None else r.last_fire_s
            value = 0.0 if route.value is None else float(route.value)
            self._actions.append(ParamUpdate(route.action, value, action=True,
                                             source=f"{r.signal.source} {route.feature}"))
