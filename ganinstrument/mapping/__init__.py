"""ControlEvents -> ParamUpdates: YAML mappings (schema), value transforms, soft takeover, router.

    from ganinstrument.mapping import load_mapping, Router
    mapping = load_mapping(find_mapping("korg-nanokontrol2"), inst.registry)  # resolve.py
    router = Router(mapping, inst.registry, clock, current=inst.state.target)

Modulation routes (from modulation signals: audio features) are parsed here too
(`ModulationRoute`; their signals are checked against the registry); their runtime is
`modulation.routes`.
"""

from .parse import load_mapping, parse_mapping
from .router import Router
from .schema import Bank, Binding, DeviceMatch, Info, Mapping, MappingError, ModulationRoute, Page, Problem, Source

__all__ = ["Bank", "Binding", "DeviceMatch", "Info", "Mapping", "MappingError", "ModulationRoute", "Page",
           "Problem", "Router", "Source", "load_mapping", "parse_mapping"]
