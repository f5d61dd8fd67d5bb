"""OSC input (python-osc): TouchDesigner, Max, Open Stage Control and phones play the instrument.

Every registry target is reachable at `/ganinstrument/<target>` (first argument: the value, in
the target's own units, straight to a ParamUpdate) and every action at `/ganinstrument/<action>`
(optional argument). Any other address becomes a ControlEvent(kind="osc", address=...,
value=its first numeric argument) for the mapping router, which may bind it with a range and curve.

Threads: the UDP server thread decodes, timestamps and appends to a bounded deque (dropping and
counting beyond `queue_size`); the engine calls `drain()` once per frame. The server binds to
127.0.0.1 unless told otherwise: opening a performance rig to the venue's network is a choice.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass

from ..clock import Clock, MonotonicClock
from ..errors import GanInstrumentError
from ..events import ControlEvent, ParamUpdate
from ..params import Registry

log = logging.getLogger("ganinstrument.osc")
DEFAULT_PORT = 9000
PREFIX = "/ganinstrument"


class OscError(GanInstrumentError, OSError):
    """The OSC server could not start (port in use, bad address)."""


@dataclass(frozen=True)
class OscStats:
    received: int
    dropped: int
    rejected: int
    queued: int


def _first_number(args) -> float | None:
    for arg in args:
        if isinstance(arg, bool):
            return 1.0 if arg else 0.0
        if isinstance(arg, (int, float)):
            return float(arg)
    return None


class OscServer:
    """A UDP OSC server for one instrument's `registry`. `port=0` picks a free port (tests)."""

    def __init__(self, registry: Registry, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 prefix: str = PREFIX, clock: Clock | None = None, queue_size: int = 4096):
        self.registry, self.host, self.prefix = registry, host, prefix.rstrip("/")
        self.requested_port = int(port)
        self.clock = clock or MonotonicClock()
        self.queue_size = int(queue_size)
        self.messages: deque[str] = deque(maxlen=32)
        self.received = self.dropped = self.rejected = 0  # written by the server thread only
        self._queue: deque[ParamUpdate | ControlEvent] = deque()
        self._said: set[str] = set()
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (after start), else the one asked for."""
        return self._server.server_address[1] if self._server is not None else self.requested_port

    def start(self) -> OscServer:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self._handle)
        try:
            # Blocking (not Threading) server: one thread handles packets in arrival order.
            self._server = BlockingOSCUDPServer((self.host, self.requested_port), dispatcher)
        except OSError as exc:
            raise OscError(f"cannot listen for OSC on {self.host}:{self.requested_port}: {exc.strerror or exc}; "
                           "is another program (another ganinstrument, TouchDesigner, Max) using that "
                           "port? Choose another with --osc-port") from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="osc-server", daemon=True)
        self._thread.start()
        log.info("OSC listening on %s:%d", self.host, self.port)
        return self

    # -- the server thread ------------------------------------------------------------------
    def _handle(self, address: str, *args) -> None:
        try:
            item = self._decode(address, args)
        except Exception as exc:  # nothing a sender does may stop the server thread
            item = None
            self._reject(address, f"OSC {address}: {exc}")
        if item is None:
            return
        if len(self._queue) >= self.queue_size:
            self.dropped += 1
            return
        self.received += 1
        self._queue.append(item)

    def _decode(self, address: str, args) -> ParamUpdate | ControlEvent | None:
        value = _first_number(args)
        head = self.prefix + "/"
        if not address.startswith(head):
            return ControlEvent("osc", value=0.0 if value is None else value, timestamp=self.clock.now(),
                                source="osc", address=address)
        name = address[len(head):]
        if name in self.registry.targets:
            if value is None or not math.isfinite(value):
                return self._reject(address, f"OSC {address} needs a finite number (the {name} value), got {args!r}")
            return ParamUpdate(name, value, source="osc")
        if name in self.registry.actions:
            spec = self.registry.actions[name]
            if spec.takes_value and (value is None or not math.isfinite(value)):
                return self._reject(address, f"OSC {address} needs a number, got {args!r}")
            return ParamUpdate(name, 0.0 if value is None else value, action=True, source="osc")
        guesses = Registry.suggest(name, list(self.registry.targets) + list(self.registry.actions))
        hint = f"; did you mean {' or '.join(head + g for g in guesses)}?" if guesses else ""
        return self._reject(address, f"OSC {address}: no target or action {name!r}{hint}")

    def _reject(self, key: str, text: str) -> None:
        self.rejected += 1
        if key not in self._said and len(self._said) < 256:  # once per address; a flood stays quiet
            self._said.add(key)
            self.messages.append(text)
            log.warning("%s", text)
        return None

    # -- the engine -----------------------------------------------------------------------
    def drain(self) -> list[ParamUpdate | ControlEvent]:
        """Everything since the last drain, in arrival order: ParamUpdates for our own addresses
        (apply them), ControlEvents for the rest (route them)."""
        queue = self._queue
        return [queue.popleft() for _ in range(len(queue))]

    def stats(self) -> OscStats:
        return OscStats(self.received, self.dropped, self.rejected, len(self._queue))

    def close(self, timeout: float = 2.0) -> bool:
        """Stop the server thread (within `timeout` s) and free the port; True if it stopped."""
        if self._server is None:
            return True
        if self._thread is not None and self._thread.is_alive():
            done = threading.Thread(target=self._server.shutdown, daemon=True)
            done.start()
            done.join(timeout)
            self._thread.join(max(0.0, timeout))
        stopped = self._thread is None or not self._thread.is_alive()
        self._server.server_close()
        self._server = None
        return stopped

    def __enter__(self) -> OscServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
