"""Text from outside (OSC addresses, file contents, error messages) made safe to show.

`visible` turns control and invisible characters into escapes a performer can read (a newline
in an OSC address shows as `\\n`, not as a second HUD line); `shorten` cuts a long text to a
limit and says how long it was. Both take anything and never raise.
"""

from __future__ import annotations

import unicodedata

# Unicode categories shown as escapes: controls, format characters (zero-width, bidi
# overrides), surrogates, private use, unassigned, line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: object) -> str:
    """`text` as a string with every control or invisible character escaped (\\n, \\x1b,
    \\u200b, ...); printable text, accents and other scripts stay as they are."""
    text = _as_str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == " " or unicodedata.category(ch) not in _HIDDEN:
            out.append(ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def shorten(text: object, limit: int = 80) -> str:
    """`visible(text)`, its first `limit` characters and then how long it was ("… (N
    characters)") if it is longer. Costs the same for a 50 MB text as for a short one."""
    text = _as_str(text)
    shown = visible(text[: limit + 1])  # (escapes only lengthen: the cut is within this)
    if len(text) <= limit and len(shown) <= limit:
        return shown
    return f"{shown[:max(1, limit)]}… ({len(text)} characters)"


def _as_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    try:
        return str(value)
    except Exception as exc:  # a hostile __str__
        return f"<{type(value).__name__}: {type(exc).__name__}>"


def shorten_repr(value: object, limit: int = 80) -> str:
    """`repr(value)` (quoted, as a message quotes a value from a file) cut like `shorten`."""
    try:
        text = repr(value)
    except Exception as exc:  # a hostile __repr__
        text = f"<{type(value).__name__}: {type(exc).__name__}>"
    return shorten(text, limit)
