"""The typed objects that cross the instrument's boundaries.

sources --ControlEvent--> mapping --ParamUpdate--> state. Both are frozen, small and cheap
to make: they are created per MIDI message or audio block. `Messages` carries what parts say
to the HUD.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ControlEvent:
    """Something a control source saw, raw: no mapping logic has touched it yet.

    `kind`: a mido message type for MIDI ("control_change", "note_on", "note_off",
    "pitchwheel", "aftertouch", "polytouch", "program_change"), "osc" for OSC messages, or
    "feature" for audio features. `channel` is the MIDI channel 0..15 (0 otherwise); `number`
    the controller, note or program number (0 when the kind has none); `value` the raw value
    (0..127 for 7-bit data, -8192..8191 for pitchwheel as mido gives it, an OSC message's
    first argument, a feature's value); `timestamp` seconds on the instrument's clock when it
    arrived; `source` the port name, "osc" or "audio"; `address` the OSC address or the
    feature name ("onset", "rms_db", "bands.low").
    """

    kind: str
    channel: int = 0
    number: int = 0
    value: float = 0.0
    timestamp: float = 0.0
    source: str = ""
    address: str = ""


@dataclass(frozen=True, slots=True)
class ParamUpdate:
    """Set a target to `value`, or fire an action (`action=True`, `value` its optional argument).

    `smoothing_ms`: a per-binding override of the target's smoothing time (None: the target's
    own). `immediate`: jump without smoothing (preset recall, panic). `source`: who asked, for
    the HUD and logs ("midi:nanoKONTROL2 cc 0", "osc", "preset"). `quantize`: an action that
    waits for the beat clock's next boundary (mapping.schema.QUANTIZE_GRIDS: "beat", "bar", ...).
    `time_s`: when the control that made it moved (the show clock), for actions that care (a
    tap); None: the frame's time.
    """

    target: str
    value: float = 0.0
    action: bool = False
    smoothing_ms: float | None = None
    immediate: bool = False
    source: str = ""
    quantize: str | None = None
    time_s: float | None = None


class Messages(deque):
    """A bounded deque of messages for the HUD that counts every one ever added (`said`), so a
    reader tells a new message from an old one with the same text."""

    def __init__(self, maxlen: int):
        super().__init__(maxlen=maxlen)
        self.said = 0

    def append(self, message) -> None:
        super().append(message)
        self.said += 1

    def extend(self, messages) -> None:
        for message in messages:
            self.append(message)
