"""Named weight edits: which tensors an edit touches, what it does to them, and the defaults.

An edit is one performable number (`edit.<name>`) applied to every state_dict tensor matched by
its globs, after any network blend (see `bending.Bender`):

- "scale":  w * value            (neutral 1)
- "offset": w + value            (neutral 0)
- "noise":  w + value * s * n    (neutral 0), n a fixed standard normal tensor seeded from the
  edit's name and the tensor's key (the same on every run and device), s the standard deviation
  of the pristine tensor of model A (its RMS if that is 0, 1 if both are).

Globs are `fnmatch` patterns over the NVlabs state_dict keys, case-sensitive; note that `*`
also matches dots, so `synthesis.L3_*.weight` matches `synthesis.L3_36_32.affine.weight` too.

Why the default edits are what they are: StyleGAN's modulated convolutions demodulate (each
output channel's weights are divided by their norm), so the TouchDesigner habit "conv weight
times a value" does exactly nothing on a StyleGAN2 block or a StyleGAN3 layer. Seeded noise
on the weights changes the direction of every filter instead, which demodulation cannot undo:

- StyleGAN2, `edit.<block>` (b4 ... bN): "noise" on the block's conv0/conv1/ToRGB weights,
  0 (original) .. 1 (noise as strong as the weights themselves). Low blocks bend the
  composition, high blocks the texture and colour.
- StyleGAN3, `edit.input`: "scale" of `synthesis.input.weight`, 0 .. 2, the habit performers
  bring. It is not demodulated away: the Fourier features' amplitude against the layers'
  biases (and the first layer's fixed input gain) sets contrast and structure.
- StyleGAN3, `edit.L<i>_<size>_<channels>`: "noise" on that layer's conv weight, 0 .. 1.
"""

from __future__ import annotations

import fnmatch
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ..state.params import TargetSpec

EDIT_OPS = ("scale", "offset", "noise")
IDENTITY = {"scale": 1.0, "offset": 0.0, "noise": 0.0}
PREFIX = "edit."


@dataclass(frozen=True)
class EditSpec:
    """One named edit over state_dict globs.

    `name` is the bare name (`b64`); a leading `edit.` is dropped, so `edit.b64` works too.
    `neutral` is the value that leaves the weights untouched; it follows from `op` and may be
    left out (None). `minimum`/`maximum` bound the performable range and must contain it.
    """

    name: str
    patterns: tuple[str, ...]
    op: str = "scale"
    neutral: float | None = None
    minimum: float = 0.0
    maximum: float = 2.0
    doc: str = ""

    def __post_init__(self) -> None:
        name = self.name[len(PREFIX):] if isinstance(self.name, str) and self.name.startswith(PREFIX) else self.name
        if not isinstance(name, str) or not name or any(ch.isspace() for ch in name):
            raise ValueError(f"edit name must be a non-empty string without spaces, got {self.name!r}")
        object.__setattr__(self, "name", name)
        if self.op not in EDIT_OPS:
            raise ValueError(f"edit {name}: op must be one of {', '.join(EDIT_OPS)}, got {self.op!r}")
        patterns = (self.patterns,) if isinstance(self.patterns, str) else tuple(self.patterns)
        if not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise ValueError(f"edit {name}: patterns must be one or more non-empty glob strings, got {self.patterns!r}")
        object.__setattr__(self, "patterns", patterns)
        identity = IDENTITY[self.op]
        if self.neutral is None:
            object.__setattr__(self, "neutral", identity)
        elif float(self.neutral) != identity:
            raise ValueError(f"edit {name}: the neutral value of {self.op!r} is {identity:g}, got {self.neutral!r}")
        if not float(self.minimum) <= identity <= float(self.maximum):
            raise ValueError(f"edit {name}: range [{self.minimum}, {self.maximum}] must contain the neutral "
                             f"value {identity:g}")

    @property
    def target(self) -> str:
        """The target name performers map: `edit.<name>`."""
        return PREFIX + self.name

    def resolve(self, keys: Iterable[str]) -> tuple[str, ...]:
        """The keys (in the given order) matched by any pattern; every pattern must match one."""
        keys = list(keys)
        for pattern in self.patterns:
            if not any(fnmatch.fnmatchcase(k, pattern) for k in keys):
                raise ValueError(f"edit {self.name}: pattern {pattern!r} matches no floating-point tensor "
                                 f"of this network (keys look like {keys[0]!r})" if keys else
                                 f"edit {self.name}: pattern {pattern!r} matches nothing (no tensors)")
        return tuple(k for k in keys if any(fnmatch.fnmatchcase(k, p) for p in self.patterns))

    def target_spec(self) -> TargetSpec:
        doc = self.doc or f"{self.op} of {', '.join(self.patterns)}"
        return TargetSpec(name=self.target, minimum=float(self.minimum), maximum=float(self.maximum),
                          default=float(self.neutral), doc=doc)


def edit_noise(edit_name: str, key: str, like: torch.Tensor) -> torch.Tensor:
    """The "noise" edit's fixed term for one tensor: s * n (see the module doc), like `like`.

    Drawn on the CPU from a generator seeded by crc32(edit name, key), so it is the same on
    every device and run.
    """
    gen = torch.Generator().manual_seed(zlib.crc32(f"{edit_name}\0{key}".encode()))
    n = torch.randn(like.shape, generator=gen, dtype=torch.float32)
    ref = like.detach().to(device="cpu", dtype=torch.float32)
    s = float(ref.std(correction=0)) if ref.numel() > 1 else 0.0
    if s == 0.0:
        s = float(ref.square().mean().sqrt()) or 1.0
    out = torch.empty_like(like, memory_format=torch.preserve_format)
    return out.copy_(n.mul_(s))


def default_edits(G) -> list[EditSpec]:
    """One edit per StyleGAN2 synthesis block / StyleGAN3 synthesis layer (see the module doc)."""
    keys = set(G.state_dict().keys())
    edits = []
    if G.kind == "sg2":
        for block in G.synthesis.block_names():
            weights = tuple(k for k in (f"synthesis.{block}.{layer}.weight" for layer in ("conv0", "conv1", "torgb"))
                            if k in keys)
            edits.append(EditSpec(block, weights, op="noise", minimum=0.0, maximum=1.0,
                                  doc=f"bend block {block}: seeded noise on its conv and ToRGB weights"))
    elif G.kind == "sg3":
        for layer in G.synthesis.layer_names():
            if layer == "input":
                edits.append(EditSpec("input", ("synthesis.input.weight",), op="scale", minimum=0.0, maximum=2.0,
                                      doc="scale of synthesis.input.weight (Fourier feature mixing)"))
            else:
                edits.append(EditSpec(layer, (f"synthesis.{layer}.weight",), op="noise", minimum=0.0, maximum=1.0,
                                      doc=f"bend layer {layer}: seeded noise on its conv weight"))
    else:
        raise ValueError(f"no default edits for a generator of kind {G.kind!r}")
    return edits
