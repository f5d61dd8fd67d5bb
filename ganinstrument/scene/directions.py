"""Feature directions for the latent scene: files, the ones found in the tool, their scale.

A directions file holds K directions in W space (D = w_dim) or z space (D = z_dim):

- `.npy`: [K, D] (or GANSpace's `lat_comp` layout [K, 1, D]); each direction moves every ws row.
- `.npz` (written by `ganinstrument directions`): `directions` [K, D], and optionally `layers`
  [K, 2] (each direction's ws rows, start and end, end excluded; W space only), `space` ("w" or
  "z"), `method` and `eigenvalues` (what found them; not read).

They are normalised to unit length; the scene expresses each `dir.k` in standard deviations of
the model's latents along the direction, so one range fits every file whatever its vectors'
lengths. `auto_directions` finds a set in the network itself (SeFa, scene/sefa.py): the leading
AUTO_PER_RANGE directions of the coarse, the middle and the fine rows, each on its own rows.
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass

import numpy as np
import torch

from ..common.errors import GanInstrumentError
from ..common.files import write_whole

__all__ = ["AUTO_PER_RANGE", "DirectionSet", "DirectionsFileError", "auto_directions", "load_direction_set",
           "save_direction_set", "w_direction_scales"]

log = logging.getLogger(__name__)

_SAMPLES = 1000  # w samples used to measure each W direction's standard deviation
AUTO_PER_RANGE = 4  # auto: this many SeFa directions for each of the coarse, middle and fine rows


@dataclass(frozen=True)
class DirectionSet:
    """Unit `vectors` [K, D] (float64) in `space` ("w" or "z"), direction k applied to ws rows
    `rows[k]` = (start, end) (end excluded); `source` says where they came from."""

    vectors: np.ndarray
    rows: np.ndarray
    space: str
    source: str


class DirectionsFileError(GanInstrumentError, ValueError):
    """A directions file that cannot be used; names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"{self.path}: {reason}")


def load_direction_set(path: str | os.PathLike, *, w_dim: int, z_dim: int, num_ws: int,
                       space: str = "w") -> DirectionSet:
    """A `.npy` or `.npz` directions file (module docstring) for a network of these sizes, in
    `space` unless the `.npz` says its own; every problem names the file."""
    dims = {"w": w_dim, "z": z_dim}
    loaded = _load(path)
    if isinstance(loaded, np.ndarray):
        vectors = _unit_rows(path, loaded, dims[space], space)
        return DirectionSet(vectors, np.tile([0, num_ws], (len(vectors), 1)), space, os.fspath(path))
    with loaded:
        keys = set(loaded.files)
        if "directions" not in keys:
            raise DirectionsFileError(path, f"an .npz without 'directions' (it holds {sorted(keys)})")
        try:
            file_space = str(loaded["space"]) if "space" in keys else space
            arr, layers = loaded["directions"], loaded["layers"] if "layers" in keys else None
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise DirectionsFileError(path, f"not a readable .npz ({exc})") from exc
    if file_space not in ("w", "z"):
        raise DirectionsFileError(path, f"space {file_space!r}: expected 'w' or 'z'")
    vectors = _unit_rows(path, arr, dims[file_space], file_space)
    if layers is None:
        rows = np.tile([0, num_ws], (len(vectors), 1))
    else:
        if file_space == "z":
            raise DirectionsFileError(path, "z-space directions move every ws row: 'layers' is for W space only")
        if layers.shape == (2,):
            layers = np.tile(layers, (len(vectors), 1))
        if layers.shape != (len(vectors), 2) or layers.dtype.kind not in "iu":
            raise DirectionsFileError(path, f"'layers' of shape {list(layers.shape)} ({layers.dtype}): expected "
                                            f"[{len(vectors)}, 2] integers (start, end) per direction")
        rows = layers.astype(np.int64)
        bad = np.flatnonzero((rows[:, 0] < 0) | (rows[:, 0] >= rows[:, 1]) | (rows[:, 1] > num_ws))
        if bad.size:
            raise DirectionsFileError(path, f"direction {int(bad[0])}'s rows {rows[bad[0]].tolist()} do not fit "
                                            f"this network's ws rows 0..{num_ws} (start < end <= {num_ws})")
    return DirectionSet(vectors, rows, file_space, os.fspath(path))


def save_direction_set(path: str | os.PathLike, dirs: DirectionSet, **extra: np.ndarray) -> None:
    """Write `dirs` to `path`: `.npz` with everything (plus `extra` arrays, e.g. eigenvalues), or
    `.npy` (the vectors alone, as GANSpace's: only for directions on every row). Written to a
    temporary file beside it, then moved into place: never half-written."""
    path = os.fspath(path)
    if path.endswith(".npy"):
        if not (dirs.rows[:, 0] == 0).all() or not (dirs.rows[:, 1] == dirs.rows[:, 1].max()).all():
            raise DirectionsFileError(path, "these directions are for some ws rows only, which an .npy "
                                            "cannot say: write an .npz")
        arrays = None
    elif path.endswith(".npz"):
        arrays = dict(directions=dirs.vectors.astype(np.float64), space=np.array(dirs.space), **extra)
        if dirs.space == "w":  # (z-space directions move every row: no rows to say)
            arrays["layers"] = dirs.rows.astype(np.int64)
    else:
        raise DirectionsFileError(path, "name the file .npz (directions and their rows) or .npy (GANSpace's layout)")
    with write_whole(path, path[-4:], lambda why: DirectionsFileError(path, f"cannot write there ({why})")) as tmp, \
            open(tmp, "wb") as f:
        if arrays is None:
            np.save(f, dirs.vectors.astype(np.float32))
        else:
            np.savez(f, **arrays)


def auto_directions(G, key: str | None = None) -> DirectionSet:
    """SeFa's AUTO_PER_RANGE leading directions of the coarse, the middle and the fine rows of G.

    With `key` (the model file's content hash) they are kept in the user's cache folder
    (userdirs.cache_dir()/directions, never beside the model) and read from there next time; a
    cache that cannot be read is made again, one that cannot be written is only logged."""
    cached = None
    if key is not None:
        from ..common.userdirs import cache_dir

        cached = cache_dir() / "directions" / f"{key}-sefa-auto{AUTO_PER_RANGE}.npz"
        if cached.is_file():
            try:
                found = load_direction_set(cached, w_dim=int(G.w_dim), z_dim=int(G.z_dim), num_ws=int(G.num_ws))
                if len(found.vectors) == 3 * AUTO_PER_RANGE and found.space == "w":
                    with np.load(cached) as kept:  # (as written, not normalised again: the same bits)
                        return DirectionSet(kept["directions"], found.rows, "w", "SeFa (auto)")
            except DirectionsFileError as exc:
                log.warning("%s; finding the directions again", exc)
    from .sefa import sefa

    vectors, rows = [], []
    for spec in ("coarse", "middle", "fine"):
        try:
            found = sefa(G, spec, count=AUTO_PER_RANGE)
        except ValueError:  # (a tiny network: a range with no rows, or none that drives a style)
            continue
        vectors.append(found.directions.astype(np.float64))
        rows += [found.layers] * len(found.directions)
    if not vectors:
        raise DirectionsFileError("SeFa", "this network has no style to factorize")
    found = DirectionSet(_unit_rows("SeFa", np.concatenate(vectors), int(G.w_dim), "w"),
                         np.array(rows, dtype=np.int64), "w", "SeFa (auto)")
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            save_direction_set(cached, found, method=np.array("sefa"))
        except OSError as exc:
            log.warning("cannot keep the model's directions in %s (%s); they are found again next time",
                        cached.parent, exc.strerror or exc)
    return found


def _load(path):
    try:
        return np.load(os.fspath(path), allow_pickle=False)
    except FileNotFoundError:
        raise DirectionsFileError(path, "no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # ValueError: not .npy/.npz, pickles
        raise DirectionsFileError(path, f"not a readable .npy or .npz ({exc})") from exc


def _unit_rows(path, arr: np.ndarray, dim: int, space: str) -> np.ndarray:
    """`arr` [K, dim] (or [K, 1, dim]) checked and normalised to unit rows (float64)."""
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
