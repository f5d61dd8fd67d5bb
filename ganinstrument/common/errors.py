"""The project's exceptions.

Every error derives from `GanInstrumentError` and also from the builtin it resembles, so a
caller can catch "anything from ganinstrument" or the familiar builtin (python-rtmidi's habit).
"""

from __future__ import annotations

import os

from .text import visible


class GanInstrumentError(Exception):
    """Base class of every error raised on purpose by ganinstrument."""


class ModelLoadError(GanInstrumentError, ValueError):
    """A model file could not be read: names the file and the reason, and what to do."""

    def __init__(self, path: str | os.PathLike | None, reason: str, hint: str | None = None):
        self.path = None if path is None else os.fspath(path)
        self.reason = _one_line(reason)  # (a reason may quote torch or pickle text of many lines)
        self.hint = None if hint is None else _one_line(hint)
        reason, hint = self.reason, self.hint
        where = f"{self.path}: " if self.path is not None else ""
        text = f"{where}{reason}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class ModelMismatchError(GanInstrumentError, ValueError):
    """Two networks (or a network and a weight set) do not fit together."""


class DeviceError(GanInstrumentError, OSError):
    """A compute or I/O device is missing or unusable."""


def _one_line(text: str, limit: int = 1000) -> str:
    """`text` on one line (runs of white space, newlines too, become one space), cut to about
    `limit` characters; only its start is read, however long it is."""
    text = str(text)
    head = " ".join(text[: 4 * limit].split())
    if len(head) <= limit and len(text) <= 4 * limit:
        return visible(head)
    return f"{visible(head[:limit])}… ({len(text)} characters)"
