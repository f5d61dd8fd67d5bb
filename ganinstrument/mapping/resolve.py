"""Which file a mapping name means: a path, else the user's mappings folder, else the shipped
mappings (userdirs.py says where those are). A name found nowhere is a MappingError that says
where it looked and which mappings are shipped."""

from __future__ import annotations

from pathlib import Path

from ..common import userdirs
from .checks import Problem
from .schema import MappingError


def find_mapping(name_or_path) -> Path:
    """The mapping file `name_or_path` means ("korg-nanokontrol2", "mine.yaml", "gig/x.yaml")."""
    found = userdirs.find(name_or_path, "mappings")
    if found is not None:
        return found
    where = userdirs.looked_in(name_or_path, userdirs.search_folders("mappings"))
    raise MappingError(name_or_path, [Problem(0, f"no such mapping file ({where})",
                                              f"shipped mappings: {', '.join(shipped_mappings())}")])


def shipped_mappings() -> list[str]:
    return userdirs.shipped_names("mappings")
