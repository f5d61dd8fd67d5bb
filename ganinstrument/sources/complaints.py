"""What a hostile or broken sender did, said in a few lines however much it sends.

OSC and MIDI inputs meet malformed packets, wrong values and floods. Each problem is said as ONE
line (the log, and the source's `messages` deque that the HUD shows); the same problem again soon
after is only counted, and the count is said later ("... 31 more like it in the last 2 s"). A
problem that keeps coming is summarised less and less often (the pause doubles up to MAX_HOLD_S),
and at most BURST new problems are said per window: a sender spraying random addresses costs a
handful of lines, never a flooded log or a stalled thread.

`flush()` says the counts that are due; call it now and then from a thread that runs anyway (the
OSC server's poll, the MIDI hot-plug poller). `say()` may run on another thread: both lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

WINDOW_S = 2.0  # a problem said is then counted, not said, for this long (doubling while it recurs)
MAX_HOLD_S = 300.0
BURST = 8  # new problems said per window; beyond that they are counted together
MAX_KEYS = 256
FLUSH_S = 0.25  # how often the counts due are looked for


@dataclass
class _Problem:
    until: float  # counted, not said, until then
    hold: float
    count: int = 0
    more: str = ""  # the summary, with {n} for the count


class Complaints:
    """One line per problem, counts for its repeats. `what` names the source in the overflow line
    ("OSC"); lines go to `messages` (newest last) and `logger`."""

    def __init__(self, what: str, messages: deque, logger: logging.Logger, *,
                 clock: Callable[[], float] = time.monotonic):
        self.what, self.messages, self.log, self.clock = what, messages, logger, clock
        self.total = 0  # problems met, said or not
        self.unsaid = 0  # new problems beyond BURST in a window (counted together)
        self._problems: dict[Hashable, _Problem] = {}
        self._window = (clock(), 0)  # (start, new problems said in it)
        self._lock = threading.Lock()
        self._flushed = float("-inf")

    def say(self, key: Hashable, text: str, more: str = "") -> bool:
        """Problem `key` happened: say `text` unless it was said lately (then count it, and say
        `more`.format(n=count) when due). True if the line was said now."""
        with self._lock:
            now = self.clock()
            self.total += 1
            problem = self._problems.get(key)
            if problem is not None and now < problem.until:
                problem.count += 1
                problem.more = more or problem.more
                return False
            if problem is not None and problem.count:  # its count is due and not said yet
                self._emit((problem.more or "{n} more like it").format(n=problem.count))
                problem.count = 0
            start, said = self._window
            if now - start >= WINDOW_S:
                start, said = now, 0
            if said >= BURST or (problem is None and len(self._problems) >= MAX_KEYS):
                self.unsaid += 1
                self._window = (start, said)
                return False
            self._window = (start, said + 1)
            hold = WINDOW_S if problem is None else min(problem.hold * 2, MAX_HOLD_S)
            self._problems[key] = _Problem(now + hold, hold, 0, more)
            self._emit(text)
            return True

    def flush(self) -> None:
        """Say the counts that are due (and forget problems long quiet); at most every
        FLUSH_S, however often it is called (the OSC server calls it after every packet)."""
        with self._lock:
            now = self.clock()
            if now - self._flushed < FLUSH_S:
                return
            self._flushed = now
            self._flush(now)

    def _flush(self, now: float) -> None:
        for key, problem in list(self._problems.items()):
            if now < problem.until:
                continue
            if problem.count:
                self._emit((problem.more or "{n} more like it").format(n=problem.count))
                problem.count = 0
                problem.hold = min(problem.hold * 2, MAX_HOLD_S)
                problem.until = now + problem.hold
            elif now >= problem.until + problem.hold:  # quiet for a while: start afresh next time
                del self._problems[key]
        start, _ = self._window
        if self.unsaid and now - start >= WINDOW_S:
            self._emit(f"{self.what}: {self.unsaid} more problems in the last {WINDOW_S:g} s not shown")
            self.unsaid = 0

    def _emit(self, text: str) -> None:
        self.messages.append(text)
        self.log.warning("%s", text)
