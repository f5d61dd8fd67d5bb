"""DropQueue: the one bounded hand-over queue between a producer thread and the engine.

Every input thread hands its items to a consumer the same way: MIDI events (MidiInput), OSC
messages (OscServer), onsets (the audio features worker), audio blocks for a recording (the
live audio Feed) and key presses (the engine). A producer must never wait for a consumer that
may be slow or stopped, and a consumer takes everything at once, once per frame. So:

- `put(item)` never blocks (beyond a lock held for a few bytecodes, never across a drain's
  copy or any I/O). When the queue already holds `maxlen` items it drops one and counts it:
  `drop="newest"` (the default) refuses the item being put, so what is queued stays as it
  arrived (control events: a flood does not rewrite the past); `drop="oldest"` discards the
  oldest queued item to make room (audio and onsets: the newest matter most).
- `drain()` returns everything queued, in arrival order, and leaves the queue empty.
- `dropped` counts every item lost to the bound; `len(q)` is how many wait now.

Thread safety: any number of producers and consumers; each call is atomic under one lock, so
nothing is lost or duplicated below the bound and `dropped` is exact. The lock is held only for
a deque operation (`drain` swaps in an empty deque and builds its list outside the lock). Not
for signal handlers or real-time audio callbacks: those must not take a lock (a handler that
interrupts a drain on its own thread would wait forever).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

DropPolicy = Literal["newest", "oldest"]


class DropQueue(Generic[T]):
    """A bounded queue that drops (and counts) instead of blocking; see the module docstring."""

    __slots__ = ("_items", "_lock", "_maxlen", "_dropped", "drop")

    def __init__(self, maxlen: int, *, drop: DropPolicy = "newest") -> None:
        if drop not in ("newest", "oldest"):
            raise ValueError(f"drop must be 'newest' or 'oldest', not {drop!r}")
        self.drop: DropPolicy = drop
        self._maxlen = self._checked(maxlen)
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._dropped = 0

    @staticmethod
    def _checked(maxlen: int) -> int:
        maxlen = int(maxlen)
        if maxlen < 1:
            raise ValueError(f"a queue must hold at least 1 item, not {maxlen}")
        return maxlen

    @property
    def maxlen(self) -> int:
        return self._maxlen

    @maxlen.setter
    def maxlen(self, value: int) -> None:
        """A new bound applies to the next puts; items already queued above it stay."""
        self._maxlen = self._checked(value)

    @property
    def dropped(self) -> int:
        """Items lost to the bound since the queue was made."""
        return self._dropped

    def put(self, item: T) -> bool:
        """Queue `item` without waiting. False when the queue was full and something was
        dropped: `item` itself (drop="newest") or the oldest queued item (drop="oldest")."""
        with self._lock:
            items = self._items
            if len(items) < self._maxlen:
                items.append(item)
                return True
            self._dropped += 1
            if self.drop == "oldest":
                items.popleft()
                items.append(item)
            return False

    def drain(self) -> list[T]:
        """Everything queued, oldest first; the queue is empty afterwards."""
        with self._lock:
            if not self._items:
                return []
            items, self._items = self._items, deque()
        return list(items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"DropQueue({len(self)}/{self._maxlen}, drop={self.drop!r}, dropped={self._dropped})"


class QueueBound:
    """`queue_size` of a part that hands its items over through a DropQueue in `self._queue`
    (MIDI input, OSC server): reading it gives the queue's bound, setting it changes it."""

    def __get__(self, obj, owner=None):
        return self if obj is None else obj._queue.maxlen

    def __set__(self, obj, value: int) -> None:
        obj._queue.maxlen = value
