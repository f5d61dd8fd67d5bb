"""One helper for showing user text (a name, a value, a file's content) inside a message.

A hostile or broken file can hold a 50 MB name; a message quotes at most `limit` characters of
it, then an ellipsis and how long it really was, so a message stays one readable line.
"""

from __future__ import annotations

__all__ = ["clip", "clip_repr"]

LIMIT = 80


def clip(text: str, limit: int = LIMIT) -> str:
    """`text` itself if it fits in `limit` characters, else its start, '…' and its length."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:max(limit - 1, 1)]}… ({len(text)} chars)"


def clip_repr(value, limit: int = LIMIT) -> str:
    """`repr(value)` clipped like `clip` (a long string, list or mapping from a file)."""
    if isinstance(value, str) and len(value) > limit:  # never repr a huge string whole
        return f"{repr(value[:limit])[:max(limit - 1, 1)]}… ({len(value)} chars)"
    return clip(repr(value), limit)
