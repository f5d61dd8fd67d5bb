"""What a modulation source gives the modulation each frame: a Reading.

A modulation source (audio features today; a beat clock, LFOs and envelopes next) gives named
values and named events. Its names are SignalSpecs in the instrument's registry
(state.params), declared in the source's own module; mappings' `modulation:` routes follow
them by name. Adding a source is a new file in this room: its SignalSpecs (added to the
registry in instrument.facade) and a class with `name`, `read()`, `stop()` and what it says on
the HUD (common.reporting.Reporting).

The engine reads every source once a frame, logs the Reading in a recorded session (so
`render` plays it back through modulation.recorded), and feeds it to the modulation unless
the picture is frozen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..common.reporting import Reporting


@dataclass(frozen=True)
class Event:
    """A named event ("onset.low") and when it happened on its source's own clock (for
    cooldowns), None when unknown."""

    name: str
    time_s: float | None = None


@dataclass(frozen=True)
class Reading:
    """One source's news for one frame.

    `values`: its signals' values now, by name; None for a signal with no value this frame
    (pitch while unvoiced): a route following it holds. `events`: its events since the last
    reading, oldest first. `silent`: the source has no input at all (no audio device, the
    input lost): routes following its values fall back to rest (x = 0) rather than hold a loud
    moment.
    """

    values: Mapping[str, float | None]
    events: tuple[Event, ...] = ()
    silent: bool = False

    def as_row(self) -> dict:
        """As a session file holds it (JSON)."""
        return {"values": dict(self.values), "events": [[e.name, e.time_s] for e in self.events],
                "silent": self.silent}


class ModulationSource(Reporting, Protocol):
    name: str  # "audio": its rows in a session, its lines on the HUD

    def read(self, t: float | None = None) -> Reading:
        """What it says for the frame at time `t` on the show clock (None: now; the engine
        gives the frame's time, so every source speaks of the same instant). Engine thread,
        once a frame. Never raises."""
        ...

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop its threads and devices; True if they stopped within `timeout_s`."""
        ...


class FeatureSource(Reporting, Protocol):
    """Where audio features come from (the live AudioInput; BlockSource offline), as
    AudioFeatures (modulation.audio) reads them."""

    def latest(self) -> Any:
        """The newest audio features (sources.audio.features.Features), or None: no input."""
        ...

    def drain_onsets(self) -> Sequence[Any]:
        """The onset events (with `kind` and `time_s`) since the last call, oldest first."""
        ...

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop (the audio stream, the features thread); True if it stopped within `timeout_s`."""
        ...
