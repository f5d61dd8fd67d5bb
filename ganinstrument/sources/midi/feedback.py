"""LED / motor-fader / LED-ring feedback: the controller shows the instrument's current values.

The engine calls `update()` once per frame (after routing and smoothing) and `observe(events)`
with what it drained from the inputs. Each binding turns a target's value into a raw MIDI value
by its range; only values that differ from what the hardware shows are sent, at most
`max_per_update` per call and `rate_per_s` overall (a burst of 60 changed LEDs goes out over a few
frames instead of flooding a USB controller). A control the performer moved within `echo_s`
is left alone: sending back a value that just came in fights a motor fader under a finger and
makes LED rings flicker. `resend_all()` (thread-safe: only sets a flag) re-sends everything on the
next updates: after a reconnect (wire it to the output's on_change) or a preset recall.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ...common.clock import Clock, MonotonicClock
from ...common.events import ControlEvent
from ...mapping.transforms import curve_inverse

_KINDS = {"cc": "control_change", "control_change": "control_change", "note": "note_on",
          "note_on": "note_on", "note_off": "note_on", "pitchwheel": "pitchwheel",
          "pitchbend": "pitchwheel"}
_STATUS = {"control_change": 0xB0, "note_on": 0x90, "pitchwheel": 0xE0}


@dataclass(frozen=True)
class FeedbackBinding:
    """Which control shows which target: the target's [lo, hi] maps onto 0..127 (pitchwheel
    -8192..8191, for motor faders that use it). lo > hi inverts. kind: "cc", "note",
    "pitchwheel" or the mido names. Channels are 0..15 here, as on the wire."""

    kind: str
    channel: int
    number: int
    target: str
    lo: float = 0.0
    hi: float = 1.0
    curve: str = "linear"  # the binding's curve and invert, undone so the LED shows the control's position
    curve_k: float | None = None
    invert: bool = False

    def __post_init__(self) -> None:
        kind = _KINDS.get(self.kind)
        if kind is None:
            raise ValueError(f"feedback kind must be one of {sorted(_KINDS)}, got {self.kind!r}")
        object.__setattr__(self, "kind", kind)
        if not 0 <= self.channel <= 15:
            raise ValueError(f"feedback channel must be in range 0..15, got {self.channel}")
        if not 0 <= self.number <= 127:
            raise ValueError(f"feedback number must be in range 0..127, got {self.number}")
        if self.lo == self.hi:
            raise ValueError(f"feedback range for {self.target!r} is empty: lo == hi == {self.lo}")

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.kind, self.channel, 0 if self.kind == "pitchwheel" else self.number)

    def raw(self, value: float) -> int:
        """The raw MIDI value showing `value` (clamped into the range)."""
        x = (value - self.lo) / (self.hi - self.lo)
        x = 0.0 if not math.isfinite(x) else min(max(x, 0.0), 1.0)
        if self.curve != "linear":
            x = curve_inverse(x, self.curve, self.curve_k)
        if self.invert:
            x = 1.0 - x
        if self.kind == "pitchwheel":
            return round(x * 16383) - 8192
        return round(x * 127)

    def message(self, raw: int) -> list[int]:
        status = _STATUS[self.kind] | self.channel
        if self.kind == "pitchwheel":
            v = raw + 8192
            return [status, v & 0x7F, v >> 7]
        return [status, self.number, raw]


def from_bindings(bindings, registry) -> list[FeedbackBinding]:
    """Feedback for the mapping's bindings (schema.Binding) that can show a value: cc, note and
    pitch bend bound to a target, not relative encoders. Pass the live ones (the router's
    `active_bindings()`) and call `resend_all()` when the page changes. A binding on any
    channel shows on channel 1, where controllers listen by default."""
    out = []
    for b in bindings:
        s = b.source
        if b.target is None or b.mode == "relative" or s.kind not in ("cc", "note", "pitchbend"):
            continue
        if s.kind != "pitchbend" and s.number is None:
            continue
        spec = registry.targets[b.target]
        lo, hi = b.range if b.range is not None else (spec.minimum, spec.maximum)
        if lo == hi:
            continue
        out.append(FeedbackBinding(s.kind, s.channel or 0, s.number or 0, b.target, lo, hi,
                                   b.curve, b.curve_k, b.invert))
    return out


def _event_key(event: ControlEvent) -> tuple[str, int, int] | None:
    kind = _KINDS.get(event.kind)
    if kind is None:
        return None
    return (kind, event.channel, 0 if kind == "pitchwheel" else event.number)


class MidiFeedback:
    """Sends the current values of `bindings`' targets to `output` (anything with `send(bytes) -> bool`).

    `values()` returns the current target values (name -> value), e.g. the instrument state's
    requested values. Engine thread only, except `resend_all`.
    """

    def __init__(self, output, bindings: Iterable[FeedbackBinding | tuple], values: Callable[[], Mapping[str, float]],
                 *, clock: Clock | None = None, max_per_update: int = 16, rate_per_s: float = 1000.0,
                 echo_s: float = 0.25):
        self.output, self.values = output, values
        self.bindings = tuple(b if isinstance(b, FeedbackBinding) else FeedbackBinding(*b) for b in bindings)
        self.clock = clock or MonotonicClock()
        self.max_per_update, self.rate_per_s, self.echo_s = int(max_per_update), float(rate_per_s), float(echo_s)
        self.shown: dict[tuple[str, int, int], int] = {}  # what the hardware shows, as far as we know
        self._touched: dict[tuple[str, int, int], float] = {}
        self._tokens = float(max_per_update)
        self._last_t = self.clock.now()
        self._start = 0
        self._resend = True  # the first updates send everything
        self.sent = 0

    @property
    def messages(self):
        """The output port's news (missing, in use)."""
        return self.output.messages

    def hud_lines(self) -> dict[str, str]:
        return {}

    def close(self, timeout_s: float = 2.0) -> bool:
        """Close the output port."""
        return self.output.close(timeout_s)

    def resend_all(self) -> None:
        """Send every binding again over the next updates (any thread: only sets a flag)."""
        self._resend = True

    def observe(self, events: Iterable[ControlEvent]) -> None:
        """Note what the performer just moved: it shows that value, and is left alone a moment."""
        for event in events:
            key = _event_key(event)
            if key is None:
                continue
            value = 0 if event.kind == "note_off" else int(event.value)
            self.shown[key] = value
            self._touched[key] = event.timestamp

    def update(self) -> int:
        """Send what changed, within the throttle; returns how many messages went out."""
        now = self.clock.now()
        self._tokens = min(float(self.max_per_update), self._tokens + (now - self._last_t) * self.rate_per_s)
        self._last_t = now
        if self._resend:
            self._resend = False
            self.shown.clear()
        values = self.values()
        n, sent, stopped_at = len(self.bindings), 0, 0
        for i in range(n):
            if self._tokens < 1.0:
                stopped_at = i  # the next update starts here: round robin, nobody starves
                break
            binding = self.bindings[(self._start + i) % n]
            value = values.get(binding.target)
            if value is None:
                continue
            key = binding.key
            raw = binding.raw(value)
            if self.shown.get(key) == raw or now - self._touched.get(key, -math.inf) < self.echo_s:
                continue
            if not self.output.send(binding.message(raw)):
                break  # no port, or the poller holds it: try again next frame
            self.shown[key] = raw
            self._tokens -= 1.0
            sent += 1
        if n:
            self._start = (self._start + stopped_at) % n
        self.sent += sent
        return sent
