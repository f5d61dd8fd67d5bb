"""What the engine sees of a source, whatever its kind (live or recorded).

A control source hands over, each frame, the ControlEvents (raw MIDI-like moves, routed through
the mapping) and ParamUpdates (already named: OSC's direct addresses, a recorded session's keys
and updates) that arrived since the last frame, oldest first. A feature source gives the newest
audio features and the onsets since the last frame. Live ones (MidiInput, OscServer,
AudioInput) run their own threads and only queue; recorded ones (replay.TimelineControls,
replay.SessionFeatures, audio.offline.BlockSource following a clock) hand out what happened up
to their clock's time, so `render` drives the very engine `perform` does.

Every source reports to the HUD (common.reporting.Reporting: its news, its standing lines);
`common.reporting.Quiet` gives the defaults to a source with nothing to say or stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..common.events import ControlEvent, ParamUpdate
from ..common.reporting import Reporting


class ControlSource(Reporting, Protocol):
    def drain(self) -> Sequence[ControlEvent | ParamUpdate]:
        """Everything since the last call, oldest first. Never blocks, never raises."""
        ...

    def close(self, timeout_s: float = 2.0) -> bool:
        """Stop (threads, ports, sockets); True if it stopped within `timeout_s`."""
        ...


class FeatureSource(Reporting, Protocol):
    def latest(self) -> Any:
        """The newest audio features (a sources.audio.features.Features, or None: no audio)."""
        ...

    def drain_onsets(self) -> Sequence[Any]:
        """The onset events (with `kind` and `time_s`) since the last call, oldest first."""
        ...

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop (the audio stream, the features thread); True if it stopped within `timeout_s`."""
        ...
