"""`ganinstrument check FILE...`: validate mapping and preset files, every problem at once.

Names of targets depend on the model, so files are checked against a registry: by default
the built-in demo network's (StyleGAN2, 8 z groups, no second model), or the one given with
`--model` / `--model-b` (the model you will play), or none with `--structure-only`.
A file is a preset when its top level has `targets` / `latent` / `edits` / `blends`,
otherwise a mapping.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..common import userdirs
from ..common.text import shorten_repr
from ..common.yamlsafe import PRESET_BYTES, YamlError, read_text
from ..mapping.checks import Problem
from ..mapping.located import LDict, load_located
from ..mapping.parse import load_mapping
from ..mapping.schema import MappingError
from ..modulation import SIGNALS
from ..state.params import Registry
from ..state.presets import PresetError, load_preset_file

PRESET_KEYS = ("targets", "latent", "edits", "blends", "saved_at", "models")


def registry_for(model: str | None = "demo", model_b: str | None = None, directions="auto") -> Registry:
    """The registry of an instrument with these models (loaded on the CPU) and directions."""
    from ..instrument.facade import Instrument

    return Instrument(model, model_b=model_b, device="cpu", directions=directions).registry


def check_file(path, registry: Registry | None) -> tuple[str, list[str], list[str]]:
    """Check one file: (a one-line summary, problems as "file:line: ..." lines, warnings)."""
    path = Path(path)
    if not path.exists():  # a name: a mapping or a preset in the user's or the shipped folders
        found = userdirs.find(path, "mappings") or userdirs.find(path, "presets")
        if found is None:
            folders = userdirs.search_folders("mappings") + userdirs.search_folders("presets")
            return "", [f"{path}: no such file ({userdirs.looked_in(path, folders)})"], []
        path = found
    kind = _kind_of(path)
    if kind == "preset":
        return _check_preset(path, registry)
    try:
        # (without a model, the features are still checked: signals do not depend on one)
        mapping = load_mapping(path, registry, None if registry is not None else {s.name: s for s in SIGNALS})
    except MappingError as exc:
        return "", [p.format(exc.path) for p in exc.problems], []
    n = sum(1 for _ in mapping.all_bindings())
    name = f" {shorten_repr(mapping.info.name)}" if mapping.info.name else ""
    extra = f", {len(mapping.modulation)} modulation routes" if mapping.modulation else ""
    pages = sum(len(b.pages) for b in mapping.banks)
    extra += f", {len(mapping.banks)} banks with {pages} pages" if mapping.banks else ""
    return f"mapping{name}: {n} bindings{extra}", [], list(mapping.warnings)


def _kind_of(path: Path) -> str:
    try:
        data = load_located(read_text(path, PRESET_BYTES))
    except (OSError, YamlError):
        return "mapping"  # load_mapping reports it with the line
    if isinstance(data, LDict) and any(k in data for k in PRESET_KEYS) and "bindings" not in data:
        return "preset"
    return "mapping"


def _check_preset(path: Path, registry: Registry | None):
    try:
        preset = load_preset_file(path)
    except PresetError as exc:
        return "", [f"{exc.path}: {p}" for p in exc.problems], []
    problems = []
    if registry is not None:
        data = load_located(read_text(path, PRESET_BYTES))
        for name in preset.targets:
            if name in registry.targets:
                continue
            line = next((data[s].line_of(name) for s in ("targets", "edits", "blends")
                         if isinstance(data.get(s), LDict) and name in data[s]), data.line)
            close = Registry.suggest(name, registry.targets)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else \
                "this model has no such target; check with the model the preset was made for (--model)"
            problems.append(Problem(line, f"unknown target {shorten_repr(name)} (recall skips it)",
                                    hint).format(str(path)))
    return f"preset {shorten_repr(preset.name)}: {len(preset.targets)} targets", problems, []


def run_check(paths, registry: Registry | None, out=None) -> int:
    """Check every file, print "OK file: summary" or its problems; 0 when all are good, else 1."""
    out = out or sys.stdout
    bad = 0
    for path in paths:
        summary, problems, warnings = check_file(path, registry)
        if problems:
            bad += 1
            print(f"FAIL {path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}", file=out)
            for line in problems:
                print(f"  {line}", file=out)
        else:
            print(f"OK   {path}: {summary}", file=out)
        for line in warnings:
            print(f"  warning: {line}", file=out)
    if bad:
        print(f"{bad} of {len(paths)} files have problems", file=out)
    return 1 if bad else 0
