"""The latent side of what a performer plays: seeds, z groups, psi and cutoff, style mixing, directions.

From the current (smoothed) target values the scene builds the ws that the synthesis network takes:

    z       = base(seed) + sum_i z.i * d_i  (+ z-space directions)          # [1, z_dim]
    ws0     = G.mapping(z, c)          cached: run again only when z or c changed
    ws      = lerp(ws0, ws0(mix.seed), mix.amount on rows mix.start..mix.end-1)
            + sum_k dir.k * sigma_k * u_k                                     (W-space directions)
    ws[:, :cutoff] = w_avg.lerp(ws[:, :cutoff], psi)                          (truncation, as NVlabs)

- `base(s)` for a whole seed s is `np.random.RandomState(s).randn(z_dim)`, the latent NVlabs'
  `gen_images.py` draws, so seed 42 here is seed 42 in the user's other tools. A fractional seed
  slerps between floor(s) and floor(s) + 1, so a smoothed `seed` crossfades between seeds.
- Group i owns contiguous z dims; `d_i` is a fixed random +-1 pattern on them, so z.i = 1 moves
  each of its dims by exactly one standard deviation of the prior.
- `cutoff` and the mixing range may be fractional (they are smoothed): the row at the edge is
  truncated / mixed by the fractional part, so whole values match NVlabs exactly and the
  performer's fader never jumps.
- Directions (`.npy`, [K, w_dim] or [K, z_dim], e.g. GANSpace components) are normalised to unit
  length; `dir.k` = 1 moves one standard deviation of the model's w (or z) along direction k.
  W-space directions are added before truncation, so psi scales them like everything else.

The scene is driven by the state layer: `targets()` and `actions()` go into the registry,
`action_updates` turns a button into new target values, and the engine calls `ws(values)` per
frame. Everything here runs on the engine thread.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..common.errors import GanInstrumentError
from ..generator.device import upload
from ..state.params import ActionSpec, Registry, TargetSpec, UnknownTargetError
from .directions import DirectionSet, DirectionsFileError, auto_directions, load_direction_set, w_direction_scales
from .noise import perlin_pattern

__all__ = ["SEED_MAX", "DirectionsFileError", "LatentConfig", "LatentConfigError", "LatentScene", "slerp"]

SEED_MAX = 2**32 - 1  # np.random.RandomState accepts seeds 0 .. 2**32 - 1
_SEED_CACHE_SIZE = 8


class LatentConfigError(GanInstrumentError, ValueError):
    """A latent configuration that does not fit the network (group sizes, class index, ...)."""


@dataclass(frozen=True)
class LatentConfig:
    """How the latent scene is laid out. Validated against the network by `LatentScene`.

    `groups`: the number of z groups (contiguous dims, sizes as even as possible, the first
    groups one dim larger), or the explicit group sizes (they must add up to z_dim).
    `group_range`: z group faders span +-group_range prior standard deviations.
    `base_seed`: the default `seed` (the mixing latent defaults to base_seed + 1).
    `group_direction_seed`: seeds the fixed +-1 pattern each group moves its dims along.
    `action_seed`: seeds the random buttons (`z.random`, `z.perlin`); they advance per press.
    `class_index`: default label of a conditional network (the `class` target).
    `directions`: None, a DirectionSet, "auto" (found in the network: directions.auto_directions, SeFa), or a
    `.npy` / `.npz` file of K directions (directions.py: [K, D], GANSpace's [K, 1, D], or ours
    with each direction's ws rows); `directions_space` says whether a file's D is w_dim ("w") or
    z_dim ("z") (the two are often equal; an `.npz` says its own). `directions_key`: the model
    file's content hash, under which "auto" directions are cached (None: not cached).
    `direction_range`: `dir.k` spans +-direction_range standard deviations.
    """

    groups: int | tuple[int, ...] = 8
    group_range: float = 3.0
    base_seed: int = 0
    group_direction_seed: int = 0
    action_seed: int = 0
    class_index: int = 0
    directions: str | os.PathLike | DirectionSet | None = None
    directions_space: str = "w"
    directions_key: str | None = None
    direction_range: float = 5.0

    def __post_init__(self) -> None:
        if isinstance(self.groups, int):
            if self.groups < 1:
                raise LatentConfigError(f"groups must be at least 1, got {self.groups}")
        elif not (len(self.groups) > 0 and all(isinstance(s, int) and s >= 1 for s in self.groups)):
            raise LatentConfigError(f"group sizes must be positive whole numbers, got {self.groups!r}")
        else:
            object.__setattr__(self, "groups", tuple(self.groups))
        for name in ("group_range", "direction_range"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise LatentConfigError(f"{name} must be a positive number, got {value!r}")
        if not 0 <= self.base_seed < SEED_MAX:
            raise LatentConfigError(f"base_seed must be in range 0..{SEED_MAX - 1}, got {self.base_seed}")
        if self.directions_space not in ("w", "z"):
            raise LatentConfigError(f"directions_space must be 'w' or 'z', got {self.directions_space!r}")


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from `a` (t = 0) to `b` (t = 1): the angle is interpolated
    spherically and the length linearly, so Gaussian latents keep a typical norm on the way
    (a plain lerp halfway between two independent ones is ~0.71 as long)."""
    if t == 0.0:
        return a
    if t == 1.0:
        return b
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return (1.0 - t) * a + t * b
    ua, ub = a / na, b / nb
    omega = math.acos(min(max(float(ua @ ub), -1.0), 1.0))
    if math.sin(omega) < 1e-6:  # (anti)parallel: the great circle is undefined; lerp instead
        return (1.0 - t) * a + t * b
    direction = (math.sin((1.0 - t) * omega) * ua + math.sin(t * omega) * ub) / math.sin(omega)
    return direction * ((1.0 - t) * na + t * nb)


def _group_sizes(groups: int | tuple[int, ...], z_dim: int) -> tuple[int, ...]:
    if isinstance(groups, int):
        if groups > z_dim:
            raise LatentConfigError(f"{groups} z groups do not fit in z_dim={z_dim}; use at most {z_dim}")
        q, r = divmod(z_dim, groups)
        return tuple(q + 1 if i < r else q for i in range(groups))
    if sum(groups) != z_dim:
        raise LatentConfigError(f"group sizes {groups} add up to {sum(groups)}, but z_dim is {z_dim}")
    return groups


def _module_device(G) -> torch.device:
    for tensor in (*G.parameters(), *G.buffers()):
        return tensor.device
    return torch.device("cpu")


class _MappingCache:
    """The untruncated mapping output for one (z, class) pair."""

    __slots__ = ("z", "cls", "ws")

    def __init__(self) -> None:
        self.z: np.ndarray | None = None
        self.cls: int | None = None
        self.ws: torch.Tensor | None = None  # [1, num_ws, w_dim]


_ACTIONS = (
    ActionSpec("seed.next", "the next seed; the scene crossfades through the seed's smoothing"),
    ActionSpec("seed.prev", "the previous seed (not below 0)"),
    ActionSpec("z.random", "every z group to a random value, N(0, 1) in prior standard deviations, clipped to range"),
    ActionSpec("z.zero", "every z group to 0: the seed's own latent"),
    ActionSpec("z.min", "every z group to its minimum"),
    ActionSpec("z.max", "every z group to its maximum"),
    ActionSpec("z.perlin", "the z groups to a smooth random wave across the group index (Perlin noise)"),
)


class LatentScene:
    """Target values -> ws [1, num_ws, w_dim] for the synthesis network of `G`.

    `mapping_calls` counts how often the mapping network ran (the cache's misses).
    """

    def __init__(self, G, config: LatentConfig = LatentConfig(), device=None):
        self.G, self.config = G, config
        self.device = torch.device(device) if device is not None else _module_device(G)
        self.z_dim, self.w_dim = int(G.z_dim), int(G.w_dim)
        self.c_dim, self.num_ws = int(G.c_dim), int(G.num_ws)
        self.group_sizes = _group_sizes(config.groups, self.z_dim)
        if self.c_dim > 0 and not 0 <= config.class_index < self.c_dim:
            raise LatentConfigError(f"class_index {config.class_index} out of range 0..{self.c_dim - 1}")
        rng = np.random.default_rng(config.group_direction_seed)
        self._group_signs = rng.choice([-1.0, 1.0], size=self.z_dim)  # [z_dim] the d_i, side by side
        self._dir_space = config.directions_space
        self._dirs = np.zeros((0, self.z_dim))  # [K, z_dim] unit z-space directions
        self._dirs_w = torch.zeros(0, self.w_dim, device=self.device)  # [K, w_dim] u_k * sigma_k
        self._dir_rows = np.tile([0, self.num_ws], (0, 1))  # [K, 2] the ws rows each W direction moves
        self._dir_mask: torch.Tensor | None = None  # [K, num_ws] 0/1, None when all move every row
        self._dir_source = ""
        if config.directions is not None:
            if isinstance(config.directions, DirectionSet):  # (found here: a sheet of them)
                found = config.directions
            elif os.fspath(config.directions) == "auto":
                found = auto_directions(G, config.directions_key)
            else:
                found = load_direction_set(config.directions, w_dim=self.w_dim, z_dim=self.z_dim,
                                           num_ws=self.num_ws, space=self._dir_space)
            self._dir_space, self._dir_source = found.space, found.source
            if found.space == "z":
                self._dirs = found.vectors  # the prior is N(0, I): one std along a unit vector is length 1
            else:
                u = torch.from_numpy(found.vectors).to(self.device)  # [K, w_dim] float64
                self._dirs_w = (u * w_direction_scales(G, u)[:, None]).float()
                self._dir_rows = found.rows
                rows = np.arange(self.num_ws)
                mask = (rows >= found.rows[:, :1]) & (rows < found.rows[:, 1:])  # [K, num_ws]
                if not mask.all():  # (directions on every row: one row vector, broadcast)
                    self._dir_mask = torch.from_numpy(mask.astype(np.float32)).to(self.device)
        self._specs = {spec.name: spec for spec in self._build_targets()}
        self._group_names = [f"z.{i}" for i in range(len(self.group_sizes))]
        self._dir_names = [f"dir.{k}" for k in range(self.num_directions)]
        self._action_rng = np.random.default_rng(config.action_seed)
        self._seed_cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._main, self._mix = _MappingCache(), _MappingCache()
        self._base_z_override: np.ndarray | None = None
        self.mapping_calls = 0

    # ------------------------------------------------------------------ registry

    @property
    def num_directions(self) -> int:
        return self._dirs.shape[0] + self._dirs_w.shape[0]

    def targets(self) -> list[TargetSpec]:
        return list(self._specs.values())

    def actions(self) -> list[ActionSpec]:
        return list(_ACTIONS)

    def _build_targets(self) -> list[TargetSpec]:
        cfg, n = self.config, self.num_ws
        crossfade = dict(kind="step", smoothing="one_pole", smoothing_ms=300.0, unit="seed")
        specs = [
            TargetSpec("seed", 0, SEED_MAX, cfg.base_seed, **crossfade,
                       doc="base latent: the Gaussian z of this seed (as NVlabs gen_images.py); "
                           "fractional values (while smoothing) slerp to the next seed"),
        ]
        r = cfg.group_range
        specs += [
            TargetSpec(f"z.{i}", -r, r, 0.0, unit="sd",
                       doc=f"moves z dims {a}..{a + size - 1} along a fixed +-1 pattern, in prior standard deviations")
            for i, (a, size) in enumerate(zip(np.cumsum((0,) + self.group_sizes[:-1]), self.group_sizes))
        ]
        specs += [
            TargetSpec("psi", -1.0, 2.0, 1.0, doc="truncation: 1 as trained, 0 the average image (w_avg), "
                       "between them toward the average, above 1 exaggerated, below 0 mirrored"),
            TargetSpec("cutoff", 0, n, n, unit="layers",
                       doc=f"psi applies to the first `cutoff` ws rows ({n} = all); fractional values fade the edge row"),
            TargetSpec("mix.seed", 0, SEED_MAX, min(cfg.base_seed + 1, SEED_MAX), **crossfade,
                       doc="style mixing: the seed of the second latent"),
            TargetSpec("mix.amount", 0.0, 1.0, 0.0, doc="style mixing: how far the second latent takes over its rows"),
            TargetSpec("mix.start", 0, n, n // 2, unit="layer", doc="style mixing: first ws row taken over"),
            TargetSpec("mix.end", 0, n, n, unit="layer", doc="style mixing: ws rows before this one are taken over"),
        ]
        if self.c_dim > 0:
            specs.append(TargetSpec("class", 0, self.c_dim - 1, cfg.class_index, kind="choice",
                                    smoothing="none", smoothing_ms=0.0,
                                    choices=tuple(str(i) for i in range(self.c_dim)),
                                    doc="label of the conditional network (one-hot c)"))
        d = cfg.direction_range
        specs += [
            TargetSpec(f"dir.{k}", -d, d, 0.0, unit="sd",
                       doc=f"{self._dir_space}-space direction {k} of {self._dir_source}{self._rows_doc(k)}, "
                           "in standard deviations of the model's latents along it")
            for k in range(self.num_directions)
        ]
        return specs

    def _rows_doc(self, k: int) -> str:
        if self._dir_space == "z" or self._dir_mask is None:
            return ""
        start, end = (int(v) for v in self._dir_rows[k])
        return f", on ws rows {start}..{end - 1}"

    # ------------------------------------------------------------------ actions

    def action_updates(self, name: str, targets: Mapping[str, float]) -> dict[str, float]:
        """The new target values action `name` produces from the current `targets` (missing
        names count as their defaults). Random buttons draw from the scene's action RNG, which
        advances per press: the same config and the same presses give the same values."""
        if name in ("seed.next", "seed.prev"):
            spec = self._specs["seed"]
            seed = spec.clamp(float(targets.get("seed", spec.default)))
            return {"seed": spec.clamp(seed + (1 if name == "seed.next" else -1))}
        n, r = len(self._group_names), self.config.group_range
        if name == "z.random":
            values = np.clip(self._action_rng.standard_normal(n), -r, r)
        elif name == "z.perlin":
            values = perlin_pattern(n, self._action_rng) * r
        elif name in ("z.zero", "z.min", "z.max"):
            values = np.full(n, {"z.zero": 0.0, "z.min": -r, "z.max": r}[name])
        else:
            raise UnknownTargetError(name, Registry.suggest(name, [a.name for a in _ACTIONS]), "action")
        return {key: float(v) for key, v in zip(self._group_names, values)}

    # ------------------------------------------------------------------ latents

    def _value(self, values: Mapping[str, float], name: str) -> float:
        """The value of `name`, clipped to its range (not rounded: seeds may be mid-crossfade)."""
        spec = self._specs[name]
        value = values.get(name, spec.default)
        try:
            value = float(value)
        except (TypeError, ValueError):
            return spec.default
        if not math.isfinite(value):
            return spec.default
        return min(max(value, spec.minimum), spec.maximum)

    def _seed_z(self, seed: int) -> np.ndarray:
        z = self._seed_cache.get(seed)
        if z is None:
            z = np.random.RandomState(seed).randn(self.z_dim)  # [z_dim] float64, as gen_images.py
            self._seed_cache[seed] = z
            if len(self._seed_cache) > _SEED_CACHE_SIZE:
                self._seed_cache.popitem(last=False)
        else:
            self._seed_cache.move_to_end(seed)
        return z

    def seed_z(self, seed: float) -> np.ndarray:
        """The base latent [z_dim] (float64, a new array) of a seed value; fractional seeds slerp."""
        seed = min(max(float(seed), 0.0), float(SEED_MAX))
        lo = math.floor(seed)
        t = seed - lo
        if t == 0.0:
            return self._seed_z(lo).copy()
        return slerp(self._seed_z(lo), self._seed_z(lo + 1), t)

    def set_base_z(self, z) -> None:
        """Use an explicit base latent ([z_dim] or [1, z_dim]) instead of `seed`; None goes back to seeds."""
        if z is None:
            self._base_z_override = None
            return
        if isinstance(z, torch.Tensor):
            z = z.detach().cpu().numpy()
        z = np.asarray(z, dtype=np.float64)
        if z.shape not in ((self.z_dim,), (1, self.z_dim)):
            raise LatentConfigError(f"base z must have shape [{self.z_dim}] or [1, {self.z_dim}], got {list(z.shape)}")
        if not np.isfinite(z).all():
            raise LatentConfigError("base z contains NaN or infinite values")
        self._base_z_override = z.reshape(self.z_dim).copy()

    @property
    def base_z_override(self) -> np.ndarray | None:
        """The explicit base latent [z_dim] (a copy), or None when `seed` chooses it."""
        return None if self._base_z_override is None else self._base_z_override.copy()

    def _z_np(self, values: Mapping[str, float]) -> np.ndarray:
        base = self._base_z_override
        if base is None:
            base = self.seed_z(self._value(values, "seed"))
        groups = np.array([self._value(values, name) for name in self._group_names])  # [n_groups]
        z = base + self._group_signs * np.repeat(groups, self.group_sizes)  # [z_dim]
        if self._dirs.shape[0]:
            z = z + np.array([self._value(values, name) for name in self._dir_names]) @ self._dirs
        return z

    def z(self, values: Mapping[str, float]) -> torch.Tensor:
        """The latent [1, z_dim] (float32, on the scene's device) that the targets describe."""
        return upload(self._z_np(values).astype(np.float32), self.device).reshape(1, self.z_dim)

    # ------------------------------------------------------------------ ws

    def invalidate(self) -> None:
        """Forget the cached mapping outputs: call when the mapping network's weights change."""
        self._main, self._mix = _MappingCache(), _MappingCache()

    def _class(self, values: Mapping[str, float]) -> int | None:
        return int(round(self._value(values, "class"))) if self.c_dim > 0 else None

    def _mapped(self, cache: _MappingCache, z: np.ndarray, cls: int | None) -> torch.Tensor:
        if cache.ws is not None and cache.cls == cls and np.array_equal(cache.z, z):
            return cache.ws
        z_t = upload(z.astype(np.float32), self.device).reshape(1, self.z_dim)  # [1, z_dim]
        c = None
        if cls is not None:
            c = torch.zeros(1, self.c_dim, device=self.device)  # [1, c_dim] one-hot
            c[0, cls] = 1.0
        cache.ws = self.G.mapping(z_t, c, truncation_psi=1)  # [1, num_ws, w_dim]
        cache.z, cache.cls = z.copy(), cls
        self.mapping_calls += 1
        return cache.ws

    def _row_weights(self, amount: float, start: float, end: float) -> np.ndarray:
        """Per-row mixing weights [num_ws]: `amount` on rows start..end-1, soft at fractional edges."""
        rows = np.arange(self.num_ws)
        inside = np.clip(rows + 1.0 - start, 0.0, 1.0) * np.clip(end - rows, 0.0, 1.0)
        return amount * inside

    @torch.no_grad()
    def ws(self, values: Mapping[str, float]) -> torch.Tensor:
        """ws [1, num_ws, w_dim] for the synthesis network from the current (smoothed) values.

        Missing names count as their defaults; out-of-range values are clipped, non-finite
        ones replaced by defaults, so this never raises on stage.
        """
        cls = self._class(values)
        ws = self._mapped(self._main, self._z_np(values), cls).clone()  # [1, num_ws, w_dim]
        weights = self._row_weights(self._value(values, "mix.amount"),
                                    self._value(values, "mix.start"), self._value(values, "mix.end"))
        if weights.any():
            mix_z = self.seed_z(self._value(values, "mix.seed"))
            ws_mix = self._mapped(self._mix, mix_z, cls)
            weight_t = upload(weights, ws.device, ws.dtype).reshape(1, -1, 1)
            ws = torch.lerp(ws, ws_mix, weight_t)
        if self._dirs_w.shape[0]:
            amounts = np.array([self._value(values, n) for n in self._dir_names])  # [K]
            if amounts.any():  # decided on the host: no device sync per frame
                amounts_t = upload(amounts, ws.device, ws.dtype)
                if self._dir_mask is None:
                    ws += (amounts_t @ self._dirs_w).reshape(1, 1, self.w_dim)
                else:  # each direction on its rows only (the others get exactly 0 added)
                    ws += ((amounts_t[:, None] * self._dir_mask).T @ self._dirs_w).unsqueeze(0)
        return self._truncate(ws, self._value(values, "psi"), self._value(values, "cutoff"))

    def _truncate(self, ws: torch.Tensor, psi: float, cutoff: float) -> torch.Tensor:
        if psi == 1.0 or cutoff <= 0.0:
            return ws
        w_avg = self.G.mapping.w_avg  # [w_dim]
        full = int(math.floor(cutoff))
        if full > 0:
            ws[:, :full] = w_avg.lerp(ws[:, :full], psi)  # exactly NVlabs' truncation
        frac = cutoff - full
        if frac > 0.0 and full < self.num_ws:
            ws[:, full] = w_avg.lerp(ws[:, full], 1.0 + frac * (psi - 1.0))
        return ws

