"""Audio modulation at run time: the mapping's `modulation:` routes applied to each frame.

Faders set the base; audio moves around it. Per frame the engine hands over the newest
features and the onset events since the last frame (`feed`, or a `source` with `latest()` and
`drain_onsets()` such as `AudioInput` / `BlockSource`), then calls `apply(values, dt)` right
after smoothing: it writes the modulated values into that frame's `values` and never into the
state, so presets store faders, not audio. Onset routes with an action queue ParamUpdates
(`pending_actions()`).

The arithmetic is exactly `schema.ModulationRoute`'s docstring (normalise, curve, invert,
attack/release follower, depth/offset, replace -> multiply -> add, clamp by the target's spec),
with these run-time choices where the schema leaves room:

- A pulse starts at 1 in the frame that receives its onset (so it shows at once) and decays by
  exp(-dt / tau) each frame after: t in the schema's exp(-t / tau) counts from that frame.
- No features at all (no audio input, or the input was lost) reads as x = 0 for every
  continuous route, so levels release to the route's resting value instead of holding the last
  loud one; a feature that is merely absent in a block (pitch while unvoiced) holds its last x.
- Cooldowns are measured between the onsets' own timestamps (`time_s`), not frame times.

Only the engine thread calls `feed`, `apply` and `pending_actions`. Nothing in `apply` raises:
a failure is counted, logged once, and the frame keeps its base values.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..common.events import ParamUpdate
from ..state.params import Registry, TargetSpec
from ..mapping.schema import ONSET_FEATURES, ModulationRoute
from ..mapping.transforms import curve as curve_fn

log = logging.getLogger(__name__)

__all__ = ["Modulation", "feature_value"]

_BANDS = {"low": 0, "mid": 1, "high": 2}


def _onset_kind(kind: str) -> str:
    """"onset_low" (the Features field) and "onset.low" (the mapping name) are the same event."""
    return kind.replace("_", ".", 1) if kind.startswith("onset_") and kind != "onset_strength" else kind


def feature_value(features: Any, name: str) -> float | None:
    """The mapping feature `name` ("rms_db", "bands.low", "pitch_hz", ...) read from a Features
    object (or a dict keyed by those names); None when absent, unvoiced or not finite."""
    if features is None:
        return None
    try:
        if isinstance(features, Mapping):
            value = features.get(name)
        elif name.startswith("bands."):
            value = features.bands[_BANDS[name[6:]]]
        else:
            value = getattr(features, name, None)
        if value is None or isinstance(value, bool):
            return None
        value = float(value)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class _Route:
    """One route's run-time state: x held, follower e, pulse level, last action time."""

    __slots__ = ("route", "spec", "event", "x", "e", "pulse", "last_fire_s", "lo", "span",
                 "attack_s", "release_s", "decay_s")

    def __init__(self, route: ModulationRoute, spec: TargetSpec | None):
        self.route, self.spec = route, spec
        self.event = route.feature in ONSET_FEATURES
        self.x = 0.0
        self.e = 0.0
        self.pulse = 0.0
        self.last_fire_s: float | None = None
        lo, hi = route.input_range
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
    """Audio modulation routes for one instrument.

    `routes`: the mapping's ModulationRoutes (file order matters for replace). `registry`: the
    instrument's targets (ranges, clamping) and actions. A route naming a target or action the
    registry lacks is left out with a warning in `warnings` (the rest still play). `source`:
    optional; when given, every `apply` first takes `source.latest()` and
    `source.drain_onsets()` itself.
    """

    def __init__(self, routes: Iterable[ModulationRoute], registry: Registry, *, source: Any = None):
        self.registry = registry
        self.source = source
        self.warnings: list[str] = []
        self._routes: list[_Route] = []
        for route in routes:
            where = f"modulation route {route.name or route.feature} (line {route.line})"
            if route.action is not None:
                if route.action not in registry.actions:
                    self.warnings.append(f"{where}: unknown action {route.action!r}; left out")
                    continue
                if route.feature not in ONSET_FEATURES:
                    self.warnings.append(f"{where}: actions fire on onsets, not {route.feature!r}; left out")
                    continue
                self._routes.append(_Route(route, None))
            elif route.target in registry.targets:
                if route.feature in ONSET_FEATURES and route.pulse_decay_ms is None:
                    self.warnings.append(f"{where}: {route.feature} needs a pulse to drive a target; left out")
                    continue
                self._routes.append(_Route(route, registry.targets[route.target]))
            else:
                self.warnings.append(f"{where}: unknown target {route.target!r}; left out")
        # Per target, in the order the schema combines them: replace (last wins), multiply, add.
        by_target: dict[str, list[_Route]] = {}
        for r in self._routes:
            if r.spec is not None:
                by_target.setdefault(r.route.target, []).append(r)
        order = {"replace": 0, "multiply": 1, "add": 2}
        self._targets = {t: sorted(rs, key=lambda r: order.get(r.route.mode, 2)) for t, rs in by_target.items()}
        self._features: Any = None
        self._onsets: list[Any] = []
        self._actions: list[ParamUpdate] = []
        self._written: dict[str, float] = {}
        self.errors = 0
        for w in self.warnings:
            log.warning("%s", w)

    # -- input ----------------------------------------------------------------------------------
    def feed(self, features: Any = None, onsets: Iterable[Any] = ()) -> None:
        """The newest features (None: no audio) and onset events (objects with `kind` and
        `time_s`, e.g. OnsetEvent) since the last frame; onsets accumulate until `apply`."""
        self._features = features
        self._onsets.extend(onsets)

    def pull(self, source: Any) -> None:
        """feed(source.latest(), source.drain_onsets())."""
        self.feed(source.latest(), source.drain_onsets())

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
                log.warning("audio modulation failed (%d so far): %r", self.errors, exc)
            self._onsets.clear()
            return set()

    def pending_actions(self) -> list[ParamUpdate]:
        """Actions fired by onsets since the last call, oldest first (each once)."""
        out, self._actions = self._actions, []
        return out

    def levels(self) -> dict[str, float]:
        """Each route's current contribution before depth/offset (0..1), for a HUD."""
        return {r.route.name or f"{r.route.feature}->{r.route.target or r.route.action}": r.e
                for r in self._routes}

    def reset(self) -> None:
        """Forget followers, pulses, cooldowns and pending input (e.g. after a new mapping)."""
        for r in self._routes:
            r.x = r.e = r.pulse = 0.0
            r.last_fire_s = None
        self._features, self._onsets, self._actions, self._written = None, [], [], {}

    # -- inside -----------------------------------------------------------------------------------
    def _apply(self, values: dict[str, float], dt: float) -> set[str]:
        if self.source is not None:
            self.pull(self.source)
        dt = float(dt) if dt is not None and math.isfinite(dt) and dt > 0.0 else 0.0
        onsets, self._onsets = self._onsets, []
        fired = {}
        for ev in onsets:
            kind = _onset_kind(str(getattr(ev, "kind", ev)))
            fired.setdefault(kind, []).append(ev)
        features = self._features
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
            if features is None:
                r.x = 0.0
            else:
                f = feature_value(features, route.feature)
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

    def _fire(self, r: _Route, events: Iterable[Any]) -> None:
        route = r.route
        cooldown_s = max(0.0, route.cooldown_ms) / 1000.0
        for ev in events:
            t = getattr(ev, "time_s", None)
            t = float(t) if t is not None and math.isfinite(t) else None
            if t is not None and r.last_fire_s is not None and 0.0 <= t - r.last_fire_s < cooldown_s:
                continue
            r.last_fire_s = t if t is not None else r.last_fire_s
            value = 0.0 if route.value is None else float(route.value)
            self._actions.append(ParamUpdate(route.action, value, action=True,
                                             source=f"audio {route.feature}"))
