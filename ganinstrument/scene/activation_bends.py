"""Activation bending: transforms of a layer's feature maps (Broad et al., "Network Bending:
Expressive Manipulation of Deep Generative Models", EvoMUSART 2021), as functions of an amount.

Each transform takes activations x [N, C, H, W] and an amount, and returns the bent maps, on
the device and in the dtype it was given (float16 stays float16), with no host round trip. At
its NEUTRAL amount a transform is the identity, and the caller does not insert it at all, so an
unbent network is bit-exact. `channels` (channel indices, or None for all) limits a bend to
some channels; the others pass through untouched.

| name | amount | what it does |
|---|---|---|
| translate_x, translate_y | -0.5 .. 0.5 of the width / height | rolls the maps by round(amount * size) pixels (wrapping) |
| rotate | -180 .. 180 degrees | rotates about the centre (bilinear, zeros outside) |
| scale | 0.25 .. 4 | zooms about the centre (> 1 larger) |
| flip | 0 .. 1 | mirrors left-right from 0.5 up |
| invert | 0 .. 1 | x -> (1 - 2 amount) x: at 1 every map is negated |
| threshold | 0 .. 1 | fades toward each map's binary image: its maximum above its mean, its minimum below |
| erode, dilate | 0 .. 8 pixels | grey-level morphology: the minimum / maximum over a (2r+1)^2 square, r = round(amount) |
| sobel | 0 .. 1 | fades toward each map's Sobel gradient magnitude (edges) |
| ablate | 0 .. 1 | x -> (1 - amount) x: at 1 the maps are zero |

This module holds the transforms only: choosing the channels (a seeded fraction, clusters),
the `bend.<layer>.<transform>` targets and their insertion into the forward pass are
scene/activations.py.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..generator.device import upload

__all__ = ["NEUTRAL", "RANGES", "TRANSFORMS", "bend"]

RANGES: dict[str, tuple[float, float]] = {
    "translate_x": (-0.5, 0.5), "translate_y": (-0.5, 0.5), "rotate": (-180.0, 180.0), "scale": (0.25, 4.0),
    "flip": (0.0, 1.0), "invert": (0.0, 1.0), "threshold": (0.0, 1.0), "erode": (0.0, 8.0), "dilate": (0.0, 8.0),
    "sobel": (0.0, 1.0), "ablate": (0.0, 1.0),
}
NEUTRAL: dict[str, float] = {name: (1.0 if name == "scale" else 0.0) for name in RANGES}


def _translate(x: torch.Tensor, amount: float, dim: int) -> torch.Tensor:
    return torch.roll(x, shifts=round(amount * x.shape[dim]), dims=dim)


@functools.lru_cache(maxsize=32)
def _base_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """The identity sampling grid [1, h, w, 2] (x, y in -1..1 at pixel centres) on `device`,
    made there by kernels (no upload), once per size and device."""
    xs = torch.linspace(-1.0 + 1.0 / w, 1.0 - 1.0 / w, w, device=device)
    ys = torch.linspace(-1.0 + 1.0 / h, 1.0 - 1.0 / h, h, device=device)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).unsqueeze(0)


def _warp(x: torch.Tensor, degrees: float = 0.0, zoom: float = 1.0) -> torch.Tensor:
    """Rotate by `degrees` and zoom by `zoom` about the centre (sampling bilinear, zeros outside).
    The amounts reach the device as kernel arguments: nothing is uploaded per frame."""
    a = math.radians(degrees)
    c, s = math.cos(a) / zoom, math.sin(a) / zoom
    base = _base_grid(x.shape[2], x.shape[3], x.device)
    gx, gy = base[..., 0], base[..., 1]
    grid = torch.stack((gx * c - gy * s, gx * s + gy * c), dim=-1).expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(x.dtype)


def _threshold(x: torch.Tensor, amount: float) -> torch.Tensor:
    flat = x.flatten(2)
    lo, hi = flat.amin(dim=2, keepdim=True), flat.amax(dim=2, keepdim=True)
    binary = torch.where(flat > flat.mean(dim=2, keepdim=True), hi, lo).view_as(x)
    return torch.lerp(x, binary, amount)


def _morph(x: torch.Tensor, radius: float, dilate: bool) -> torch.Tensor:
    r = int(round(radius))
    if r <= 0:
        return x
    k = 2 * r + 1
    # (max pooling pads with -inf: an edge window takes the maximum of what is inside, which
    # is what replicating the edge would give too)
    if dilate:
        return F.max_pool2d(x, k, stride=1, padding=r)
    return -F.max_pool2d(-x, k, stride=1, padding=r)


@functools.lru_cache(maxsize=8)
def _sobel_kernel(device: torch.device) -> torch.Tensor:
    """The horizontal Sobel kernel [1, 1, 3, 3] on `device` (uploaded once per device)."""
    return upload(np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0]).astype(np.float32), device).view(1, 1, 3, 3)


def _sobel(x: torch.Tensor, amount: float) -> torch.Tensor:
    n, c, h, w = x.shape
    maps = F.pad(x.float().reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    kx = _sobel_kernel(maps.device)
    gx = F.conv2d(maps, kx)
    gy = F.conv2d(maps, kx.transpose(2, 3))
    edges = torch.hypot(gx, gy).reshape(n, c, h, w).to(x.dtype)
    return torch.lerp(x, edges, amount)


def _apply(name: str, x: torch.Tensor, amount: float) -> torch.Tensor:
    if name == "translate_x":
        return _translate(x, amount, 3)
    if name == "translate_y":
        return _translate(x, amount, 2)
    if name == "rotate":
        return _warp(x, degrees=amount)
    if name == "scale":
        return _warp(x, zoom=amount)
    if name == "flip":
        return torch.flip(x, dims=(3,)) if amount >= 0.5 else x
    if name == "invert":
        return x * (1.0 - 2.0 * amount)
    if name == "threshold":
        return _threshold(x, amount)
    if name in ("erode", "dilate"):
        return _morph(x, amount, dilate=name == "dilate")
    if name == "sobel":
        return _sobel(x, amount)
    return x * (1.0 - amount)  # ablate


TRANSFORMS = tuple(RANGES)


def bend(x: torch.Tensor, name: str, amount: float, channels: torch.Tensor | None = None) -> torch.Tensor:
    """`x` [N, C, H, W] bent by transform `name` at `amount` (clamped to its range; a non-finite
    amount counts as neutral), on the channels `channels` (an int64 tensor of channel indices,
    on x's device; None: all). Indices, not a boolean mask: selecting by a mask asks the GPU how
    many channels it holds, a host round trip per frame."""
    if name not in RANGES:
        raise ValueError(f"unknown bend {name!r}; the transforms: {', '.join(TRANSFORMS)}")
    lo, hi = RANGES[name]
    amount = float(amount)
    amount = min(max(amount, lo), hi) if math.isfinite(amount) else NEUTRAL[name]
    if amount == NEUTRAL[name]:
        return x  # (exactly: a rotation by 0 through the sampler is not)
    if channels is None:
        return _apply(name, x, amount)
    return x.index_copy(1, channels, _apply(name, x.index_select(1, channels), amount))
