"""What the engine sees of a control source, whatever its kind (live or recorded).

A control source hands over, each frame, the ControlEvents (raw MIDI-like moves, routed through
the mapping) and ParamUpdates (already named: OSC's direct addresses, a recorded session's keys
and updates) that arrived since the last frame, oldest first. Live ones (MidiInput, OscServer)
run their own threads and only queue; a recorded one (replay.TimelineControls) hands out what
happened up to its clock's time, so `render` drives the very engine `perform` does. (What the
audio gives goes through the modulation room: modulation.source.)

Every source reports to the HUD (common.reporting.Reporting: its news, its standing lines);
`common.reporting.Quiet` gives the defaults to a source with nothing to say or stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..common.events import ControlEvent, ParamUpdate
from ..common.reporting import Reporting


class ControlSource(Reporting, Protocol):
    def drain(self) -> Sequence[ControlEvent | ParamUpdate]:
        """Everything since the last call, oldest first. Never blocks, never raises."""
        ...

    def close(self, timeout_s: float = 2.0) -> bool:
        """Stop (threads, ports, sockets); True if it stopped within `timeout_s`."""
        ...
