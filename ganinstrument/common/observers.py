"""Observers: short callbacks tools and benchmarks hang on a part (the engine's `on_frame`, a
sink's `on_write`, the heap trimmer's `on_trim`). A failing observer is logged (at debug) and
stops nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)


def notify(observers: Iterable[Callable[..., object]], *args: object, what: str) -> None:
    """Call each observer with `args`; `what` names them in the log when one fails."""
    for observer in observers:
        try:
            observer(*args)
        except Exception as exc:
            log.debug("%s observer failed: %s", what, exc)
