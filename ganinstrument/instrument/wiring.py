"""A mapping made playable: its router for the controls, its modulation for the signals.

Shared by `perform` (live) and `render` (offline) through Instrument.use_mapping, so a
recorded session replays through exactly the same path it was played through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..common.clock import Clock
from ..mapping import Mapping, Router, load_mapping
from ..mapping.resolve import find_mapping
from ..modulation.routes import Modulation
from ..state.params import Registry


@dataclass(frozen=True)
class Controls:
    mapping: Mapping
    registry: Registry  # the instrument's, and the mapping's own names (LFOs' rate and depth, env.* actions)
    router: Router
    modulation: Modulation | None  # None: the mapping has no modulation routes
    warnings: tuple[str, ...]


def build_controls(mapping_name_or_path, registry: Registry, current: Callable[[str], float],
                   clock: Clock | None = None) -> Controls:
    """Load a mapping against `registry` and build its router (`current`: a target's value now,
    for soft takeover) and, if it has modulation routes, its modulation. The Controls' registry
    holds the mapping's own targets too (the instrument takes it: Instrument.use_mapping).

    Raises MappingError (every problem, with file:line) if it is broken.
    """
    mapping = load_mapping(find_mapping(mapping_name_or_path), registry)
    registry = registry.with_names(mapping.targets(), mapping.actions())
    router = Router(mapping, registry, clock, current=current)
    modulation = (Modulation(mapping.modulation, registry, mapping.signals(), mapping.envelopes)
                  if mapping.modulation else None)
    warnings = tuple(mapping.warnings) + (tuple(modulation.warnings) if modulation is not None else ())
    return Controls(mapping, registry, router, modulation, warnings)

