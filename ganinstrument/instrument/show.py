"""The show's own actions, answered by the engine (and render), not the scene.

They are in every instrument's registry (`SHOW_ACTIONS`), so mappings, OSC and `learn` can use
them like any action.

Panic: hold the picture, or black it out, from a key, a controller pad or a recorded session.

Both are toggles. `panic.freeze` holds the last picture and ignores every input (controls,
audio) until pressed again, so the look comes back exactly as it was. `panic.blackout` sends
black while the scene goes on playing underneath; pressed again, the live picture returns.
The live engine and `render` share this, and the order a frame's controls are applied in
(`apply_controls`), so a session recorded with a blackout in it renders with the blackout in the
same place, and every move lands on the same frame.

`record.toggle` starts a take on the `takes` output, or ends the one recording
(outputs/takes.py); `render` ignores it.
"""

from __future__ import annotations

import torch

from ..common.events import ParamUpdate
from ..common.frame import Frame
from ..state.params import ActionSpec

FREEZE, BLACKOUT, RECORD = "panic.freeze", "panic.blackout", "record.toggle"
SHOW_ACTIONS = (
    ActionSpec(FREEZE, "hold the picture and ignore every input until pressed again"),
    ActionSpec(BLACKOUT, "send black (the scene plays on underneath) until pressed again"),
    ActionSpec(RECORD, "start a take on the takes output, or end the one recording"),
)
SHOW_ACTION_NAMES = frozenset(a.name for a in SHOW_ACTIONS)


class Panic:
    """The two toggles and what they do to the outgoing frame."""

    def __init__(self) -> None:
        self.frozen = False
        self.blackout = False
        self._black: Frame | None = None

    def handles(self, action: str) -> bool:
        return action in (FREEZE, BLACKOUT)

    def toggle(self, action: str) -> str | None:
        """Flip `action`'s toggle; returns a word for the HUD ("frozen", "back"...), or None if
        `action` is not a panic action."""
        if action == FREEZE:
            self.frozen = not self.frozen
            return "frozen" if self.frozen else "unfrozen"
        if action == BLACKOUT:
            self.blackout = not self.blackout
            return "blackout" if self.blackout else "blackout off"
        return None

    def output(self, frame: Frame) -> Frame:
        """The frame to send: black of the same size during a blackout, else `frame` itself."""
        if not self.blackout:
            return frame
        if self._black is None or self._black.pixels.shape != frame.pixels.shape \
                or self._black.pixels.device != frame.pixels.device:
            self._black = Frame(torch.zeros_like(frame.pixels), frame.timestamp, -1)
        return self._black.again(frame.timestamp)


def apply_controls(inst, panic: Panic, keys, updates, act) -> str:
    """Apply one frame's controls in the order the live engine and `render` share.

    `keys`: action names from the preview's keyboard, applied first; they act even while frozen
    (preset next/prev chosen while the picture is held shows when it is let go).
    `updates`: ParamUpdates (OSC's direct ones, then the mapping's), in arrival order. While
    frozen they are dropped, except the show's own actions: the pad that froze unfreezes.
    `act(update) -> bool`: the caller's handler for the show's actions (panic, takes, the beat
    clock's and the engine's own), given the action's ParamUpdate (a key's has source "key");
    True if it took the action, False to hand it to the instrument.

    Returns what was touched last ("target value"), for the HUD; "" when nothing was.
    """
    touched = ""
    with inst.batch():  # a burst of preset recalls plays only the last one
        for action in keys:
            key = ParamUpdate(action, action=True, source="key")
            if not act(key) and action in inst.actions():
                inst.apply(key)
        for update in updates:
            if update.action and act(update):
                continue
            if not panic.frozen and inst.apply(update):
                touched = f"{update.target} {update.value:.3g}"
    return touched
