"""Activation bending made playable: the `bend.<layer>.<transform>` targets and the forward hooks
that apply them (the transforms are scene/activation_bends.py).

The layers are the network's convolutions, named as `view` names them: StyleGAN2 `b64.conv0`,
`b64.conv1`..., StyleGAN3 `L6_148_362`... (not ToRGB, not the input). Each layer has one target
per transform, and `bend.<layer>.channels`: the share of its channels the bends act on (1: all;
below, a fixed seeded choice of that many, so a knob grows the set one channel at a time).

`bend.<layer>.cluster` (0: off; 1..CLUSTERS) picks instead one group of channels that behave
alike: the channels are grouped once per network by the correlation of their activation maps over
CLUSTER_SAMPLES seeded latents (Ward linkage on their correlation distances, scipy), the first time a cluster is
asked for or at `group()` (perform's warm-up calls it before the show), always on the network as
loaded (no bend, edit or blend), so the groups do not depend on when they were made.

A layer's hook is installed only while one of its bends is away from its neutral value, and
removed as soon as none is: with every bend neutral the network runs exactly as if this module
did not exist (bit-exact, no extra op). Per frame, `update(values)` only compares numbers and
(re)installs or removes hooks when a layer's set of active bends changes; the hook reads the
amounts of the moment, and does everything on the device the activations are on.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

import numpy as np
import torch

from ..generator.device import upload
from ..generator.styles import style_layers
from ..state.params import TargetSpec
from .activation_bends import NEUTRAL, RANGES, TRANSFORMS, bend

__all__ = ["CLUSTERS", "CLUSTER_SAMPLES", "ActivationBender", "bend_layers", "group_channels"]

CLUSTERS = 4  # groups of channels per layer (bend.<layer>.cluster 1..CLUSTERS)
CLUSTER_SAMPLES = 4  # latents whose activation maps the grouping compares

_DOCS = {
    "translate_x": "rolls the layer's maps sideways (share of the width; wraps)",
    "translate_y": "rolls the layer's maps up or down (share of the height; wraps)",
    "rotate": "rotates the layer's maps about their centre (degrees)",
    "scale": "zooms the layer's maps about their centre (1 as trained)",
    "flip": "mirrors the layer's maps left-right (from 0.5 up)",
    "invert": "negates the layer's maps (1: fully)",
    "threshold": "fades the layer's maps toward their binary images",
    "erode": "grey-level erosion of the layer's maps (radius in pixels)",
    "dilate": "grey-level dilation of the layer's maps (radius in pixels)",
    "sobel": "fades the layer's maps toward their edges (Sobel)",
    "ablate": "fades the layer's maps to zero",
}


def bend_layers(G) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of every layer that can be bent, in the order the network runs them: the
    modulated convolutions of generator.styles (named as `view` names them)."""
    return [(s.name[len("synthesis."):], s.module) for s in style_layers(G) if s.kind == "conv"]


class ActivationBender:
    """The bend.* targets of one network and their hooks (see the module docstring)."""

    def __init__(self, G, seed: int = 0, as_loaded: Callable[[], AbstractContextManager] | None = None):
        self.layers = bend_layers(G)
        self._keys = {name: [(t, f"bend.{name}.{t}") for t in TRANSFORMS] for name, _ in self.layers}
        self._orders = {name: np.random.default_rng([seed, i]).permutation(_channels(module))
                        for i, (name, module) in enumerate(self.layers)}
        self._active: dict[str, tuple[tuple[str, float], ...]] = {}  # layer -> the bends now applied
        self._chosen: dict[str, torch.Tensor | None] = {}  # layer -> its channels' indices (None: all) ...
        self._chosen_key: dict[str, int] = {}  # ... and which set: how many of the share, or -cluster
        self._hooks: dict[str, torch.utils.hooks.RemovableHandle] = {}
        self._G = G
        self._as_loaded = as_loaded or contextlib.nullcontext  # (the network as loaded, for the grouping)
        self._groups: dict[str, np.ndarray] | None = None  # layer -> each channel's cluster (1..)

    def targets(self) -> list[TargetSpec]:
        specs = []
        for name, _ in self.layers:
            for t in TRANSFORMS:
                lo, hi = RANGES[t]
                specs.append(TargetSpec(f"bend.{name}.{t}", lo, hi, NEUTRAL[t], doc=f"{name}: {_DOCS[t]}"))
            specs.append(TargetSpec(f"bend.{name}.channels", 0.0, 1.0, 1.0,
                                    doc=f"{name}: the share of its channels its bends act on (a fixed seeded "
                                        "choice; 1: all)"))
            specs.append(TargetSpec(f"bend.{name}.cluster", 0, CLUSTERS, 0, kind="choice", smoothing="none",
                                    smoothing_ms=0.0, choices=("off",) + tuple(str(k) for k in range(1, CLUSTERS + 1)),
                                    doc=f"{name}: its bends act on one group of channels that behave alike "
                                        "(off: the share above)"))
        return specs

    def group(self) -> dict[str, np.ndarray]:
        """Each layer's channel groups (computed once: a few forward passes), always on the
        network as loaded: no bend, and (`as_loaded`: the scene's bender) no weight edit or
        blend, so a render groups the channels as the show it replays did."""
        if self._groups is None:
            hooked = list(self._hooks)
            for name in hooked:
                self._remove(name)
            with self._as_loaded():
                self._groups = group_channels(self._G, self.layers)
        return self._groups

    @property
    def hooked(self) -> tuple[str, ...]:
        """The layers whose hook is installed now."""
        return tuple(self._hooks)

    def update(self, values: Mapping[str, float]) -> None:
        """Install, refresh or remove each layer's hook for this frame's values."""
        for name, module in self.layers:
            active = []
            for t, key in self._keys[name]:
                v = values.get(key, NEUTRAL[t])
                if v != NEUTRAL[t] and math.isfinite(v):
                    active.append((t, float(v)))
            if not active:
                self._remove(name)
                continue
            count = len(self._orders[name])
            cluster = values.get(f"bend.{name}.cluster", 0)
            cluster = int(cluster) if math.isfinite(cluster) and 1 <= cluster <= CLUSTERS else 0
            if cluster and self._groups is None:  # (first asked mid-show, as in a render without warm-up)
                self.group()  # grouping took every hook out: this frame's update starts again
                return self.update(values)
            if cluster:
                key = -cluster  # (a cluster's set, told apart from a share's by its sign)
                n = int((self._groups[name] == cluster).sum())
            else:
                share = values.get(f"bend.{name}.channels", 1.0)
                key = n = count if not math.isfinite(share) else int(round(min(max(share, 0.0), 1.0) * count))
            if n == 0:
                self._remove(name)
                continue
            self._active[name] = tuple(active)
            if self._chosen_key.get(name) != key:
                self._chosen_key[name] = key
                if cluster:
                    members = np.flatnonzero(self._groups[name] == cluster).astype(np.int64)
                    self._chosen[name] = upload(members, _device(module))
                else:
                    self._chosen[name] = None if n == count else self._share_indices(name, n, module)
            if name not in self._hooks:
                self._hooks[name] = module.register_forward_hook(self._hook(name))

    def close(self) -> None:
        for name in list(self._hooks):
            self._remove(name)

    # -- inside -------------------------------------------------------------------------
    def _hook(self, name: str):
        def hook(module, args, out):
            chosen = self._chosen.get(name)
            part = out if chosen is None else out.index_select(1, chosen)  # (each transform is per channel)
            for t, amount in self._active.get(name, ()):
                part = bend(part, t, amount)
            return part if chosen is None else out.index_copy(1, chosen, part)
        return hook

    def _remove(self, name: str) -> None:
        handle = self._hooks.pop(name, None)
        if handle is not None:
            handle.remove()
        self._active.pop(name, None)
        self._chosen.pop(name, None)
        self._chosen_key.pop(name, None)

    def _share_indices(self, name: str, n: int, module) -> torch.Tensor:
        """The first `n` channels of the layer's seeded order, as indices on its device (uploaded
        when the share changes, not per frame)."""
        return upload(np.sort(self._orders[name][:n]).astype(np.int64), _device(module))


def _channels(module) -> int:
    return int(getattr(module, "out_channels"))


def _device(module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def group_channels(G, layers, samples: int = CLUSTER_SAMPLES, groups: int = CLUSTERS) -> dict[str, np.ndarray]:
    """layer -> the cluster (1..groups) of each of its channels: channels whose activation maps
    rise and fall together over `samples` seeded latents (psi 0.7, constant noise) share one.
    Each channel's maps (pooled to at most 32 px) are centred and scaled to unit length, so
    the Euclidean distance between two channels is sqrt(2 - 2 r), r their correlation; Ward
    linkage (scipy.cluster.hierarchy) on those distances, computed from the channels' Gram
    matrix, cut into `groups`: within a group the maps correlate, across groups they do not."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    captured: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}

    def keep(name):
        def hook(module, args, out):
            maps = out.detach().float()
            if max(maps.shape[2:]) > 32:  # (pooled: 1024 px layers would fill the memory, and it is
                maps = torch.nn.functional.adaptive_avg_pool2d(maps, 32)  # their layout that matters)
            captured[name].append(maps.cpu())  # (returns None: the output stays)
        return hook

    handles = [module.register_forward_hook(keep(name)) for name, module in layers]
    try:
        device = next(G.parameters()).device
        z = torch.randn(samples, G.z_dim, generator=torch.Generator().manual_seed(0)).to(device)
        c = torch.zeros(samples, G.c_dim, device=device)
        if G.c_dim:
            c[:, 0] = 1.0
        ws = G.mapping(z, c if G.c_dim else None, truncation_psi=0.7)
        for i in range(samples):
            G.synthesis(ws[i:i + 1], noise_mode="const")
    finally:
        for handle in handles:
            handle.remove()
    out = {}
    for name, _ in layers:
        maps = torch.cat(captured[name])  # [S, C, H, W]
        v = maps.transpose(0, 1).reshape(maps.shape[1], -1).double()  # [C, S*H*W]
        v = v - v.mean(dim=1, keepdim=True)
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
        distance = (2.0 - 2.0 * (v @ v.T)).clamp_min(0.0).sqrt().numpy()  # [C, C]
        np.fill_diagonal(distance, 0.0)
        labels = fcluster(linkage(squareform(distance, checks=False), "ward"), groups, "maxclust")
        out[name] = labels.astype(np.int64)
    return out
