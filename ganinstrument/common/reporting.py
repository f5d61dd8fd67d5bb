"""What a part (a source, a sink) has to say on the HUD, whatever its kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class Reporting(Protocol):
    """A part the HUD reads: its news and its standing lines."""

    @property
    def messages(self) -> Sequence[str]:
        """What it has said, newest last (the HUD shows a new one for a few seconds)."""
        ...

    def hud_lines(self) -> Mapping[str, str]:
        """Lines it keeps up while they hold ("midi": "waiting for nanoKONTROL2"); {} for none."""
        ...


class Quiet:
    """A part with nothing to say and nothing to stop: recorded timelines, scripted sources."""

    messages: Sequence[str] = ()

    def hud_lines(self) -> Mapping[str, str]:
        return {}

    def close(self, timeout_s: float = 2.0) -> bool:
        return True

    def stop(self, timeout_s: float = 2.0) -> bool:
        return True
