"""Closed-form factorization (SeFa): directions in W found from the network's weights alone.

Y. Shen, B. Zhou, "Closed-Form Factorization of Latent Semantics in GANs", CVPR 2021. A layer's
style affine maps w to its channels' styles, s = A w + b; moving w by n moves the styles by A n,
so the directions that move the chosen layers' styles most are the leading eigenvectors of
A^T A, A stacking the affines of a layer range. As in the paper, each style channel's row of A
is scaled to unit length first, so every channel counts alike whatever its layer's gain; and the
ToRGB layers are left out unless the range holds nothing else (the last row of a StyleGAN2). No
sampling, no training: an eigendecomposition of a w_dim x w_dim matrix (512: tens of ms).

Each direction's sign is fixed (its largest component positive), so the same network gives the
same file every time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..generator.styles import layer_range, style_layers

__all__ = ["Factorization", "fixed_signs", "sefa"]


@dataclass(frozen=True)
class Factorization:
    """`directions` [K, w_dim] unit rows, by `eigenvalues` [K] (non-increasing); `layers` (start,
    end) the ws rows whose styles they move (and the rows they are meant to be applied to);
    `total` the sum of all w_dim eigenvalues (each direction's share is eigenvalue / total)."""

    directions: np.ndarray
    eigenvalues: np.ndarray
    layers: tuple[int, int]
    total: float


@torch.no_grad()
def sefa(G, layers: str = "all", count: int | None = None) -> Factorization:
    """The `count` leading SeFa directions of generator `G` for the ws rows named by `layers`
    (styles.layer_range: "all", "coarse", "middle", "fine", "A-B"); all w_dim of them by default."""
    start, end = layer_range(layers, int(G.num_ws))
    chosen = [s for s in style_layers(G) if start <= s.ws_index < end and s.kind != "input"]
    convs = [s for s in chosen if s.kind == "conv"]
    rows = torch.cat([s.weight.detach().to("cpu", torch.float64) for s in (convs or chosen)]) \
        if chosen else torch.zeros(0, int(G.w_dim), dtype=torch.float64)  # [C, w_dim]
    norms = rows.norm(dim=1, keepdim=True)
    rows = rows[norms[:, 0] > 0] / norms[norms[:, 0] > 0]  # (a channel with no weights says nothing)
    if rows.shape[0] == 0:
        raise ValueError(f"ws rows {start}..{end - 1} drive no style of this network")
    values, vectors = torch.linalg.eigh(rows.T @ rows)  # ascending; columns are the eigenvectors
    order = torch.argsort(values, descending=True)
    k = rows.shape[1] if count is None else max(1, min(int(count), rows.shape[1]))
    dirs = fixed_signs(vectors[:, order[:k]].T.numpy())  # [K, w_dim]
    values = values.clamp_min(0)  # (rounding: A^T A has no negative eigenvalues)
    if start == 0 and end > 1 and any(s.kind == "input" and s.ws_index == 0 for s in style_layers(G)):
        start = 1  # (StyleGAN3's row 0 turns and shifts the input, which was not factorized: left alone)
    return Factorization(dirs.astype(np.float32), values[order[:k]].numpy(), (start, end), float(values.sum()))


def fixed_signs(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors [K, D] (an eigenvector's sign is arbitrary) with each one's largest component
    positive, so the same network gives the same directions every time."""
    top = np.abs(vectors).argmax(axis=1)
    return vectors * np.sign(vectors[np.arange(len(vectors)), top])[:, None]
