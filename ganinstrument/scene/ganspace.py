"""GANSpace: directions in W as the principal components of the w the mapping network makes.

E. Härkönen, A. Hertzmann, J. Lehtinen, S. Paris, "GANSpace: Discovering Interpretable GAN
Controls", NeurIPS 2020. Sample z from the prior (a random label each for a conditional network),
map them to w (the mapping network only: no image is drawn), and take the eigenvectors of the
covariance of w, largest variance first. The covariance is summed over batches in float64, so
100,000 samples cost memory for one batch only. Seeded: the same network, samples, seed and
batch size give the same components (a conditional network's labels are drawn batch by batch,
so another batch size draws other samples).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .sefa import fixed_signs

__all__ = ["Components", "ganspace", "sample_w"]

BATCH = 4096


@dataclass(frozen=True)
class Components:
    """`directions` [K, w_dim] orthonormal, by `variances` [K] (non-increasing: w's variance along
    each); `explained` [K] each one's share of w's total variance; `mean` [w_dim] the mean w."""

    directions: np.ndarray
    variances: np.ndarray
    explained: np.ndarray
    mean: np.ndarray


@torch.no_grad()
def sample_w(G, n: int, generator: torch.Generator) -> torch.Tensor:
    """`n` w [n, w_dim] (float64, on the CPU) of z drawn from the prior with `generator`."""
    device = next(G.mapping.parameters()).device
    z = torch.randn(n, G.z_dim, generator=generator, dtype=torch.float32)
    c = None
    if G.c_dim > 0:
        labels = torch.randint(G.c_dim, (n,), generator=generator)
        c = torch.nn.functional.one_hot(labels, G.c_dim).float().to(device)
    return G.mapping(z.to(device), c, truncation_psi=1)[:, 0].to("cpu", torch.float64)


def ganspace(G, samples: int = 100_000, count: int | None = None, seed: int = 0,
             on_progress: Callable[[int], None] | None = None, batch: int = BATCH) -> Components:
    """The `count` leading principal components of w over `samples` draws (all w_dim by default);
    `on_progress(done)` after each batch."""
    if samples < 2:
        raise ValueError(f"samples must be at least 2, got {samples}")
    generator = torch.Generator().manual_seed(int(seed))
    w_dim = int(G.w_dim)
    total = torch.zeros(w_dim, dtype=torch.float64)
    products = torch.zeros(w_dim, w_dim, dtype=torch.float64)
    done = 0
    while done < samples:
        w = sample_w(G, min(batch, samples - done), generator)
        total += w.sum(dim=0)
        products += w.T @ w
        done += len(w)
        if on_progress is not None:
            on_progress(done)
    mean = total / done
    cov = (products - done * torch.outer(mean, mean)) / (done - 1)
    values, vectors = torch.linalg.eigh(cov)  # ascending
    order = torch.argsort(values, descending=True)
    values = values.clamp_min(0)
    k = w_dim if count is None else max(1, min(int(count), w_dim))
    variances = values[order[:k]].numpy()
    return Components(fixed_signs(vectors[:, order[:k]].T.numpy()), variances,
                      variances / max(float(values.sum()), 1e-300), mean.numpy())
