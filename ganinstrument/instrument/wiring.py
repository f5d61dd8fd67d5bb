"""Connecting an Instrument to a mapping: the router for controls, the modulation for audio.

Shared by `perform` (live) and `render` (offline), so a recorded session replays through
exactly the same path it was played through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..common.clock import Clock
from ..mapping import Router, load_mapping
from ..modulation.routes import Modulation
from ..mapping.resolve import find_mapping

log = logging.getLogger(__name__)


@dataclass
class Controls:
    mapping: object
    router: Router
    modulation: Modulation | None
    warnings: list[str]


def connect_mapping(inst, mapping_name_or_path, clock: Clock | None = None) -> Controls:
    """Load a mapping against `inst`'s registry, build its router (takeover re-armed after
    every preset recall) and, if it has audio routes, install its modulation on `inst`.

    Raises MappingError (every problem, with file:line) and changes nothing if it is broken.
    """
    mapping = load_mapping(find_mapping(mapping_name_or_path), inst.registry)
    router = Router(mapping, inst.registry, clock, current=inst.state.target)
    modulation = Modulation(mapping.modulation, inst.registry) if mapping.modulation else None
    inst.on_recall.append(router.rearm)
    inst.modulation = modulation
    warnings = list(mapping.warnings) + (list(modulation.warnings) if modulation is not None else [])
    return Controls(mapping, router, modulation, warnings)
