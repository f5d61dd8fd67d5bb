"""Field checkers for the mapping schema (mido's habit: one checker per kind of field).

Each checker reads one key of a located YAML mapping, and either returns the value or records a
`Problem` (line, what was expected, a hint) in the `Checker` and returns None. Nothing raises
midway, so one pass over a file finds every problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..common.text import shorten, shorten_repr
from ..state.params import Registry
from .located import LDict, LList, line_of

__all__ = ["Problem", "Checker", "MISSING"]

MISSING = object()


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file: its 1-based `line`, what is wrong and expected, and a hint."""

    line: int
    message: str
    hint: str = ""

    def format(self, path: str) -> str:
        # the message quotes values from the file (clipped where it does); this bounds the rest
        return f"{path}:{self.line}: {shorten(self.message, 1000)}" + (f" (hint: {shorten(self.hint, 400)})"
                                                                     if self.hint else "")


class Checker:
    """Collects problems and warnings while a file is read."""

    def __init__(self, path: str):
        self.path = path
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def problem(self, line: int, message: str, hint: str = "") -> None:
        self.problems.append(Problem(line, message, hint))

    def warn(self, line: int, message: str, hint: str = "") -> None:
        self.warnings.append(Problem(line, message, hint))

    # -- structure ----------------------------------------------------------------------------
    def keys(self, d: LDict, allowed, what: str) -> None:
        """Report unknown and duplicate keys of `d` (with a did-you-mean among `allowed`)."""
        for key, line in d.duplicates:
            self.problem(line, f"{what}: key {shorten_repr(key)} appears twice", "YAML keeps only the last one; remove one")
        for key in d:
            if key not in allowed:
                close = Registry.suggest(str(key), [str(a) for a in allowed], n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(map(str, allowed)))}"
                self.problem(d.line_of(key), f"{what}: unknown key {shorten_repr(key)}", hint)

    def mapping(self, value, line: int, what: str) -> LDict | None:
        if isinstance(value, LDict):
            return value
        self.problem(line_of(value, line), f"{what}: expected a mapping (key: value lines), got {_kind(value)}")
        return None

    def sequence(self, value, line: int, what: str) -> LList | None:
        if isinstance(value, LList):
            return value
        self.problem(line_of(value, line), f"{what}: expected a list (lines starting with '- '), got {_kind(value)}")
        return None

    def items(self, data: LDict, section: str, keys) -> Iterator[tuple[int, str, LDict, int]]:
        """Each mapping in the top-level list `section` of `data`, its keys checked against
        `keys`: (its index, "section[i]", the mapping, how many problems there were before its
        keys were checked). What is not a list, or not a mapping in it, is a problem."""
        raw = data.get(section)
        if raw is None:
            return
        items = self.sequence(raw, data.line_of(section), section) or LList()
        for i, item in enumerate(items):
            what = f"{section}[{i}]"
            d = self.mapping(item, items.line_of(i), what)
            if d is None:
                continue
            n_before = len(self.problems)
            self.keys(d, keys, what)
            yield i, what, d, n_before

    # -- scalars --------------------------------------------------------------------------------
    def integer(self, d: LDict, key: str, lo: int, hi: int, what: str, default=MISSING, hint: str = ""):
        value = d.get(key, MISSING)
        if value is MISSING:
            return self._missing(d, key, what, default, f"a whole number {lo}..{hi}")
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.problem(d.line_of(key), f"{what}: {key} must be a whole number {lo}..{hi}, got {_show(value)}", hint)
            return None
        return value

    def number(self, d: LDict, key: str, what: str, default=MISSING, lo: float = -math.inf, hi: float = math.inf,
               hint: str = ""):
        value = d.get(key, MISSING)
        if value is MISSING:
            return self._missing(d, key, what, default, "a number")
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if not ok or not lo <= value <= hi:
            where = "" if (lo, hi) == (-math.inf, math.inf) else f" in {_bounds(lo, hi)}"
            self.problem(d.line_of(key), f"{what}: {key} must be a finite number{where}, got {_show(value)}", hint)
            return None
        return float(value)

    def boolean(self, d: LDict, key: str, what: str, default: bool = False):
        value = d.get(key, MISSING)
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            self.problem(d.line_of(key), f"{what}: {key} must be true or false, got {_show(value)}")
            return None
        return value

    def string(self, d: LDict, key: str, what: str, default=MISSING, hint: str = ""):
        value = d.get(key, MISSING)
        if value is MISSING:
            return self._missing(d, key, what, default, "text")
        if not isinstance(value, str) or not value.strip():
            self.problem(d.line_of(key), f"{what}: {key} must be non-empty text, got {_show(value)}", hint)
            return None
        return value.strip()

    def choice(self, d: LDict, key: str, options, what: str, default=MISSING):
        value = d.get(key, MISSING)
        if value is MISSING:
            return self._missing(d, key, what, default, " | ".join(map(str, options)))
        if isinstance(value, bool) or value not in options:
            close = Registry.suggest(str(value), [str(o) for o in options], n=1)
            hint = f"did you mean {close[0]!r}?" if close else ""
            self.problem(d.line_of(key), f"{what}: {key} must be one of {' | '.join(map(str, options))}, "
                                         f"got {_show(value)}", hint)
            return None
        return value

    def pair(self, d: LDict, key: str, what: str, default=MISSING, hint: str = ""):
        """[lo, hi]: two finite numbers that differ (lo > hi is allowed and runs backwards)."""
        value = d.get(key, MISSING)
        if value is MISSING:
            return self._missing(d, key, what, default, "[lo, hi]")
        ok = (isinstance(value, list) and len(value) == 2
              and all(not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) for v in value))
        if not ok or value[0] == value[1]:
            self.problem(d.line_of(key), f"{what}: {key} must be [lo, hi], two different finite numbers, "
                                         f"got {_show(value)}", hint or "e.g. range: [0.3, 1.1]")
            return None
        return (float(value[0]), float(value[1]))

    def regex_or_text(self, d: LDict, key: str, what: str):
        value = self.string(d, key, what, default="")
        if value and len(value) > 2 and value.startswith("/") and value.endswith("/"):
            try:
                re.compile(value[1:-1])
            except re.error as exc:
                self.problem(d.line_of(key), f"{what}: {key} is not a valid regular expression: {exc}",
                             "write /regex/ for a regex, plain text for a case-insensitive substring")
                return None
        return value

    def _missing(self, d: LDict, key: str, what: str, default, expected: str):
        if default is MISSING:
            self.problem(d.line, f"{what}: {key} is missing (expected {expected})")
            return None
        return default


def _bounds(lo: float, hi: float) -> str:
    if hi == math.inf:
        return f">= {lo:g}"
    return f"[{lo:g}, {hi:g}]"


def _kind(value) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, LDict):
        return "a mapping"
    if isinstance(value, LList):
        return "a list"
    return f"{type(value).__name__} {shorten_repr(value)}"


def _show(value) -> str:
    if isinstance(value, (LDict, LList)):
        return _kind(value)
    return shorten_repr(value)
