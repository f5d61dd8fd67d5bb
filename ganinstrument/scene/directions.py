"""Feature directions for the latent scene: loading `.npy` files and measuring their scale.

A directions file holds K directions, [K, D] (or GANSpace's `lat_comp` layout [K, 1, D]), in W
space (D = w_dim) or z space (D = z_dim). They are normalised to unit length; the scene expresses
each `dir.k` in standard deviations of the model's latents along the direction, so one range
fits every file whatever its vectors' lengths.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..common.errors import GanInstrumentError

__all__ = ["DirectionsFileError", "load_directions", "w_direction_scales"]

_SAMPLES = 1000  # w samples used to measure each W direction's standard deviation


class DirectionsFileError(GanInstrumentError, ValueError):
    """A directions file that cannot be used; names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"{self.path}: {reason}")


def load_directions(path: str | os.PathLike, dim: int, space: str) -> np.ndarray:
    """Unit-length directions [K, dim] (float64) from a `.npy` file; every problem names the file."""
    try:
        arr = np.load(os.fspath(path), allow_pickle=False)
    except FileNotFoundError:
        raise DirectionsFileError(path, "no such file") from None
    except (OSError, ValueError, EOFError) as exc:  # ValueError: not .npy, or pickled objects
        raise DirectionsFileError(path, f"not a readable .npy array ({exc})") from exc
    if not isinstance(arr, np.ndarray):  # an .npz archive
        raise DirectionsFileError(path, "expected one .npy array, got an .npz archive; save the array with np.save")
    expected = f"[K, {dim}] ({space}-space directions)"
    if arr.ndim == 3 and arr.shape[1] == 1:  # GANSpace's lat_comp layout [K, 1, D]
        arr = arr[:, 0]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise DirectionsFileError(path, f"shape {list(arr.shape)} does not fit: expected {expected}")
    if arr.shape[0] == 0:
        raise DirectionsFileError(path, "holds no directions (K = 0)")
    if arr.dtype.kind not in "fiu":
        raise DirectionsFileError(path, f"dtype {arr.dtype} is not numeric")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise DirectionsFileError(path, "contains NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1)
    if (norms == 0).any():
        raise DirectionsFileError(path, f"direction(s) {np.flatnonzero(norms == 0).tolist()} are all zeros")
    return arr / norms[:, None]


@torch.no_grad()
def w_direction_scales(G, u: torch.Tensor) -> torch.Tensor:
    """Standard deviation [K] of w along each unit direction u [K, w_dim], from sampled z.

    Seeded, so the same network gives the same scales; conditional networks get random labels.
    A degenerate (zero or non-finite) spread counts as 1.
    """
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(_SAMPLES, G.z_dim, generator=gen).to(u.device)  # [S, z_dim]
    c = None
    if G.c_dim > 0:
        labels = torch.randint(G.c_dim, (_SAMPLES,), generator=gen)
        c = torch.nn.functional.one_hot(labels, G.c_dim).float().to(u.device)  # [S, c_dim]
    w = G.mapping(z, c, truncation_psi=1)[:, 0].to(u.dtype)  # [S, w_dim]
    sigma = ((w - w.mean(dim=0)) @ u.T).std(dim=0)  # [K]
    return torch.where(torch.isfinite(sigma) & (sigma > 0), sigma, torch.ones_like(sigma))
