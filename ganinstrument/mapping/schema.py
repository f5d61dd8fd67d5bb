"""Mapping files: YAML that binds controls (MIDI, OSC) and audio features to registry targets.

A file is read with PyYAML's safe loader (keeping line numbers) into the frozen dataclasses
below, at load time; nothing downstream sees a raw dict. Every problem in a file is reported
at once in one `MappingError`, each as `file:line: what is wrong, what was expected (hint)`.
A mapping that has any problem is not returned at all, so it is never half-applied.

    schema_version: 1
    info: {name: Korg nanoKONTROL2, author: ganinstrument, device: Korg nanoKONTROL2,
           source: "mixxxdj/mixxx res/controllers/Korg nanoKONTROL 2.midi.xml"}
    device: {input: nanokontrol2, output: nanokontrol2}   # substring, or /regex/
    defaults: {channel: 1, takeover: pickup}              # channels are 1..16 in files
    templates:
      knob: {curve: exp, smoothing_ms: 80}
    bindings:
      - {cc: 0..7, target: "z.{i}"}                        # 8 faders -> z.0..z.7, one line
      - {cc: 41, action: preset.next}                     # a button fires an action on press
      - {note: 36..43, action: preset.recall, value: "{n}"}
      - {program: any, action: preset.recall, offset: 1}
      - {cc14: 10, target: psi, range: [0.3, 1.1]}
      - {cc: 60, encoder: twos_complement, target: seed, step: 1}
      - {osc: /fx/psi, target: psi, input_range: [0, 127]}
    banks:                                                # the knobs play one page at a time
      - name: knobs
        next: {cc: 59}
        prev: {cc: 58}
        pages:
          - {name: edits, bindings: [{cc: 16..23, target: "edit.*", use: knob}]}  # the model's edits
          - {name: look, bindings: [{cc: 16, target: psi}, {cc: 17, target: cutoff}]}
    modulation:
      - {feature: rms_db, target: psi, depth: 0.4, attack_ms: 10, release_ms: 250}
      - {feature: onset.low, action: seed.next, cooldown_ms: 500}

Names depend on the model (StyleGAN2 has `edit.b64`, StyleGAN3 `edit.L6_148_362`, `blend.*`
exists only with a second model, the number of `z.*` groups is configurable). A mapping meant
for any model therefore uses globs (`target: "edit.*"` takes the model's edit targets in
registry order, one per control; surplus controls stay unbound with a warning) and
`optional: true` (a name this model lacks is skipped with a warning instead of an error).
`load_mapping(path)` without a registry checks the structure only; `load_mapping(path,
registry)` also checks every name and expands globs, and is what the router needs.

Binding reference (one source key, and `target` or `action`):

- sources: `cc: N` (7-bit), `cc14: N` (MSB N 0..31, LSB N+32 or `lsb:`), `nrpn: N`
  (parameter MSB*128+LSB via CC 99/98, data CC 6/38; `bits: 14` (default) or 7),
  `note: N`, `pitchbend: true`, `aftertouch: true` (channel pressure), `polytouch: N|any`,
  `program: N|any`, `osc: /address` (value = first argument, `input_range: [lo, hi]`,
  default [0, 1]). `channel: 1..16 | any` (default from `defaults`, else 1). N may be a
  list or a range `a..b`: the binding is a template, repeated per number with `{i}` (0-based,
  from `start`), `{n}` (i + 1) and `{number}` substituted in target, action and value; with a
  glob target the i-th control takes the i-th match (so `start: 8` continues after 8).
- continuous (faders, knobs, 14-bit, pitch bend, pressure, OSC): `range: [lo, hi]` (default
  the target's), `curve: linear | exp | log | scurve` (optionally with a strength: "exp 4"),
  `invert`, `deadzone` (0..0.49 of the travel: both ends, or the centre when `bipolar`,
  which pitch bend is by default), `takeover: none | pickup | scale` (default:
  `defaults.takeover` if given, else pickup for cc/cc14/nrpn and none for OSC; always none
  for the springs pitchbend/aftertouch/polytouch unless the binding says otherwise),
  `smoothing_ms` (overrides the target's smoothing).
- relative encoders (cc): `encoder: twos_complement | binary_offset | sign_magnitude |
  sign_magnitude_inv`, `step` target units per tick (default range/128; 1 for whole-number
  targets such as `seed`).
- buttons (cc, note, osc): `mode: momentary` (hi while held, lo on release; the default for a
  note bound to a target), `toggle` (press flips between lo and hi), `trigger` (press sets
  `value`). `velocity: true` scales a note's hi by its velocity. A cc is pressed at >= 64.
- actions (cc, note, osc, program): fire on press; `value` for actions that take one
  (`preset.recall`); a program change gives program + `offset` as the value.
- any binding: `use: TEMPLATE` (defaults from the `templates` section), `optional`,
  `allow_multi` (a second binding on the same control; otherwise a duplicate is an error).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..common.errors import GanInstrumentError
from ..state.params import ActionSpec, Registry, SignalSpec, TargetSpec
from .checks import Problem

__all__ = [
    "SCHEMA_VERSION", "SOURCE_KINDS", "BINDING_MODES", "MODULATION_MODES",
    "MappingError", "Problem", "Info", "DeviceMatch", "Source", "Binding", "Page", "Bank", "ModulationRoute",
    "Mapping",
]

SCHEMA_VERSION = 1
MAX_SHOWN = 20  # problems a MappingError's message lists (all are in .problems)
SOURCE_KINDS = ("cc", "cc14", "nrpn", "note", "pitchbend", "aftertouch", "polytouch", "program", "osc")
BINDING_MODES = ("continuous", "relative", "momentary", "toggle", "trigger")
MODULATION_MODES = ("add", "multiply", "replace")
# A quantized action's grid, in beats (note values: 1/4 is a quarter note, a beat), or bars
QUANTIZE_GRIDS = {"1/16": 0.25, "1/8": 0.5, "1/4": 1.0, "1/2": 2.0, "beat": 1.0, "bar": None, "2bars": None,
                  "4bars": None}
QUANTIZE_BARS = {"bar": 1, "2bars": 2, "4bars": 4}
LFO_SHAPES = ("sine", "triangle", "saw_up", "saw_down", "square", "sample_hold", "smooth_random")


class MappingError(GanInstrumentError, ValueError):
    """A mapping file with problems: `path`, and `problems` (every one, each with its line)."""

    def __init__(self, path, problems: list[Problem]):
        self.path = os.fspath(path)
        self.problems = sorted(problems, key=lambda p: p.line)
        lines = [p.format(self.path) for p in self.problems[:MAX_SHOWN]]
        if len(self.problems) > MAX_SHOWN:
            lines.append(f"... and {len(self.problems) - MAX_SHOWN} more")
        if len(self.problems) == 1:
            text = lines[0]
        else:
            text = f"{len(self.problems)} problems in {self.path}:\n  " + "\n  ".join(lines)
        super().__init__(text)


@dataclass(frozen=True)
class Info:
    """The header: what the file is for and where its numbers came from."""

    name: str = ""
    author: str = ""
    device: str = ""
    source: str = ""  # where the factory-default numbers came from (manual, another project's map)
    notes: str = ""


@dataclass(frozen=True)
class DeviceMatch:
    """Which MIDI ports this mapping is for: case-insensitive substrings, or `/regex/` (searched,
    case-insensitive). Empty: any port."""

    input: str = ""
    output: str = ""

    def matches_input(self, port_name: str) -> bool:
        return _match(self.input, port_name)

    def matches_output(self, port_name: str) -> bool:
        return _match(self.output, port_name)


def _match(pattern: str, name: str) -> bool:
    if not pattern:
        return True
    if len(pattern) > 2 and pattern.startswith("/") and pattern.endswith("/"):
        return re.search(pattern[1:-1], name, re.IGNORECASE) is not None
    return pattern.casefold() in name.casefold()


@dataclass(frozen=True)
class Source:
    """A control: `kind` from SOURCE_KINDS, `channel` 0..15 as on the wire (files say 1..16;
    None: any channel), `number` (cc, note, NRPN parameter, program, polytouch note; None for
    pitchbend/aftertouch and for `program: any` / `polytouch: any`), `lsb` (cc14's LSB cc),
    `address` (osc)."""

    kind: str
    channel: int | None = 0
    number: int | None = None
    lsb: int | None = None
    address: str = ""

    def describe(self) -> str:
        if self.kind == "osc":
            return f"osc {self.address}"
        ch = "any channel" if self.channel is None else f"ch {self.channel + 1}"
        num = "" if self.kind in ("pitchbend", "aftertouch") else (" any" if self.number is None else f" {self.number}")
        return f"{self.kind}{num} {ch}"


@dataclass(frozen=True)
class Binding:
    """One control -> one target (or action). Fields as in the module docstring; resolved:
    `mode` from BINDING_MODES, `range` None = the target's own, `line` in the file."""

    source: Source
    target: str | None = None
    action: str | None = None
    value: float | None = None
    mode: str = "continuous"
    range: tuple[float, float] | None = None
    curve: str = "linear"
    curve_k: float | None = None
    invert: bool = False
    deadzone: float = 0.0
    bipolar: bool = False
    encoder: str | None = None
    step: float | None = None
    takeover: str = "none"
    smoothing_ms: float | None = None
    velocity: bool = False
    offset: int = 0
    input_range: tuple[float, float] = (0.0, 1.0)
    bits: int = 14
    allow_multi: bool = False
    quantize: str | None = None  # (actions) fire on the beat clock's next boundary: QUANTIZE_GRIDS
    line: int = 0

    @property
    def name(self) -> str:
        """The target or action it drives."""
        return self.target if self.target is not None else self.action  # type: ignore[return-value]

    def output_range(self, registry: Registry) -> tuple[float, float]:
        """[lo, hi] this binding plays its target over: `range`, else the target's own
        (for LED / motor feedback: transforms.from_range then curve_inverse, invert)."""
        if self.range is not None:
            return self.range
        spec = registry.targets[self.target]
        return (spec.minimum, spec.maximum)


@dataclass(frozen=True)
class Page:
    """One page of a bank: its bindings are live only while it is the bank's active page.
    `select`: an optional button that makes it active."""

    name: str
    bindings: tuple[Binding, ...] = ()
    select: Source | None = None
    line: int = 0


@dataclass(frozen=True)
class Bank:
    """Pages sharing the same controls (the first page is active at start); `next` / `prev`
    buttons step through them (wrapping). Changing page re-arms soft takeover of that page."""

    name: str
    pages: tuple[Page, ...]
    next: Source | None = None
    prev: Source | None = None
    line: int = 0


@dataclass(frozen=True)
class ModulationRoute:
    """A modulation signal (`feature`: an audio feature today, a registry SignalSpec) driving a
    target (or firing an action). What the runtime computes, per frame of `dt` seconds, for a
    route with a target:

    1. x: the signal's latest value normalised by `input_range` [lo, hi] (None: the signal's
       own, SignalSpec.input_range) to [0, 1] and clipped: x = clip((f - lo) / (hi - lo), 0, 1).
       When the signal has no value (pitch_* while unvoiced: pitch_hz None), x holds its last
       value. For `pitch_class` the range is 0..11 (C = 0).
       Event signals (onsets) are events, not values: they need `pulse_decay_ms`
       (or an `action`). A pulse route's x jumps to 1 at each onset and decays as
       exp(-t / (pulse_decay_ms / 1000)) (t seconds since that onset; so 37 % after
       pulse_decay_ms); a new onset restarts it at 1.
    2. y = curve(x) (transforms.curve with `curve`, `curve_k`), then 1 - y if `invert`.
    3. e: a follower of y, one pole per direction, dt-aware: e += (y - e) * (1 - exp(-dt / tau))
       with tau = attack_ms / 1000 while y > e and release_ms / 1000 while y < e (0 ms: e = y
       at once). e starts at 0. Pulse routes take y directly (no attack/release: they are
       rejected there).
    4. m = offset + depth * e, in target units (offset defaults: 0 for add and replace, 1 for
       multiply, so a silent input leaves the target alone).
    5. combined with the base value b (the smoothed value from faders/presets) by `mode`:
       replace: m; multiply: b * m; add: b + m. Several routes on one target: replace
       routes first (the last in file order wins), then every multiply, then every add. The
       result is clamped by the target's TargetSpec.clamp; the base value is never written,
       so presets store faders, not audio.

    A route with an `action` fires it (with `value` when the action takes one) at each onset
    of its onset feature, at most once per `cooldown_ms`. `name`: an optional label for the
    HUD. `line`: where it is in the file.
    """

    feature: str
    target: str | None = None
    action: str | None = None
    value: float | None = None
    depth: float = 1.0
    offset: float = 0.0
    input_range: tuple[float, float] | None = None
    curve: str = "linear"
    curve_k: float | None = None
    invert: bool = False
    attack_ms: float = 0.0
    release_ms: float = 0.0
    mode: str = "add"
    pulse_decay_ms: float | None = None
    cooldown_ms: float = 0.0
    name: str = ""
    line: int = 0


@dataclass(frozen=True)
class LfoDef:
    """An LFO a mapping declares (its `lfos:` section), routed as the signal `lfo.<name>`.

    `rate_beats` (cycles of that many beats), `rate_bars` (of that many bars: the meter's beats)
    or `rate_hz` (free-running): exactly one is set. `phase`: cycles added (0.25: a quarter
    cycle late). `width`: the square's high part. See modulation/lfo.py for the shapes.
    """

    name: str
    shape: str = "sine"
    rate_beats: float | None = 1.0
    rate_bars: float | None = None
    rate_hz: float | None = None
    phase: float = 0.0
    width: float = 0.5
    line: int = 0


@dataclass(frozen=True)
class EnvelopeDef:
    """An envelope a mapping declares (its `envelopes:` section), routed as `env.<name>`: on each
    `trigger` (an event signal: beat, downbeat, onset, onset.low, ...; with `every_bars`, the
    downbeat of every that-many-th bar; "button": only by hand), and whenever its action
    `env.<name>` fires (a pad), it rises from where it is to 1 over the attack, then
    falls to 0 over the decay. Times are in seconds, or in beats (`*_beats`, at the tempo of
    the moment it fires)."""

    name: str
    trigger: str
    every_bars: int | None = None
    attack_s: float = 0.0
    attack_beats: float | None = None
    decay_s: float = 0.25
    decay_beats: float | None = None
    line: int = 0


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping file. `resolved`: names were checked against a registry and globs
    expanded (the router needs this). `warnings`: "file:line: ..." lines worth showing."""

    schema_version: int = SCHEMA_VERSION
    info: Info = field(default_factory=Info)
    device: DeviceMatch = field(default_factory=DeviceMatch)
    bindings: tuple[Binding, ...] = ()
    banks: tuple[Bank, ...] = ()
    modulation: tuple[ModulationRoute, ...] = ()
    lfos: tuple[LfoDef, ...] = ()
    envelopes: tuple[EnvelopeDef, ...] = ()
    path: str = "<string>"
    warnings: tuple[str, ...] = ()
    resolved: bool = False

    def targets(self) -> list[TargetSpec]:
        """The targets this mapping declares itself: each LFO's rate (a multiple of its own:
        0.25 .. 4) and depth (0 .. 1), so a knob can ride them."""
        out = []
        for d in self.lfos:
            out.append(TargetSpec(f"lfo.{d.name}.rate", 0.25, 4.0, 1.0, unit="x", preset=True,
                                  doc=f"LFO {d.name}'s speed, times its rate (1: locked to the beat as written)"))
            out.append(TargetSpec(f"lfo.{d.name}.depth", 0.0, 1.0, 1.0, preset=True, doc=f"LFO {d.name}'s depth"))
        return out

    def actions(self) -> list[ActionSpec]:
        """The actions this mapping declares itself: `env.<name>` fires that envelope by hand."""
        return [ActionSpec(f"env.{d.name}", f"fire envelope {d.name}") for d in self.envelopes]

    def signals(self) -> dict[str, SignalSpec]:
        """The signals this mapping declares itself: its LFOs (`lfo.<name>`) and envelopes
        (`env.<name>`)."""
        out = {f"lfo.{d.name}": SignalSpec(f"lfo.{d.name}", "lfo", doc=f"LFO {d.shape}") for d in self.lfos}
        out.update({f"env.{d.name}": SignalSpec(f"env.{d.name}", "envelope", doc=f"envelope on {d.trigger}")
                    for d in self.envelopes})
        return out

    def all_bindings(self):
        """Every binding: the global ones, then each bank's pages in order."""
        yield from self.bindings
        for bank in self.banks:
            for page in bank.pages:
                yield from page.bindings
