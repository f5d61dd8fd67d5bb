"""MIDI learn: what kind of control was moved, from the events it sent.

`detect(events)` is pure: a list of ControlEvents in, a `Detection` out (absolute CC, button CC,
note button, relative encoder and its encoding, 14-bit CC pair, pitch bend, channel pressure,
program change), the way ReaLearn and Mixxx's wizard guess a control's character from the
values it emits. The performer is asked to turn encoders clockwise first, which tells the
sign-magnitude encodings apart. `commands/learn.py` (learn_loop) asks for targets and writes bindings
with `learn_yaml.add_binding`, keeping the rest of the file (comments included) as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..common.clock import Clock
from ..common.errors import GanInstrumentError
from ..common.events import ControlEvent
from ..state.params import Registry, UnknownTargetError
from .transforms import ENCODINGS, decode_relative

# Relative encodings are told apart by value semantics (notes 4.4, transforms.ENCODINGS).
MAX_TICK = 15  # accelerated encoders send up to about this many ticks per message
_GROUP = {"control_change": "cc", "note_on": "note", "note_off": "note", "polytouch": "note",
          "pitchwheel": "pitchbend", "aftertouch": "aftertouch", "program_change": "program"}


class LearnError(GanInstrumentError, ValueError):
    """Nothing (usable) was moved, or the file cannot take the binding."""


@dataclass(frozen=True)
class Detection:
    """What was moved. `kind`: a mapping source kind (cc, cc14, note, pitchbend, aftertouch,
    program); `channel` 0..15 as on the wire; `number` (cc, cc14 MSB, note; None otherwise);
    `button` for a cc that only switches; `encoder` for a relative cc; `alternatives`: other
    encodings that fit the values as well; `notes`: what else the performer should know."""

    kind: str
    channel: int
    number: int | None = None
    button: bool = False
    encoder: str | None = None
    alternatives: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    def describe(self) -> str:
        ch = f"channel {self.channel + 1}"
        if self.kind == "cc14":
            return f"14-bit CC pair {self.number}/{self.number + 32}, {ch}"
        if self.encoder:
            return f"relative encoder ({self.encoder}) on CC {self.number}, {ch}"
        if self.kind == "cc":
            return f"{'button' if self.button else 'absolute'} CC {self.number}, {ch}"
        if self.kind == "note":
            return f"note {self.number} button, {ch}"
        return {"pitchbend": "pitch bend", "aftertouch": "channel pressure",
                "program": "program change"}[self.kind] + f", {ch}"


def detect(events: Sequence[ControlEvent]) -> Detection:
    """The control moved during `events` (MIDI events only; others are ignored). LearnError if none."""
    midi = [e for e in events if e.kind in _GROUP]
    if not midi:
        raise LearnError("nothing moved: no MIDI control events arrived")
    groups: dict[tuple[str, int, int], list[ControlEvent]] = {}
    for e in midi:
        kind = _GROUP[e.kind]
        groups.setdefault((kind, e.channel, e.number if kind in ("cc", "note") else 0), []).append(e)
    key = _pick(groups)
    kind, channel, number = key
    others = [k for k in groups if k != key]
    if kind == "cc":
        pair = _fourteen_bit(groups, key)
        if pair is not None:
            others = [k for k in others if k != ("cc", channel, pair + 32) and k != ("cc", channel, pair)]
            return Detection("cc14", channel, pair, notes=_ignored(others))
        return _classify_cc(channel, number, [int(e.value) for e in groups[key]], _ignored(others))
    if kind == "note":
        others = [k for k in others if k[0] != "note" or k[1] != channel or k[2] != number]
        return Detection("note", channel, number, notes=_ignored(others))
    return Detection(kind, channel, None, notes=_ignored(others))


def _pick(groups) -> tuple[str, int, int]:
    # A pad press wins over its pressure stream, a program change over anything; else the busiest.
    for kind in ("program", "note"):
        keys = [k for k in groups if k[0] == kind and (kind != "note" or _has_note_on(groups[k]))]
        if keys:
            return max(keys, key=lambda k: len(groups[k]))
    return max(groups, key=lambda k: len(groups[k]))  # dicts keep order: ties go to the first moved


def _has_note_on(events) -> bool:
    return any(e.kind in ("note_on", "note_off") for e in events)


def _fourteen_bit(groups, key) -> int | None:
    _, channel, number = key
    msb = number if number < 32 else number - 32
    if msb < 0 or msb > 31:
        return None
    a, b = groups.get(("cc", channel, msb)), groups.get(("cc", channel, msb + 32))
    if not a or not b:
        return None
    # Both halves moved (some controllers send the MSB only when it changes: LSB-heavy is fine).
    return msb if min(len(a), len(b)) >= 2 else None


def _ignored(keys) -> tuple[str, ...]:
    return tuple(f"also saw {k[0]} {k[2] if k[0] in ('cc', 'note') else ''} on channel {k[1] + 1} (ignored)"
                 .replace("  ", " ") for k in keys)


def _classify_cc(channel: int, number: int, values: list[int], notes: tuple[str, ...]) -> Detection:
    distinct = set(values)
    if (0 in distinct and len(distinct) == 2) or (distinct == {127} and len(values) <= 2):
        return Detection("cc", channel, number, button=True, notes=notes)
    encoders = _encodings(values)
    repeats = sum(a == b for a, b in zip(values, values[1:])) / max(len(values) - 1, 1)
    if encoders and len(values) >= 3 and (repeats >= 0.3 or (len(distinct) <= 3 and len(values) >= 4)):
        extra = () if len(encoders) == 1 else (
            "turn it clockwise and then back to tell the encodings apart",)
        return Detection("cc", channel, number, encoder=encoders[0], alternatives=tuple(encoders[1:]),
                         notes=notes + extra)
    return Detection("cc", channel, number, notes=notes)


def _encodings(values: list[int]) -> list[str]:
    """Encodings under which every value is a small non-zero tick, clockwise (positive) first."""
    fits = [name for name in ENCODINGS if all(0 < abs(decode_relative(v, name)) <= MAX_TICK for v in values)]
    clockwise_first = [name for name in fits if decode_relative(values[0], name) > 0]
    return clockwise_first or fits


# -- the terminal loop ------------------------------------------------------------------------
def resolve_name(registry: Registry, answer: str, names: Sequence[str]) -> str:
    """A target/action from what was typed: a name, or a number from the listed `names`."""
    answer = answer.strip()
    if answer.isdigit() and 1 <= int(answer) <= len(names):
        return names[int(answer) - 1]
    if answer in registry:
        return answer
    raise UnknownTargetError(answer, registry.suggest(answer, names), "target or action")


def capture(source, clock: Clock, *, wait_s: float = 30.0, quiet_s: float = 1.0, max_s: float = 8.0,
            sleep: Callable[[float], None] = time.sleep) -> list[ControlEvent]:
    """Events from `source.drain()`: wait up to `wait_s` for the first, then until `quiet_s`
    pass without any (or `max_s` in all)."""
    source.drain()  # whatever came before the question is not an answer
    events: list[ControlEvent] = []
    start = clock.now()
    first = last = None
    while True:
        new = source.drain()
        now = clock.now()
        if new:
            events.extend(new)
            first = now if first is None else first
            last = now
        if first is None and now - start > wait_s:
            return events
        if first is not None and (now - last >= quiet_s or now - first >= max_s):
            return events
        sleep(0.02)
