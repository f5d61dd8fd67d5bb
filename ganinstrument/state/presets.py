"""Presets: a whole look in one YAML file, saved atomically, recalled at once or morphed.

A preset holds every preset-stored target value (z groups, psi, edits, blends, ...), the base
latent (a seed, which is a target, or an explicit vector), references to the models it was
made with (path and content hash: a mismatch is a warning, not a refusal, since a performer
may have moved or retrained a file) and `schema_version`.

Files are read like `yaml.safe_load`, within yamlsafe's limits (size, no aliases, depth), into
a frozen `Preset`; every problem in a file is reported at once in one `PresetError` that names
the file. A broken file never changes the current look: the caller only applies a preset that
parsed completely.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..common.errors import GanInstrumentError
from ..common.files import new_file_mode
from ..common.text import shorten, shorten_repr
from ..common.yamlsafe import PRESET_BYTES, YamlError, read_text
from ..common.yamlsafe import load as load_yaml

SCHEMA_VERSION = 1


class PresetError(GanInstrumentError, ValueError):
    """A preset file could not be read or written; names the file and every problem."""

    def __init__(self, path, problems: list[str]):
        self.path = os.fspath(path)
        self.problems = list(problems)
        shown = [shorten(p, 1000) for p in self.problems[:20]] + \
            ([f"... and {len(self.problems) - 20} more"] if len(self.problems) > 20 else [])
        text = f"{self.path}: " + ("; ".join(shown) if len(self.problems) < 2
                                     else f"{len(self.problems)} problems:\n  - " + "\n  - ".join(shown))
        super().__init__(text)


@dataclass(frozen=True)
class ModelRef:
    """Which model a preset was made with: `role` "a" or "b", its path and sha256."""

    role: str
    path: str
    sha256: str | None = None


@dataclass(frozen=True)
class Preset:
    targets: Mapping[str, float]
    latent: tuple[float, ...] | None = None  # explicit base z; None: the `seed` target decides
    models: tuple[ModelRef, ...] = ()
    name: str = ""
    saved_at: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: Mapping[str, object] = field(default_factory=dict)  # unknown top-level keys, kept on save


# -- hashing ------------------------------------------------------------------------------
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path) -> str | None:
    """sha256 of a file's bytes (cached by path, size and mtime); None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError:
            return None
        _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


# -- writing ------------------------------------------------------------------------------
class _FlowList(list):
    """A list written on a few wrapped lines ([a, b, ...]) rather than one item per line."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _FlowList, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def to_yaml_dict(preset: Preset) -> dict:
    """The plain structure written to disk; sections keep edits and blends easy to read."""
    plain, edits, blends = {}, {}, {}
    for name, value in preset.targets.items():
        section = edits if name.startswith("edit.") else blends if name.startswith("blend.") else plain
        section[name] = float(value)
    out: dict = {"schema_version": preset.schema_version, "name": preset.name,
                 "saved_at": preset.saved_at or _dt.datetime.now().isoformat(timespec="seconds")}
    out["models"] = [{"role": m.role, "path": m.path, "sha256": m.sha256} for m in preset.models]
    out["latent"] = ({"vector": _FlowList(float(v) for v in preset.latent)} if preset.latent is not None
                     else {"from": "seed"})
    out["targets"], out["edits"], out["blends"] = plain, edits, blends
    for key, value in preset.extra.items():
        out.setdefault(key, value)
    return out


def save_preset_file(path, preset: Preset) -> Path:
    """Write `preset` to `path` atomically: a temp file in the same folder, fsync, rename.

    A crash or kill mid-write leaves the previous file intact.
    """
    path = Path(path)
    text = yaml.dump(to_yaml_dict(preset), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = _mode_for(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise PresetError(path, [f"cannot write here: {exc.strerror or exc}"]) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            try:
                os.fchmod(f.fileno(), mode)  # mkstemp makes 0600; a preset is as readable as any file
            except OSError:  # a file system without modes (FAT, some network shares): keep going
                pass
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise PresetError(path, [f"cannot write: {exc.strerror or exc}"]) from None
        raise
    return path


def _mode_for(path: Path) -> int:
    """The permissions a saved preset gets: those of the file it replaces, else what the
    user's umask gives a new file."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return new_file_mode()


# -- reading ------------------------------------------------------------------------------
def _number(value, where: str, problems: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{where}: expected a number, got {type(value).__name__} {shorten_repr(value)}")
        return None
    if not math.isfinite(value):
        problems.append(f"{where}: expected a finite number, got {shorten_repr(value)}")
        return None
    return float(value)


def parse_preset(data, path) -> Preset:
    """Validate the structure `yaml.safe_load` gave; every problem at once in a PresetError."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise PresetError(path, [f"expected a mapping at the top level, got {type(data).__name__}"])
    version = data.get("schema_version")
    if version is None:
        problems.append("schema_version is missing (this file was not written by ganinstrument?)")
    elif not isinstance(version, int) or version < 1:
        problems.append(f"schema_version must be a positive whole number, got {shorten_repr(version)}")
    elif version > SCHEMA_VERSION:
        problems.append(f"schema_version {version} is newer than this ganinstrument understands "
                        f"({SCHEMA_VERSION}); update ganinstrument")
    targets: dict[str, float] = {}
    for section in ("targets", "edits", "blends"):
        block = data.get(section, {}) or {}
        if not isinstance(block, dict):
            problems.append(f"{section}: expected a mapping of name: value, got {type(block).__name__}")
            continue
        for name, value in block.items():
            number = _number(value, f"{section}.{shorten(name, 60)}", problems)
            if number is not None:
                targets[str(name)] = number
    latent = None
    lat = data.get("latent", {"from": "seed"}) or {"from": "seed"}
    if not isinstance(lat, dict):
        problems.append(f"latent: expected a mapping, got {type(lat).__name__}")
    elif "vector" in lat:
        vec = lat["vector"]
        if not isinstance(vec, list) or not vec:
            problems.append("latent.vector: expected a non-empty list of numbers")
        else:
            values = [_number(v, f"latent.vector[{i}]", problems) for i, v in enumerate(vec)]
            if all(v is not None for v in values):
                latent = tuple(values)
    elif lat.get("from", "seed") != "seed":
        problems.append(f"latent: expected 'from: seed' or 'vector: [...]', got {shorten_repr(lat)}")
    models = []
    for i, ref in enumerate(data.get("models", []) or []):
        if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
            problems.append(f"models[{i}]: expected a mapping with a 'path'")
            continue
        sha = ref.get("sha256")
        models.append(ModelRef(role=str(ref.get("role", "a")), path=ref["path"],
                               sha256=sha if isinstance(sha, str) else None))
    name = data.get("name", "")
    if problems:
        raise PresetError(path, problems)
    known = {"schema_version", "name", "saved_at", "models", "latent", "targets", "edits", "blends"}
    return Preset(targets=targets, latent=latent, models=tuple(models), name=str(name or ""),
                  saved_at=str(data.get("saved_at", "") or ""), schema_version=int(version),
                  extra={k: v for k, v in data.items() if k not in known})


def load_preset_file(path) -> Preset:
    """Read and validate a preset file. Raises PresetError naming the file and every problem."""
    path = Path(path)
    try:
        data = load_yaml(read_text(path, PRESET_BYTES))
    except FileNotFoundError:
        raise PresetError(path, ["no such preset file"]) from None
    except YamlError as exc:
        raise PresetError(path, [f"line {exc.line}: {exc}" if exc.line else str(exc)]) from None
    except OSError as exc:
        raise PresetError(path, [f"cannot read: {exc.strerror or exc}"]) from None
    return parse_preset(data, path)
