"""The router: ControlEvents in, ParamUpdates out, through a compiled mapping.

    router = Router(load_mapping(path, inst.registry), inst.registry, clock,
                    current=inst.state.target)
    inst.on_recall.append(router.rearm)
    for update in router.route(events_drained_this_frame):
        inst.apply(update)

The engine thread owns a Router (no locks). `route` never raises: messages that are garbage
(bad numbers, unknown kinds) or bound to nothing are counted in `stats` and skipped.

Per call, continuous targets are coalesced to their latest value (one update per target),
while every button edge and action is kept in order and relative ticks accumulate. 14-bit
pairs and NRPN values are assembled per channel across calls (either half may come first)
and sent once per call. `current(name)` must return the target's requested value (where
smoothing is heading, `State.target`), which soft takeover compares against and relative
encoders add to; without it the router remembers what it sent (else the default).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..common.clock import Clock, MonotonicClock
from ..common.events import ControlEvent, ParamUpdate
from ..state.params import Registry
from . import takeover as tk
from . import transforms as tf
from .names import NRPN_CCS, is_glob
from .schema import Binding, Mapping, MappingError, Problem, Source

log = logging.getLogger(__name__)

__all__ = ["Pickup", "Router", "RouterStats"]


@dataclass(frozen=True)
class RouterStats:
    """What the router has seen since it was made (a snapshot: `Router.stats`)."""

    events: int = 0  # ControlEvents routed
    updates: int = 0  # ParamUpdates made
    unbound: int = 0  # events no binding wants
    garbage: int = 0  # malformed events (bad numbers, unknown kinds)
    ignored: int = 0  # MIDI system messages (clock, active sensing, ...)
    takeover_ignored: int = 0  # control moves soft takeover held back
    errors: int = 0  # events whose routing failed (a bug: the traceback is in the --debug log)


@dataclass(frozen=True)
class Pickup:
    """A control soft takeover holds back right now: it does nothing until it reaches its
    target's value (`Router.pickups`)."""

    target: str
    control: str  # the control, as the mapping names it ("cc 3 ch 1")
    control_value: float  # where the control is, in the target's units
    target_value: float  # where it must go to pick the target up

    def describe(self) -> str:
        return f"{self.target} ({self.control}) {self.control_value:.3g} -> {self.target_value:.3g}"

_MIDI_KINDS = {"control_change", "note_on", "note_off", "pitchwheel", "aftertouch", "polytouch", "program_change"}
_IGNORED_KINDS = {"feature", "clock", "start", "stop", "continue", "songpos", "song_select", "sysex",
                  "active_sensing", "reset", "quarter_frame", "tune_request"}


class _Bound:
    """A binding compiled against the registry: its output range, step and live state."""

    __slots__ = ("b", "lo", "hi", "step", "scope", "label", "takes_value", "take", "name", "sent", "away")

    def __init__(self, b: Binding, registry: Registry, scope):
        self.b, self.scope, self.name = b, scope, b.name
        self.label = b.source.describe()
        self.take = tk.TakeoverState()
        self.sent: float | None = None  # what this binding last set its target to (clamped)
        self.away: float | None = None  # where the control is while takeover holds it back
        self.takes_value = False
        self.lo = self.hi = self.step = 0.0
        if b.target is not None:
            spec = registry.targets[b.target]
            self.lo, self.hi = b.output_range(registry)
            whole = spec.kind in ("step", "choice")
            self.step = b.step if b.step is not None else (1.0 if whole else abs(self.hi - self.lo) / 128.0)
        else:
            self.takes_value = registry.actions[b.action].takes_value


class _PageButton:
    __slots__ = ("bank", "page", "delta", "label")

    def __init__(self, bank: int, page: int | None, delta: int, label: str):
        self.bank, self.page, self.delta, self.label = bank, page, delta, label


class _Out:
    """Updates of one call: the latest value per continuous target, every edge and action."""

    def __init__(self):
        self.items: list[ParamUpdate | None] = []
        self.latest: dict[str, int] = {}

    def value(self, update: ParamUpdate) -> None:
        i = self.latest.get(update.target)
        if i is not None:
            self.items[i] = None
        self.latest[update.target] = len(self.items)
        self.items.append(update)

    def edge(self, update: ParamUpdate) -> None:
        self.items.append(update)

    def result(self) -> list[ParamUpdate]:
        return [u for u in self.items if u is not None]


class Router:
    """Route ControlEvents through `mapping` (loaded with `registry`) to ParamUpdates."""

    def __init__(self, mapping: Mapping, registry: Registry, clock: Clock | None = None, *,
                 current: Callable[[str], float] | None = None,
                 threshold: float = tk.THRESHOLD, whip_s: float = tk.WHIP_S):
        unresolved = [b for b in mapping.all_bindings() if is_glob(b.target)
                      or (b.target is not None and b.target not in registry.targets)
                      or (b.action is not None and b.action not in registry.actions)]
        if unresolved:
            hint = "load the mapping with the instrument's registry"
            raise MappingError(mapping.path, [Problem(b.line, f"{b.name!r} is not a name of this instrument", hint)
                                              for b in unresolved])
        self.mapping, self.registry = mapping, registry
        self.clock = clock or MonotonicClock()
        self._current = current
        self.threshold, self.whip_s = threshold, whip_s
        self._counts: Counter[str] = Counter()  # RouterStats' fields
        self.on_page: list[Callable[[str, str], None]] = []  # (bank, page) after a page change, e.g. LEDs
        self._table: dict[tuple, list] = {}
        self._bound: list[_Bound] = []
        self._nrpn_channels: set[int] = set()
        self._pages = [0] * len(mapping.banks)
        self._sent: dict[str, float] = {}
        self._pending: dict[str, float] = {}
        self._pairs: dict[tuple, list] = {}  # (ch, msb cc) -> [msb, lsb]
        self._nrpn: dict[int, list] = {}  # ch -> [param msb, param lsb, rpn selected]
        self._nrpn_data: dict[tuple, list] = {}  # (ch, param) -> [msb, lsb]
        self._dirty: dict[tuple, float] = {}  # ("cc14"|"nrpn", ch, number) -> timestamp
        for b in mapping.bindings:
            self._add(b, None)
        for bi, bank in enumerate(mapping.banks):
            for pi, page in enumerate(bank.pages):
                for b in page.bindings:
                    self._add(b, (bi, pi))
                if page.select is not None:
                    self._add_button(page.select, _PageButton(bi, pi, 0, f"{bank.name}: {page.name}"))
            for src, delta in ((bank.next, 1), (bank.prev, -1)):
                if src is not None:
                    self._add_button(src, _PageButton(bi, None, delta, bank.name))

    # -- compiling -----------------------------------------------------------------------------
    @staticmethod
    def _key(kind: str, source: Source, number=None):
        ch = -1 if source.channel is None else source.channel
        return (kind, ch, -1 if number is None else number)

    def _add(self, b: Binding, scope) -> None:
        bound = _Bound(b, self.registry, scope)
        self._bound.append(bound)
        s = b.source
        if s.kind == "cc14":
            self._table.setdefault(self._key("cc", s, s.number), []).append((bound, "msb"))
            self._table.setdefault(self._key("cc", s, s.lsb), []).append((bound, "lsb"))
            self._table.setdefault(self._key("cc14", s, s.number), []).append((bound, "value"))
        elif s.kind == "osc":
            self._table.setdefault(("osc", s.address), []).append((bound, "value"))
        else:
            if s.kind == "nrpn":
                self._nrpn_channels.add(-1 if s.channel is None else s.channel)
            self._table.setdefault(self._key(s.kind, s, s.number), []).append((bound, "value"))

    def _add_button(self, s: Source, button: _PageButton) -> None:
        key = ("osc", s.address) if s.kind == "osc" else self._key(s.kind, s, s.number)
        self._table.setdefault(key, []).append((button, "page"))

    def _lookup(self, kind: str, ch: int, number: int) -> list:
        found = self._table.get((kind, ch, number), [])
        anych = self._table.get((kind, -1, number))
        if anych:
            found = found + anych
        if not found and kind in ("program", "polytouch"):
            found = self._table.get((kind, ch, -1), []) + self._table.get((kind, -1, -1), [])
        return found

    # -- public --------------------------------------------------------------------------------
    def route(self, events: Iterable[ControlEvent]) -> list[ParamUpdate]:
        """Turn this frame's events (in arrival order) into updates; never raises."""
        out = _Out()
        self._pending = {}
        for ev in events:
            self._counts["events"] += 1
            try:
                self._event(ev, out)
            except Exception:  # the show goes on: count it, keep the traceback for --debug logs
                self._counts["errors"] += 1
                log.debug("router: event %r failed", ev, exc_info=True)
        try:
            self._flush(out)
        except Exception:
            self._counts["errors"] += 1
            log.debug("router: flushing 14-bit values failed", exc_info=True)
        updates = out.result()
        self._counts["updates"] += len(updates)
        return updates

    @property
    def stats(self) -> RouterStats:
        return RouterStats(**self._counts)

    def pickups(self) -> list[Pickup]:
        """The controls soft takeover holds back now (their last move was ignored), on the
        active pages, with where each is and where it must go; for the HUD."""
        out = []
        for bound in self._bound:
            if bound.away is None or not self._live(bound):
                continue
            value = self._value_now(bound.name)
            if abs(value - bound.away) > self.threshold * abs(bound.hi - bound.lo):  # (else: met
                out.append(Pickup(bound.name, bound.label, bound.away, value))  # from elsewhere)
        return out

    def rearm(self, targets: Iterable[str] | None = None, forget_position: bool = False) -> None:
        """Re-arm soft takeover (after a preset recall: `inst.on_recall.append(router.rearm)`;
        after a reconnect pass `forget_position=True`)."""
        names = None if targets is None else set(targets)
        for bound in self._bound:
            if names is None or bound.name in names:
                bound.take = tk.rearm(bound.take, forget_position)
                if forget_position:
                    bound.away = None  # where it was is no longer known

    @property
    def pages(self) -> dict[str, str]:
        """The active page of each bank, by bank name."""
        return {bank.name: bank.pages[i].name for bank, i in zip(self.mapping.banks, self._pages)}

    def set_page(self, bank: str, page: str) -> None:
        """Make `page` of `bank` active (KeyError for unknown names)."""
        for bi, b in enumerate(self.mapping.banks):
            if b.name == bank:
                for pi, p in enumerate(b.pages):
                    if p.name == page:
                        return self._switch(bi, pi)
                raise KeyError(f"bank {bank!r} has no page {page!r}")
        raise KeyError(f"no bank {bank!r}")

    def active_bindings(self) -> list[Binding]:
        """Bindings live now (global ones and the active pages'), e.g. for LED feedback."""
        return [bound.b for bound in self._bound if self._live(bound)]

    # -- events --------------------------------------------------------------------------------
    def _event(self, ev: ControlEvent, out: _Out) -> None:
        kind = ev.kind
        if kind == "osc":
            return self._osc(ev, out)
        if kind not in _MIDI_KINDS:
            self._counts["ignored" if kind in _IGNORED_KINDS else "garbage"] += 1
            return
        ch, number, value = ev.channel, ev.number, ev.value
        if not (isinstance(ch, int) and 0 <= ch <= 15 and isinstance(number, int) and 0 <= number <= 127
                and isinstance(value, (int, float)) and math.isfinite(value)):
            self._counts["garbage"] += 1
            return
        lo, hi = (-8192, 8191) if kind == "pitchwheel" else (0, 127)
        if not lo <= value <= hi:
            self._counts["garbage"] += 1
            return
        now = ev.timestamp if ev.timestamp > 0 else self.clock.now()
        if kind == "control_change":
            if number in NRPN_CCS and (ch in self._nrpn_channels or -1 in self._nrpn_channels):
                return self._nrpn_cc(ch, number, int(value), now, out)
            entries = self._lookup("cc", ch, number)
        elif kind in ("note_on", "note_off"):
            entries = self._lookup("note", ch, number)
        elif kind == "pitchwheel":
            entries = self._lookup("pitchbend", ch, -1)
        elif kind == "aftertouch":
            entries = self._lookup("aftertouch", ch, -1)
        elif kind == "polytouch":
            entries = self._lookup("polytouch", ch, number)
        else:
            entries = self._lookup("program", ch, number)
        hit = False
        for bound, role in entries:
            if role == "page":
                hit = True
                if tf.press_of(kind, value):
                    self._page_button(bound)
                continue
            if not self._live(bound):
                continue
            hit = True
            if role in ("msb", "lsb"):
                pair = self._pairs.setdefault((ch, bound.b.source.number), [0, 0])
                pair[0 if role == "msb" else 1] = int(value)
                self._dirty[("cc14", ch, bound.b.source.number)] = now
            else:
                self._deliver(bound, kind, number if kind == "program_change" else value, now, out)
        if not hit:
            self._counts["unbound"] += 1

    def _osc(self, ev: ControlEvent, out: _Out) -> None:
        value = ev.value
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            self._counts["garbage"] += 1
            return
        entries = self._table.get(("osc", ev.address), [])
        hit = False
        for bound, role in entries:
            if role == "page":
                hit = True
                if value >= 0.5:
                    self._page_button(bound)
            elif self._live(bound):
                hit = True
                self._deliver(bound, "osc", value, ev.timestamp if ev.timestamp > 0 else self.clock.now(), out)
        if not hit:
            self._counts["unbound"] += 1

    def _nrpn_cc(self, ch: int, number: int, value: int, now: float, out: _Out) -> None:
        sel = self._nrpn.setdefault(ch, [None, None, False])
        if number in (99, 98):
            sel[0 if number == 99 else 1] = value
            sel[2] = False
            return
        if number in (101, 100):  # an RPN is selected: data entries are not for our NRPN bindings
            sel[2] = True
            return
        if sel[2] or sel[0] is None or sel[1] is None:
            self._counts["unbound"] += 1
            return
        param = tf.combine14(sel[0], sel[1])
        entries = [(b, r) for b, r in self._lookup("nrpn", ch, param) if self._live(b)]
        if not entries:
            self._counts["unbound"] += 1
            return
        if number in (96, 97):  # data increment / decrement: one 7-bit notch of the range
            for bound, _ in entries:
                if bound.b.target is not None:
                    base = self._value_now(bound.name)
                    self._send(bound, base + (bound.hi - bound.lo) / 127.0 * (1 if number == 96 else -1), out)
            return
        data = self._nrpn_data.setdefault((ch, param), [0, 0])
        data[0 if number == 6 else 1] = value
        if number == 6 or entries[0][0].b.bits == 14:
            self._dirty[("nrpn", ch, param)] = now

    def _flush(self, out: _Out) -> None:
        dirty, self._dirty = self._dirty, {}
        for (kind, ch, number), now in dirty.items():
            if kind == "cc14":
                msb, lsb = self._pairs[(ch, number)]
                entries = [b for b, role in self._lookup("cc14", ch, number) if role == "value"]
                x = tf.normalize14(tf.combine14(msb, lsb))
            else:
                msb, lsb = self._nrpn_data[(ch, number)]
                entries = [b for b, _ in self._lookup("nrpn", ch, number)]
                x14, x7 = tf.normalize14(tf.combine14(msb, lsb)), tf.normalize7(msb)
            for bound in entries:
                if self._live(bound):
                    if kind == "nrpn":
                        x = x14 if bound.b.bits == 14 else x7
                    self._continuous(bound, x, now, out)

    # -- one binding -----------------------------------------------------------------------------
    def _live(self, bound) -> bool:
        scope = bound.scope
        return scope is None or self._pages[scope[0]] == scope[1]

    def _deliver(self, bound: _Bound, kind: str, value: float, now: float, out: _Out) -> None:
        b = bound.b
        mode = b.mode
        if kind == "program_change":  # `value` is the program number here; actions only (schema)
            self._action(bound, value + b.offset, now, out)
            return
        if mode == "continuous":
            if kind == "pitchwheel":
                x = tf.normalize_pitchbend(value)
            elif kind == "osc":
                x = tf.normalize_range(value, *b.input_range)
            else:
                x = tf.normalize7(value)
            return self._continuous(bound, x, now, out)
        if mode == "relative":
            ticks = tf.decode_relative(int(value), b.encoder)
            if ticks:
                base = self._value_now(bound.name)
                self._send(bound, base + (-ticks if b.invert else ticks) * bound.step, out)
            return
        pressed = tf.press_of(kind, value)
        if b.action is not None:
            if pressed:
                self._action(bound, b.value, now, out)
            return
        lo, hi = bound.lo, bound.hi
        if mode == "momentary":
            if pressed and b.velocity and kind == "note_on":
                hi = lo + (hi - lo) * tf.normalize7(value)
            self._edge(bound, hi if pressed else lo, out)
        elif mode == "toggle" and pressed:
            self._edge(bound, tf.toggle_value(self._value_now(bound.name), lo, hi), out)
        elif mode == "trigger" and pressed:
            self._edge(bound, b.value, out)

    def _action(self, bound: _Bound, value, now: float, out: _Out) -> None:
        arg = value if bound.takes_value and value is not None else 0.0
        out.edge(ParamUpdate(bound.name, float(arg), action=True, source=bound.label, quantize=bound.b.quantize,
                             time_s=now))

    def _continuous(self, bound: _Bound, x: float, now: float, out: _Out) -> None:
        b = bound.b
        y = tf.shape(x, lo=bound.lo, hi=bound.hi, curve_name=b.curve, k=b.curve_k, inverted=b.invert,
                     dead=b.deadzone, bipolar=b.bipolar)
        if b.takeover != "none":
            lo, hi = bound.lo, bound.hi
            current = self._value_now(bound.name)
            if bound.sent is not None and abs(current - bound.sent) > self.threshold * abs(hi - lo):
                bound.take = tk.rearm(bound.take)  # moved elsewhere (recall, another control, a script)
            v_n, c_n = tf.from_range(y, lo, hi), tf.from_range(current, lo, hi)
            out_n, bound.take = tk.decide(b.takeover, bound.take, v_n, c_n, now,
                                          threshold=self.threshold, whip_s=self.whip_s)
            if out_n is None:
                self._counts["takeover_ignored"] += 1
                bound.away = y
                return
            bound.away = None
            if out_n != v_n:
                y = tf.to_range(out_n, lo, hi)
        self._send(bound, y, out)

    def _send(self, bound: _Bound, value: float, out: _Out) -> None:
        spec = self.registry.targets[bound.name]
        if bound.b.mode == "relative":
            value = min(max(value, min(bound.lo, bound.hi)), max(bound.lo, bound.hi))
        self._pending[bound.name] = value
        self._sent[bound.name] = bound.sent = spec.clamp(value)
        out.value(ParamUpdate(bound.name, value, smoothing_ms=bound.b.smoothing_ms, source=bound.label))

    def _edge(self, bound: _Bound, value: float, out: _Out) -> None:
        spec = self.registry.targets[bound.name]
        self._pending[bound.name] = value
        self._sent[bound.name] = bound.sent = spec.clamp(value)
        out.edge(ParamUpdate(bound.name, value, smoothing_ms=bound.b.smoothing_ms, source=bound.label))

    def _value_now(self, name: str) -> float:
        if name in self._pending:
            return self._pending[name]
        if self._current is not None:
            try:
                value = float(self._current(name))
                if math.isfinite(value):
                    return value
            except Exception:
                log.debug("router: current(%r) failed", name, exc_info=True)
        if name in self._sent:
            return self._sent[name]
        return self.registry.targets[name].default

    # -- banks -----------------------------------------------------------------------------------
    def _page_button(self, button: _PageButton) -> None:
        n = len(self.mapping.banks[button.bank].pages)
        page = button.page if button.page is not None else (self._pages[button.bank] + button.delta) % n
        self._switch(button.bank, page)

    def _switch(self, bank: int, page: int) -> None:
        if self._pages[bank] == page:
            return
        self._pages[bank] = page
        for bound in self._bound:
            if bound.scope == (bank, page):
                bound.take = tk.rearm(bound.take, forget_position=True)
                bound.away = None  # it may have moved on the other page
        b = self.mapping.banks[bank]
        for callback in self.on_page:
            try:
                callback(b.name, b.pages[page].name)
            except Exception:
                log.debug("router: on_page callback failed", exc_info=True)
