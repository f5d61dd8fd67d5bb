"""The registry: the one list of every name an instrument knows.

A target is a named number the performer plays (`psi`, `z.3`, `blend.b64`, `edit.L6_148_362`);
an action is a named event (`seed.next`, `z.random`, `preset.recall`); a signal is a value or
event a modulation source gives each frame (`rms_db`, `bands.low`, `onset.low`), which a
mapping's modulation routes follow. Mappings, presets, OSC, `targets` and `check` may name
only what the registry holds; everything else is rejected with a did-you-mean.

Each part declares its own names (the latent scene, the bender, the instrument's view and
presets, the show's actions, each modulation source's signals) and the instrument assembles
them in one place (instrument.facade), because the names depend on the loaded networks:
StyleGAN2 has blocks `b4`.., StyleGAN3 has layers `L0_36_512`...
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..common.errors import GanInstrumentError

TARGET_KINDS = ("continuous", "step", "choice")


class UnknownTargetError(GanInstrumentError, KeyError):
    """A name that is neither a target nor an action of this instrument."""

    def __init__(self, name: str, suggestions: list[str], what: str = "target"):
        self.name, self.suggestions = name, suggestions
        hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"unknown {what} {name!r}{hint}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


@dataclass(frozen=True)
class TargetSpec:
    """One performable number.

    `kind`: "continuous" (smoothed, any value in range), "step" (whole numbers, e.g. a seed;
    smoothed only where the owner makes transitions, e.g. seeds crossfade), "choice" (an index
    into `choices`, never smoothed). `smoothing` is a filter kind from `smoothing.FILTER_KINDS`
    and `smoothing_ms` its time. `preset`: whether presets store it. Values outside
    [minimum, maximum] are clamped unless `extrapolate` (network blends may go past 0 and 1).
    """

    name: str
    minimum: float
    maximum: float
    default: float
    unit: str = ""
    kind: str = "continuous"
    smoothing: str = "one_pole"
    smoothing_ms: float = 60.0
    preset: bool = True
    extrapolate: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"target {self.name}: kind must be one of {TARGET_KINDS}, got {self.kind!r}")
        if not (math.isfinite(self.minimum) and math.isfinite(self.maximum) and self.minimum <= self.maximum):
            raise ValueError(f"target {self.name}: bad range [{self.minimum}, {self.maximum}]")
        if not self.minimum <= self.default <= self.maximum:
            raise ValueError(f"target {self.name}: default {self.default} outside [{self.minimum}, {self.maximum}]")
        if self.kind == "choice" and len(self.choices) != int(self.maximum) + 1:
            raise ValueError(f"target {self.name}: a choice needs maximum = len(choices) - 1")

    def clamp(self, value: float) -> float:
        """The value this target takes when asked for `value` (NaN keeps nothing: returns default)."""
        if not math.isfinite(value):
            return self.default
        if self.kind in ("step", "choice"):
            value = float(round(value))
        if self.extrapolate and self.kind == "continuous":
            return float(value)
        return float(min(max(value, self.minimum), self.maximum))


@dataclass(frozen=True)
class ActionSpec:
    """A named event, e.g. `seed.next`; `takes_value` when it carries a number (`preset.recall`)."""

    name: str
    doc: str = ""
    takes_value: bool = False


@dataclass(frozen=True)
class SignalSpec:
    """A value or event a modulation source gives each frame, by name ("rms_db", "onset.low"):
    what a mapping's modulation route follows (its `feature:`). `event`: an event (an onset),
    not a value. `input_range`: the values that map to 0 and 1 unless the route gives its own.
    `source`: the modulation source that gives it ("audio")."""

    name: str
    source: str
    event: bool = False
    input_range: tuple[float, float] = (0.0, 1.0)
    doc: str = ""


@dataclass(frozen=True)
class Registry:
    """Every target, action and signal of one instrument, by name, in a stable order."""

    targets: Mapping[str, TargetSpec] = field(default_factory=dict)
    actions: Mapping[str, ActionSpec] = field(default_factory=dict)
    signals: Mapping[str, SignalSpec] = field(default_factory=dict)

    @classmethod
    def build(cls, targets: Iterable[TargetSpec], actions: Iterable[ActionSpec] = (),
              signals: Iterable[SignalSpec] = ()) -> Registry:
        t: dict[str, TargetSpec] = {}
        a: dict[str, ActionSpec] = {}
        s: dict[str, SignalSpec] = {}
        for spec in targets:
            if spec.name in t:
                raise ValueError(f"target {spec.name!r} registered twice")
            t[spec.name] = spec
        for spec in actions:
            if spec.name in a or spec.name in t:
                raise ValueError(f"action {spec.name!r} registered twice or clashes with a target")
            a[spec.name] = spec
        for spec in signals:
            if spec.name in s:
                raise ValueError(f"signal {spec.name!r} registered twice")
            s[spec.name] = spec
        return cls(targets=t, actions=a, signals=s)

    def with_names(self, targets: Iterable[TargetSpec] = (), actions: Iterable[ActionSpec] = ()) -> Registry:
        """This registry and `targets` and `actions` (a mapping's own: its LFOs' rate and depth,
        its envelopes' fire actions)."""
        targets, actions = list(targets), list(actions)
        if not targets and not actions:
            return self
        return Registry.build(list(self.targets.values()) + targets, list(self.actions.values()) + actions,
                              self.signals.values())

    def target(self, name: str) -> TargetSpec:
        try:
            return self.targets[name]
        except KeyError:
            raise UnknownTargetError(name, self.suggest(name, self.targets)) from None

    def action(self, name: str) -> ActionSpec:
        try:
            return self.actions[name]
        except KeyError:
            raise UnknownTargetError(name, self.suggest(name, self.actions), "action") from None

    def __contains__(self, name: str) -> bool:
        return name in self.targets or name in self.actions

    @staticmethod
    def suggest(name: str, names: Iterable[str], n: int = 3) -> list[str]:
        return difflib.get_close_matches(name, list(names), n=n, cutoff=0.6)
