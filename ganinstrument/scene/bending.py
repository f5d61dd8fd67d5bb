"""Layer edits and network blending, written in place into the live generator, only on change.

`Bender(G, G_b)` owns the live network `G`: its parameters and buffers are rewritten in place
(no reallocation, so nothing downstream holds a stale tensor), from pristine copies of model A
(`G` as given) and model B (`G_b`) kept on `G`'s device in `G`'s dtypes. Each managed tensor is

    live = edits(lerp(A, B, t))        t = blend.all + blend.<group of the tensor>

The two blend amounts add, so `blend.all` moves the whole network and a group fader offsets one
group from there (all at 1 and `blend.b64` at -1 keeps b64 from A). Values outside [0, 1]
extrapolate. t = 0 copies A and t = 1 copies B (bit-exact); edits at their neutral values are
skipped, so neutral edits with blend 0 give back A bit-exactly. Edits apply in list order.

Groups are the state_dict prefixes: `mapping` and `synthesis.<group>.*` (StyleGAN2 `b4`..`bN`,
StyleGAN3 `input`, `L0_...`..`L14_...`). Every floating-point tensor that differs between A and
B blends, buffers included (StyleGAN2 noise_const, StyleGAN3 magnitude_ema, freqs, phases,
mapping.w_avg); tensors equal in both (resampling filters of the same design, an identity
input.transform) are left alone.

Compatibility: the two models must have the same kind, keys and shapes; otherwise
`ModelMismatchError` says what differs and which groups do match. With `partial=True` a pair
that matches in some groups is accepted and only those groups get `blend.*` targets.

The engine thread owns a Bender and the network it bends; `apply` must not run during a
forward pass. Build the Bender after moving `G` to its device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch

from ..common.errors import ModelMismatchError
from ..state.params import TargetSpec
from .edits import IDENTITY, EditSpec, default_edits, edit_noise

BLEND_PREFIX = "blend."
BLEND_MIN, BLEND_MAX = -1.0, 2.0
_SHOWN = 3  # differing keys named per group in a mismatch message


def group_of(key: str) -> str:
    """`mapping.fc0.weight` -> `mapping`; `synthesis.b64.conv0.weight` -> `b64`."""
    parts = key.split(".")
    if parts[0] == "synthesis" and len(parts) > 2:
        return parts[1]
    return parts[0]


def tensor_groups(G) -> dict[str, list[str]]:
    """Group -> state_dict keys, `mapping` first, then synthesis in network order."""
    groups: dict[str, list[str]] = {"mapping": []}
    for key in G.state_dict().keys():
        groups.setdefault(group_of(key), []).append(key)
    return {g: keys for g, keys in groups.items() if keys}


@dataclass(frozen=True)
class CompatReport:
    """What `check_compatible` found. `ok`: the models may be blended as a whole."""

    name_a: str
    name_b: str
    kind_a: str
    kind_b: str
    matching: tuple[str, ...]  # groups with the same keys and shapes in both
    differing: tuple[tuple[str, str], ...]  # (group, what differs)

    @property
    def ok(self) -> bool:
        return self.kind_a == self.kind_b and not self.differing

    def message(self) -> str:
        head = f"cannot blend {self.name_a} ({self.kind_a}) with {self.name_b} ({self.kind_b})"
        if self.kind_a != self.kind_b:
            return f"{head}: they are different kinds of network; no group can be blended"
        diffs = "; ".join(f"{g}: {why}" for g, why in self.differing)
        total = len(self.matching) + len(self.differing)
        text = f"{head}: {len(self.differing)} of {total} groups differ ({diffs})"
        if self.matching:
            return f"{text}. Groups that match (blendable with partial=True): {', '.join(self.matching)}"
        return f"{text}. No group matches."

    def error(self) -> ModelMismatchError:
        return ModelMismatchError(self.message())


def check_compatible(G_a, G_b, *, name_a: str = "model A", name_b: str = "model B") -> CompatReport:
    """Compare kind, state_dict keys and shapes, group by group."""
    kind_a, kind_b = getattr(G_a, "kind", "?"), getattr(G_b, "kind", "?")
    if kind_a != kind_b:
        return CompatReport(name_a, name_b, kind_a, kind_b, (), ())
    sd_a, sd_b = G_a.state_dict(), G_b.state_dict()
    groups_a, groups_b = tensor_groups(G_a), tensor_groups(G_b)
    matching, differing = [], []
    for group in list(groups_a) + [g for g in groups_b if g not in groups_a]:
        if group not in groups_b or group not in groups_a:
            differing.append((group, f"only in {name_a if group in groups_a else name_b}"))
            continue
        problems = []
        keys_b = set(groups_b[group])
        for key in groups_a[group]:
            if key not in keys_b:
                problems.append(f"{key} only in {name_a}")
            elif sd_a[key].shape != sd_b[key].shape:
                problems.append(f"{key} shape {list(sd_a[key].shape)} vs {list(sd_b[key].shape)}")
        keys_a = set(groups_a[group])
        problems += [f"{key} only in {name_b}" for key in groups_b[group] if key not in keys_a]
        if problems:
            more = f", and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
            differing.append((group, ", ".join(problems[:_SHOWN]) + more))
        else:
            matching.append(group)
    return CompatReport(name_a, name_b, kind_a, kind_b, tuple(matching), tuple(differing))


class _Managed:
    """One live tensor under the bender's control, with its pristine sources and last state."""

    __slots__ = ("key", "live", "a", "b", "group", "edits", "state")

    def __init__(self, key: str, live: torch.Tensor):
        self.key, self.live = key, live
        self.a = live.clone()  # pristine A (same layout)
        self.b: torch.Tensor | None = None  # pristine B, only where B differs
        self.group: str | None = None  # blend group, only where B differs
        self.edits: list[tuple[str, str, torch.Tensor | None]] = []  # (target, op, noise term)
        self.state: tuple = ()


class Bender:
    """Reversible weight edits and per-group blending of `G` toward `G_b`, in place.

    `edits`: None for `default_edits(G)`, or a list of EditSpec (an empty list for none).
    `partial`: accept a model B that matches only in some groups (blend targets for those).
    `name_a`, `name_b`: how error messages name the models (e.g. their file names).
    """

    def __init__(self, G, G_b=None, edits: Iterable[EditSpec] | None = None, *, partial: bool = False,
                 name_a: str = "model A", name_b: str = "model B"):
        self.G = G
        self.edits: tuple[EditSpec, ...] = tuple(default_edits(G) if edits is None else edits)
        self.report: CompatReport | None = None
        live = {k: v.detach() for k, v in G.state_dict(keep_vars=True).items()}
        floats = [k for k, v in live.items() if v.is_floating_point()]
        self._managed: dict[str, _Managed] = {}
        self._by_target: dict[str, list[_Managed]] = {}
        specs: list[TargetSpec] = []

        with torch.no_grad():
            seen = set()
            for edit in self.edits:
                if edit.target in seen:
                    raise ValueError(f"edit {edit.name} defined twice")
                seen.add(edit.target)
                specs.append(edit.target_spec())
                self._by_target[edit.target] = []
                for key in edit.resolve(floats):
                    rec = self._record(key, live[key])
                    noise = edit_noise(edit.name, key, rec.a) if edit.op == "noise" else None
                    rec.edits.append((edit.target, edit.op, noise))
                    self._by_target[edit.target].append(rec)
            if G_b is not None:
                specs += self._setup_blend(G_b, live, partial, name_a, name_b)

        self._specs = {s.name: s for s in specs}
        self._values = {s.name: s.default for s in specs}
        for rec in self._managed.values():
            rec.state = self._state_of(rec)

    def _record(self, key: str, live: torch.Tensor) -> _Managed:
        rec = self._managed.get(key)
        if rec is None:
            rec = self._managed[key] = _Managed(key, live)
        return rec

    def _setup_blend(self, G_b, live, partial, name_a, name_b) -> list[TargetSpec]:
        report = self.report = check_compatible(self.G, G_b, name_a=name_a, name_b=name_b)
        if not report.ok and (not partial or not report.matching):
            raise report.error()
        sd_b = G_b.state_dict()
        groups = tensor_groups(self.G)
        all_recs = self._by_target["blend.all"] = []
        specs = [self._blend_spec("all", "blend every group toward model B (added to each group's own blend)")]
        for group in report.matching:
            specs.append(self._blend_spec(group, f"blend {group} toward model B (plus blend.all)"))
            recs = self._by_target[BLEND_PREFIX + group] = []
            for key in groups[group]:
                a = live[key]
                if not a.is_floating_point():
                    continue
                b = torch.empty_like(a).copy_(sd_b[key].detach())  # A's device, dtype and layout
                if torch.equal(a, b):
                    continue
                rec = self._record(key, a)
                rec.b, rec.group = b, group
                recs.append(rec)
                all_recs.append(rec)
        return specs

    @staticmethod
    def _blend_spec(group: str, doc: str) -> TargetSpec:
        return TargetSpec(name=BLEND_PREFIX + group, minimum=BLEND_MIN, maximum=BLEND_MAX, default=0.0,
                          extrapolate=True, doc=doc)

    # -- public ----------------------------------------------------------------------------

    def targets(self) -> tuple[TargetSpec, ...]:
        """`edit.*` in edit order, then `blend.all` and `blend.<group>` in network order."""
        return tuple(self._specs.values())

    @property
    def blend_groups(self) -> tuple[str, ...]:
        """Groups with a `blend.<group>` target (empty without a model B)."""
        return tuple(n[len(BLEND_PREFIX):] for n in self._specs if n.startswith(BLEND_PREFIX) and n != "blend.all")

    @property
    def values(self) -> dict[str, float]:
        """The target values last applied (a copy)."""
        return dict(self._values)

    @property
    def copies_bytes(self) -> int:
        """Memory held for pristine A and B tensors and noise terms, in bytes."""
        tensors = [t for rec in self._managed.values() for t in (rec.a, rec.b, *(n for _, _, n in rec.edits))]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def keys_for(self, target: str) -> tuple[str, ...]:
        """The state_dict keys a target controls."""
        if target not in self._specs:
            raise KeyError(target)
        return tuple(rec.key for rec in self._by_target[target])

    def apply(self, values: Mapping[str, float]) -> set[str]:
        """Set targets and rewrite the live tensors whose controlling values changed.

        `values` may hold any subset of this bender's targets; names it does not own (other
        scene targets) are ignored, and missing targets keep their last value. Values are
        clamped to the target's range (blends extrapolate; NaN gives the default). Returns the
        keys of the tensors rewritten: empty, and nothing touched, when nothing changed.
        """
        changed = []
        for name, value in values.items():
            spec = self._specs.get(name)
            if spec is None:
                continue
            value = spec.clamp(float(value))
            if value != self._values[name]:
                self._values[name] = value
                changed.append(name)
        if not changed:
            return set()
        todo: dict[str, _Managed] = {}
        for name in changed:
            for rec in self._by_target[name]:
                todo[rec.key] = rec
        rewritten = set()
        with torch.inference_mode():
            for rec in todo.values():
                state = self._state_of(rec)
                if state != rec.state:
                    self._write(rec, state)
                    rec.state = state
                    rewritten.add(rec.key)
        return rewritten

    def reset(self) -> set[str]:
        """Every edit neutral and every blend 0: model A, bit-exactly."""
        return self.apply({name: spec.default for name, spec in self._specs.items()})

    @contextlib.contextmanager
    def as_loaded(self) -> Iterator[None]:
        """Model A as it was loaded inside the block (every edit and blend at rest), then every
        tensor back exactly as it was: for what must not depend on the moment it is computed
        (the activation bends' channel clusters)."""
        values = dict(self._values)
        try:
            self.reset()
            yield
        finally:
            self.apply(values)

    # -- internals -------------------------------------------------------------------------

    def _state_of(self, rec: _Managed) -> tuple:
        v = self._values
        t = v["blend.all"] + v[BLEND_PREFIX + rec.group] if rec.group is not None else 0.0
        return (t,) + tuple(v[target] for target, _, _ in rec.edits)

    @staticmethod
    def _write(rec: _Managed, state: tuple) -> None:
        t, live = state[0], rec.live
        active = [(op, value, noise) for (_, op, noise), value in zip(rec.edits, state[1:]) if value != IDENTITY[op]]
        if t == 0.0 or t == 1.0:
            src = rec.a if t == 0.0 else rec.b
            if not active:
                live.copy_(src)
                return
        else:
            torch.lerp(rec.a, rec.b, t, out=live)
            src = live
        for op, value, noise in active:  # the first reads the pristine source, the rest work in place
            if op == "scale":
                torch.mul(src, value, out=live)
            elif op == "offset":
                torch.add(src, value, out=live)
            else:
                torch.add(src, noise, alpha=value, out=live)
            src = live
