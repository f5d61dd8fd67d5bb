"""The typed objects that cross the instrument's boundaries.

sources --ControlEvent--> mapping --ParamUpdate--> state. Both are frozen, small and cheap
to make: they are created per MIDI message or audio block.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ParamUpdate:
    """Set a target to `value`, or fire an action (`action=True`, `value` its optional argument).

    `smoothing_ms`: a per-binding override of the target's smoothing time (None: the target's
    own). `immediate`: jump without smoothing (preset recall, panic). `source`: who asked, for
    the HUD and logs ("midi:nanoKONTROL2 cc 0", "osc", "preset").
    """

    target: str
    value: float = 0.0
    action: bool = False
    smoothing_ms: float | None = None
    immediate: bool = False
    source: str = ""
