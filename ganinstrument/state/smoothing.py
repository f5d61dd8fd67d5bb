"""Per-target smoothing: the performer moves a fader, the rendered parameter follows it smoothly.

Each filter is the exact solution of a linear system over a step of `dt` seconds with the
target held constant, so for piecewise-constant targets the result does not depend on the frame
rate: 30 steps of 1/30 s and 240 steps of 1/240 s land on the same value up to rounding.

- `NoSmoothing`: jumps to the target.
- `OnePole(time_ms)`: first order, time constant tau = time_ms / 1000 s;
  value' = target + (value - target) * exp(-dt / tau); covers 63 % of a step in tau, 99 % in
  4.6 tau.
- `CriticallyDamped(time_ms)`: second order (value and velocity), critically damped with natural
  frequency w = 2 / T, T = time_ms / 1000 s. From rest it never overshoots a step and approaches
  it monotonically; it covers 59 % of a step in T and 99 % in about 3.3 T, and it eases in
  (zero initial velocity) where the one-pole starts abruptly.

`time_ms = 0` means no smoothing for either. Every `advance` takes `scale`, the performer's global
`smoothing` target (1 = as configured, 0 = instant), which multiplies the time constant.

Robustness (the per-frame path never raises and never produces NaN): a non-finite target is
ignored, `dt <= 0` (or NaN) leaves the state unchanged, and a step long enough that the remaining
distance is below float precision (a stall, `dt = inf`) snaps to the target with zero velocity.

`Smoothed` holds one parameter's state (slots, floats); `SmoothedVector` holds many (float64
numpy arrays, e.g. 512 z dims) with one filter, computed in place with the same operations in
the same order, so its elements equal the scalar results bit for bit.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np

__all__ = [
    "FILTER_KINDS",
    "CriticallyDamped",
    "Filter",
    "NoSmoothing",
    "OnePole",
    "Smoothed",
    "SmoothedVector",
    "make_filter",
]

FILTER_KINDS = ("none", "one_pole", "critical")

# Beyond u = dt / tau = 50 the remaining fraction of a step, (1 + u) * exp(-u) < 1e-20, is below
# float64 precision, so the filters jump to the target instead. This also keeps a stall's huge
# dt (or inf) away from inf * 0 = NaN in the closed forms.
_SNAP_U = 50.0


class Filter(Protocol):
    """What `Smoothed` and `SmoothedVector` need from a filter. Filters are immutable."""

    kind: ClassVar[str]
    time_ms: float

    def advance(
        self, value: float, velocity: float, target: float, dt: float, *, scale: float = 1.0
    ) -> tuple[float, float]:
        """(value, velocity) after `dt` seconds towards `target`; velocity in units per second."""
        ...

    def advance_array(
        self,
        value: np.ndarray,
        velocity: np.ndarray,
        target: np.ndarray,
        dt: float,
        *,
        scale: float,
        scratch: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """`advance` on float64 arrays of one shape, in place; target entries must be finite.

        `scratch` is two float64 arrays and one bool array of the same shape, for temporaries.
        """
        ...

    def coast_s(self) -> float:
        """Seconds over which leftover velocity counts as distance when judging `settled`."""
        ...


def _check_time_ms(time_ms: float) -> float:
    if isinstance(time_ms, bool) or not isinstance(time_ms, numbers.Real):
        raise TypeError(f"time_ms must be a number of milliseconds, got {type(time_ms).__name__}")
    time_ms = float(time_ms)
    if not (time_ms >= 0.0 and math.isfinite(time_ms)):
        raise ValueError(f"time_ms must be a finite number of milliseconds >= 0, got {time_ms!r}")
    return time_ms


def _scaled_rate(rate: float, scale: float) -> float:
    """rate / scale, where scale <= 0 means instant (inf) and a non-finite scale counts as 1."""
    if not math.isfinite(scale):
        return rate
    if scale <= 0.0:
        return math.inf
    return rate / scale


class _ExactFilter:
    """The robustness rules of the module docstring, shared by the filters with a time constant.

    `advance` and `advance_array` ignore a step with dt <= 0 (or a non-finite target), scale the
    rate `_rate` by `scale`, and snap to the target at rest once u = dt * rate reaches `_SNAP_U`;
    below that the subclass's `_solve` / `_solve_array` take the exact step.
    """

    __slots__ = ()
    _rate: float  # [1/s]; inf if time 0

    def advance(
        self, value: float, velocity: float, target: float, dt: float, *, scale: float = 1.0
    ) -> tuple[float, float]:
        if not (dt > 0.0 and math.isfinite(target)):
            return value, velocity
        rate = self._rate if scale == 1.0 else _scaled_rate(self._rate, scale)
        u = dt * rate
        if u >= _SNAP_U:
            return target, 0.0
        return self._solve(value, velocity, target, dt, rate, u)

    def advance_array(self, value, velocity, target, dt, *, scale, scratch) -> None:
        if not dt > 0.0:
            return
        rate = self._rate if scale == 1.0 else _scaled_rate(self._rate, scale)
        u = dt * rate
        if u >= _SNAP_U:
            np.copyto(value, target)
            velocity.fill(0.0)
            return
        self._solve_array(value, velocity, target, dt, rate, u, scratch)

    def _solve(
        self, value: float, velocity: float, target: float, dt: float, rate: float, u: float
    ) -> tuple[float, float]:
        """(value, velocity) after the step, for u < _SNAP_U; an overflow snaps to the target."""
        raise NotImplementedError

    def _solve_array(self, value, velocity, target, dt, rate, u, scratch) -> None:
        """`_solve` in place on the arrays; overflowed entries are repaired (`_repair`)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class NoSmoothing:
    """Jumps to the target on every step with dt > 0."""

    kind: ClassVar[str] = "none"
    time_ms: float = field(default=0.0, init=False)

    def step(self, value: float, target: float, dt: float, *, scale: float = 1.0) -> float:
        """The value after `dt` seconds: the target (unless dt <= 0 or the target is not finite)."""
        return self.advance(value, 0.0, target, dt, scale=scale)[0]

    def advance(
        self, value: float, velocity: float, target: float, dt: float, *, scale: float = 1.0
    ) -> tuple[float, float]:
        if not (dt > 0.0 and math.isfinite(target)):
            return value, velocity
        return target, 0.0

    def advance_array(self, value, velocity, target, dt, *, scale, scratch) -> None:
        if dt > 0.0:
            np.copyto(value, target)
            velocity.fill(0.0)

    def coast_s(self) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class OnePole(_ExactFilter):
    """First-order exponential smoothing with time constant `time_ms` (milliseconds).

    Exact discretisation: alpha = 1 - exp(-dt / tau), so any split of the same wall time gives
    the same value. Velocity is not used (always returned as 0).
    """

    kind: ClassVar[str] = "one_pole"
    time_ms: float
    _rate: float = field(init=False, repr=False, compare=False)  # 1 / tau [1/s]; inf if time 0

    def __post_init__(self) -> None:
        time_ms = _check_time_ms(self.time_ms)
        object.__setattr__(self, "time_ms", time_ms)
        object.__setattr__(self, "_rate", 1000.0 / time_ms if time_ms > 0.0 else math.inf)

    def step(self, value: float, target: float, dt: float, *, scale: float = 1.0) -> float:
        """The value after `dt` seconds following `target` (pure; no state)."""
        return self.advance(value, 0.0, target, dt, scale=scale)[0]

    def _solve(self, value, velocity, target, dt, rate, u) -> tuple[float, float]:
        new = target + (value - target) * math.exp(-u)
        if not math.isfinite(new):  # only from overflow of value - target near +-1e308
            return target, 0.0
        return new, 0.0

    def _solve_array(self, value, velocity, target, dt, rate, u, scratch) -> None:
        x = scratch[0]
        np.subtract(value, target, out=x)
        x *= math.exp(-u)
        np.add(target, x, out=value)
        velocity.fill(0.0)
        _repair(value, velocity, target, scratch[2])

    def coast_s(self) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class CriticallyDamped(_ExactFilter):
    """Second-order, critically damped smoothing; `time_ms` T sets the natural frequency w = 2/T.

    State is value and velocity (units per second). Over a step with the target held constant
    the offset x = value - target follows the exact solution
        x(t) = (x0 + (v0 + w x0) t) exp(-w t),   v(t) = (v0 - w (v0 + w x0) t) exp(-w t),
    so results are independent of how the wall time is split into frames. From rest it does not
    overshoot; with velocity already carrying it towards the target fast enough it can (physics).
    """

    kind: ClassVar[str] = "critical"
    time_ms: float
    _rate: float = field(init=False, repr=False, compare=False)  # w [1/s]; inf if time 0

    def __post_init__(self) -> None:
        time_ms = _check_time_ms(self.time_ms)
        object.__setattr__(self, "time_ms", time_ms)
        object.__setattr__(self, "_rate", 2000.0 / time_ms if time_ms > 0.0 else math.inf)

    def _solve(self, value, velocity, target, dt, w, u) -> tuple[float, float]:
        if u == 0.0:  # w underflowed (absurd scale): free motion would coast forever; hold
            return value, velocity
        e = math.exp(-u)
        x = value - target
        b = velocity + w * x
        new = target + (x + b * dt) * e
        new_velocity = (velocity - b * u) * e
        if not (math.isfinite(new) and math.isfinite(new_velocity)):
            return target, 0.0
        return new, new_velocity

    def _solve_array(self, value, velocity, target, dt, w, u, scratch) -> None:
        # The same operations as `_solve`, in place; additions are written in the other order
        # where that saves a buffer (IEEE addition commutes exactly).
        if u == 0.0:
            return
        e = math.exp(-u)
        x, b, _ = scratch
        np.subtract(value, target, out=x)  # x = value - target
        np.multiply(x, w, out=b)
        b += velocity  # b = velocity + w * x
        np.multiply(b, dt, out=value)
        value += x
        value *= e
        value += target  # value = target + (x + b * dt) * e
        b *= u
        np.subtract(velocity, b, out=velocity)
        velocity *= e  # velocity = (velocity - b * u) * e
        _repair(value, velocity, target, scratch[2])

    def coast_s(self) -> float:
        return 0.0 if math.isinf(self._rate) else 1.0 / self._rate


def _repair(value: np.ndarray, velocity: np.ndarray, target: np.ndarray, mask: np.ndarray) -> None:
    """Snap entries that overflowed (only possible near +-1e308) to their target, at rest."""
    if np.isfinite(value, out=mask).all() and np.isfinite(velocity, out=mask).all():
        return
    bad = ~(np.isfinite(value) & np.isfinite(velocity))
    value[bad] = target[bad]
    velocity[bad] = 0.0


def make_filter(kind: str, time_ms: float) -> NoSmoothing | OnePole | CriticallyDamped:
    """A filter by name: kind in FILTER_KINDS ("none", "one_pole", "critical"), time in ms >= 0."""
    time_ms = _check_time_ms(time_ms)
    if kind == "none":
        return NoSmoothing()
    if kind == "one_pole":
        return OnePole(time_ms)
    if kind == "critical":
        return CriticallyDamped(time_ms)
    raise ValueError(f"smoothing kind must be one of {', '.join(FILTER_KINDS)}; got {kind!r}")


def _finite_float(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


class Smoothed:
    """One smoothed parameter: `value` follows `target` through `filter`.

    Owned by the engine thread. `value` and `target` are in the parameter's own units,
    `velocity` in units per second (0 except for second-order filters).
    """

    __slots__ = ("filter", "value", "velocity", "target")

    def __init__(self, filter: Filter, value: float = 0.0):
        self.filter = filter
        self.value = _finite_float("value", value)
        self.velocity = 0.0
        self.target = self.value

    def step(self, target: float | None, dt: float, *, scale: float = 1.0) -> float:
        """Advance `dt` seconds towards `target` and return the new value.

        `target=None` keeps the last target; a non-finite target is ignored (the last finite
        target stands). `scale` multiplies the time constant (0 = instant).
        """
        if target is not None and math.isfinite(target):
            self.target = float(target)
        self.value, self.velocity = self.filter.advance(
            self.value, self.velocity, self.target, dt, scale=scale
        )
        return self.value

    def reset(self, value: float) -> None:
        """Jump to `value` (value and target), at rest: preset recall, unsmoothed actions."""
        self.value = self.target = _finite_float("value", value)
        self.velocity = 0.0

    def settled(self, eps: float = 1e-6) -> bool:
        """True when within `eps` of the target and any velocity would carry it no further
        than `eps` (over the filter's coasting time, 1/w for the second order)."""
        return (
            abs(self.value - self.target) <= eps
            and abs(self.velocity) * self.filter.coast_s() <= eps
        )

    def __repr__(self) -> str:
        return (
            f"Smoothed({self.filter!r}, value={self.value!r}, target={self.target!r}, "
            f"velocity={self.velocity!r})"
        )


class SmoothedVector:
    """Many parameters with one filter, as float64 arrays: e.g. 512 z dims or the z groups.

    Steps work in place with preallocated scratch, so the per-frame path allocates nothing
    proportional to the size. `value`, `target` and `velocity` are read-only views of the
    live state (they change on the next step; copy to keep). Owned by the engine thread.
    """

    __slots__ = ("filter", "_value", "_velocity", "_target", "_scratch", "_views")

    def __init__(self, filter: Filter, value: np.ndarray | float | list, *, shape=None):
        """`value`: the initial values (array-like); a scalar needs `shape`."""
        value = np.array(value, dtype=np.float64)  # a copy: the state is ours
        if shape is not None:
            value = np.array(np.broadcast_to(value, shape), dtype=np.float64)
        if not np.isfinite(value).all():
            raise ValueError("value must be finite in every entry")
        self.filter = filter
        self._value = value
        self._velocity = np.zeros_like(value)
        self._target = value.copy()
        self._scratch = (np.empty_like(value), np.empty_like(value), np.empty(value.shape, bool))
        views = []
        for arr in (self._value, self._target, self._velocity):
            view = arr.view()
            view.flags.writeable = False
            views.append(view)
        self._views = tuple(views)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._value.shape

    def __len__(self) -> int:
        return len(self._value)

    @property
    def value(self) -> np.ndarray:
        """Current values (read-only live view)."""
        return self._views[0]

    @property
    def target(self) -> np.ndarray:
        """Current targets (read-only live view)."""
        return self._views[1]

    @property
    def velocity(self) -> np.ndarray:
        """Current velocities in units per second (read-only live view)."""
        return self._views[2]

    def set_target(self, target: np.ndarray | float) -> None:
        """Take new targets (broadcast to the shape); non-finite entries are ignored."""
        target = np.asarray(target, dtype=np.float64)
        mask = self._scratch[2]
        try:
            np.isfinite(target, out=mask)
        except ValueError:
            raise ValueError(
                f"target shape {target.shape} does not fit the smoothed shape {self.shape}"
            ) from None
        np.copyto(self._target, target, where=mask)

    def step(
        self, target: np.ndarray | float | None, dt: float, *, scale: float = 1.0
    ) -> np.ndarray:
        """Advance `dt` seconds towards `target` (None keeps the last); returns `value`."""
        if target is not None:
            self.set_target(target)
        self.filter.advance_array(
            self._value, self._velocity, self._target, dt, scale=scale, scratch=self._scratch
        )
        return self._views[0]

    def reset(self, value: np.ndarray | float) -> None:
        """Jump to `value` (broadcast to the shape), at rest."""
        value = np.asarray(value, dtype=np.float64)
        if not np.isfinite(value).all():
            raise ValueError("value must be finite in every entry")
        np.copyto(self._value, value)
        np.copyto(self._target, value)
        self._velocity.fill(0.0)

    def settled(self, eps: float = 1e-6) -> bool:
        """True when every entry is settled in the sense of `Smoothed.settled`."""
        x = self._scratch[0]
        np.subtract(self._value, self._target, out=x)
        np.abs(x, out=x)
        if x.size and x.max() > eps:
            return False
        coast = self.filter.coast_s()
        if coast == 0.0 or not x.size:
            return True
        np.abs(self._velocity, out=x)
        return bool(x.max() * coast <= eps)

    def __repr__(self) -> str:
        return f"SmoothedVector({self.filter!r}, shape={self.shape})"
