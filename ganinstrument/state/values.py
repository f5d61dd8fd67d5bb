"""Target values now: what the performer asked for, and where each value has got to.

`State` holds, per registry target, the requested value (the target) and the smoothed value
that the scene renders. The engine thread owns it. On stage it never raises: an update naming
an unknown target, or carrying NaN, is counted and reported through `problems`, and the rest
of the frame goes on. The scripting API (`Instrument.set`) uses the strict `set`, which does
raise, so a typo in a script is caught at once.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping

from ..common.events import ParamUpdate
from .params import Registry, TargetSpec
from .smoothing import Smoothed, make_filter

log = logging.getLogger(__name__)

SMOOTHING_TARGET = TargetSpec(
    "smoothing", 0.0, 4.0, 1.0, unit="x", smoothing="none", smoothing_ms=0.0,
    doc="global smoothing scale: 1 as configured, 0 instant, 4 four times slower",
)
_SETTLE_FRACTION = 1e-6  # of a target's range (at most 10 units): closer counts as arrived


class State:
    """Per-target requested and smoothed values for one registry."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self._smoothed: dict[str, Smoothed] = {}
        self._eps: dict[str, float] = {}
        self._add(registry)
        self._active: set[str] = set()  # targets still moving towards their target
        self.problems: deque[str] = deque(maxlen=32)  # recent rejected updates, newest last
        self.rejected = 0

    def _add(self, registry: Registry) -> None:
        for name, spec in registry.targets.items():
            if name in self._smoothed:
                continue
            self._smoothed[name] = Smoothed(make_filter(spec.smoothing, spec.smoothing_ms), spec.default)
            # Capped: a seed's range is 0..2**32, yet a crossfade must run to the last 1e-5.
            self._eps[name] = _SETTLE_FRACTION * min(max(spec.maximum - spec.minimum, 1e-9), 10.0)

    def extend(self, registry: Registry) -> None:
        """Take `registry`, this one's targets and more (a mapping's own), the new ones at their
        defaults; the values of the others stay."""
        missing = [name for name in self.registry.targets if name not in registry.targets]
        if missing:
            raise ValueError(f"a registry that lacks {missing[:3]} cannot replace this one")
        self._add(registry)
        self.registry = registry

    # -- the strict scripting side ------------------------------------------------------
    def set(self, name: str, value: float, *, smoothing_ms: float | None = None, immediate: bool = False) -> float:
        """Ask target `name` to go to `value` (clamped to its range); returns the clamped value.

        Raises UnknownTargetError for an unknown name and ValueError for a non-finite value.
        """
        spec = self.registry.target(name)
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"target {name}: value must be finite, got {value}")
        clamped = spec.clamp(value)
        smoothed = self._smoothed[name]
        if smoothing_ms is not None:
            smoothed.filter = make_filter("one_pole" if spec.smoothing == "none" else spec.smoothing,
                                          max(0.0, float(smoothing_ms)))
        elif smoothed.filter.time_ms != spec.smoothing_ms or smoothed.filter.kind != spec.smoothing:
            smoothed.filter = make_filter(spec.smoothing, spec.smoothing_ms)
        if immediate or spec.kind == "choice" or smoothed.filter.time_ms == 0 or smoothed.filter.kind == "none":
            smoothed.reset(clamped)
            self._active.discard(name)
        else:
            smoothed.target = clamped
            self._active.add(name)
        return clamped

    def get(self, name: str) -> float:
        """The current (smoothed) value of `name`."""
        self.registry.target(name)
        return self._smoothed[name].value

    def target(self, name: str) -> float:
        """The requested value of `name` (where smoothing is heading)."""
        self.registry.target(name)
        return self._smoothed[name].target

    # -- the stage side: never raises ---------------------------------------------------
    def apply(self, update: ParamUpdate) -> bool:
        """Apply one update from a controller; False (and a note in `problems`) if refused."""
        try:
            self.set(update.target, update.value, smoothing_ms=update.smoothing_ms, immediate=update.immediate)
            return True
        except (KeyError, ValueError, TypeError) as exc:
            self.rejected += 1
            message = f"{update.source or 'update'}: {exc}"
            self.problems.append(message)
            log.debug("rejected update: %s", message)
            return False

    def apply_all(self, updates: Iterable[ParamUpdate]) -> int:
        return sum(self.apply(u) for u in updates)

    def step(self, dt: float) -> set[str]:
        """Advance every moving target by `dt` seconds; returns the names whose value changed."""
        scale = self._smoothed["smoothing"].value if "smoothing" in self._smoothed else 1.0
        changed: set[str] = set()
        for name in tuple(self._active):
            smoothed = self._smoothed[name]
            before = smoothed.value
            smoothed.step(None, dt, scale=scale)
            if smoothed.settled(self._eps[name]):
                smoothed.reset(smoothed.target)  # snap the last hair, and stop working on it
                self._active.discard(name)
            if smoothed.value != before:
                changed.add(name)
        return changed

    def values(self) -> dict[str, float]:
        """A snapshot of every current value, by name."""
        return {name: s.value for name, s in self._smoothed.items()}

    def targets(self) -> dict[str, float]:
        """A snapshot of every requested value, by name."""
        return {name: s.target for name, s in self._smoothed.items()}

    def jump_all(self, values: Mapping[str, float]) -> None:
        """Set many targets at once without smoothing (preset recall); unknown names are skipped."""
        for name, value in values.items():
            if name in self._smoothed and math.isfinite(value):
                self.set(name, value, immediate=True)

    @property
    def moving(self) -> bool:
        return bool(self._active)
