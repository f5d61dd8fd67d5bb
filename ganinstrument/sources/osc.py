"""OSC input (python-osc): TouchDesigner, Max, Open Stage Control and phones play the instrument.

Every registry target is reachable at `/ganinstrument/<target>` (one argument: the value, in
the target's own units, straight to a ParamUpdate) and every action at `/ganinstrument/<action>`
(optional argument). Any other address becomes a ControlEvent(kind="osc", address=...,
value=its first numeric argument) for the mapping router, which may bind it with a range and curve.
NaN and infinity, control characters or more than MAX_ADDRESS characters in an address, more than
MAX_ARGS arguments are refused everywhere; a bundle's messages play at once (no time tag waits).

Threads: the UDP server thread decodes, timestamps and puts into a DropQueue (queues.py: the
newest dropped and counted beyond `queue_size`); the engine calls `drain()` once per frame. The
server binds to 127.0.0.1 unless told otherwise: opening a performance rig to the venue's network
is a choice.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass

from ..common.clock import Clock, MonotonicClock
from ..common.errors import GanInstrumentError
from ..common.events import ControlEvent, ParamUpdate
from ..common.queues import DropQueue, QueueBound
from ..common.text import shorten, shorten_repr
from ..state.params import Registry
from .complaints import Complaints

log = logging.getLogger("ganinstrument.osc")
DEFAULT_PORT = 9000
PREFIX = "/ganinstrument"


class OscError(GanInstrumentError, OSError):
    """The OSC server could not start (port in use, bad address)."""


@dataclass(frozen=True)
class OscStats:
    received: int
    dropped: int
    rejected: int  # messages refused (bad address, value or arguments)
    queued: int
    malformed: int = 0  # packets that did not decode as OSC


MAX_ADDRESS = 256  # characters; longer addresses are refused
MAX_ARGS = 64  # arguments per message; more are refused


def _first_number(args) -> float | None:
    for arg in args:
        if isinstance(arg, bool):
            return 1.0 if arg else 0.0
        if isinstance(arg, (int, float)):
            return float(arg)
    return None


def _sender(client_address) -> str:
    try:
        host, port = client_address[0], client_address[1]
    except (TypeError, IndexError):
        return shorten(client_address, 60)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _args_shown(args) -> str:
    if not args:
        return "no arguments"
    parts = [shorten_repr(a, 24) for a in args[:4]]
    more = f", ... ({len(args)} arguments)" if len(args) > 4 else ""
    return "(" + ", ".join(parts) + more + ")"


_BUNDLE = b"#bundle\x00"
MAX_NESTING = 8  # bundles in bundles


def bundle_problem(dgram: bytes) -> str | None:
    """Why a bundle's element sizes are unsound (None if they are sound), checked before python-osc
    parses it: python-osc loops forever on a negative element size, stalling the server thread."""
    stack = [(dgram, 0)]
    while stack:
        data, depth = stack.pop()
        if depth > MAX_NESTING:
            return f"bundles nested more than {MAX_NESTING} deep"
        pos = len(_BUNDLE) + 8  # the time tag
        while pos < len(data):
            if pos + 4 > len(data):
                return "a truncated bundle element size"
            size = int.from_bytes(data[pos:pos + 4], "big", signed=True)
            if size <= 0 or pos + 4 + size > len(data):
                return f"a bundle element of {size} bytes at byte {pos}, in a packet of {len(data)}"
            element = data[pos + 4:pos + 4 + size]
            if element.startswith(_BUNDLE):
                stack.append((element, depth + 1))
            pos += 4 + size
    return None


class _QuietPythonOsc(logging.Filter):
    """python-osc logs every odd bundle element and unknown type tag on the root logger, one
    line per packet: a flood would flood the log. We count and say those packets ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and "pythonosc" in record.pathname)


_QUIET = _QuietPythonOsc()


class _Refused(ValueError):
    """A message we do not take: `reason` (the same for the same problem: it keys the rate limit),
    then what was sent (the sender and address are added)."""

    def __init__(self, reason: str, args=None) -> None:
        super().__init__(reason if args is None else f"{reason}, got {_args_shown(args)}")
        self.reason = reason


class OscServer:
    """A UDP OSC server for one instrument's `registry`. `port=0` picks a free port (tests).

    Nothing a sender does reaches the terminal as a traceback or stops the server thread: an
    undecodable packet is counted (stats().malformed), a message we do not take is refused
    (stats().rejected), and each is said as one line naming the sender and the address, in
    `messages` (for the HUD) and the log, rate-limited (complaints.py).
    """

    def __init__(self, registry: Registry, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 prefix: str = PREFIX, clock: Clock | None = None, queue_size: int = 4096):
        self.registry, self.host, self.prefix = registry, host, prefix.rstrip("/")
        self.requested_port = int(port)
        self.clock = clock or MonotonicClock()
        self._queue: DropQueue[ParamUpdate | ControlEvent] = DropQueue(queue_size, drop="newest")
        self.messages: deque[str] = deque(maxlen=32)
        # written by the server thread only:
        self.received = self.rejected = self.malformed = 0
        self._complaints = Complaints("OSC", self.messages, log)
        self._server = None
        self._thread: threading.Thread | None = None

    queue_size = QueueBound()  # how many messages may wait for the engine (then the newest are dropped)

    @property
    def dropped(self) -> int:
        """Messages lost because the queue was full (the engine was not draining)."""
        return self._queue.dropped

    @property
    def port(self) -> int:
        """The port actually bound (after start), else the one asked for."""
        return self._server.server_address[1] if self._server is not None else self.requested_port

    def start(self) -> OscServer:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        owner = self
        logging.getLogger().addFilter(_QUIET)  # (once: the same filter is added once)

        class Server(BlockingOSCUDPServer):
            # Blocking (not Threading): one thread handles packets in arrival order. python-osc
            # parses; every packet comes to us, even one that does not look like OSC, so that
            # it is counted, and nothing raises out of here into socketserver's traceback.
            max_packet_size = 65536  # a UDP datagram whole: a huge one is refused, not cut

            def verify_request(self, request, client_address) -> bool:  # (python-osc's would drop
                return True  # what does not look like OSC, uncounted)

            def finish_request(self, request, client_address) -> None:
                owner._packet(request[0], client_address)

            def handle_error(self, request, client_address) -> None:  # (only if _packet has a bug)
                owner._malformed(client_address, "could not be handled")

            def service_actions(self) -> None:  # every poll of serve_forever
                owner._complaints.flush()

        try:
            self._server = Server((self.host, self.requested_port), Dispatcher())
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
    def _packet(self, data: bytes, client_address) -> None:
        """One datagram: every message in it, at once (a bundle's time tag is not waited for:
        a live instrument plays what arrives, and a far-future tag must not stall the thread)."""
        from pythonosc.osc_packet import OscPacket

        why = bundle_problem(data) if data.startswith(_BUNDLE) else None
        if why is not None:
            self._malformed(client_address, why)
            return
        try:
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as exc:  # ParseError, UnicodeDecodeError, struct.error, RecursionError...
            self._malformed(client_address, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return
        for message in messages:
            try:
                self._handle(message.address, *message.params, sender=client_address)
            except Exception as exc:  # a bug of ours: still one line, and the next message
                self._malformed(client_address, f"{type(exc).__name__}: {exc}")

    def _malformed(self, client_address, why: str) -> None:
        self.malformed += 1
        who = _sender(client_address)
        self._complaints.say(("malformed", who), f"OSC: malformed packet from {who} ignored ({shorten(why, 80)})",
                             f"OSC: {{n}} more malformed packets from {who} ignored")

    def _handle(self, address: str, *args, sender=None) -> None:
        try:
            item = self._decode(address, args)
        except _Refused as exc:
            self._reject(sender, address, exc)
            return
        if self._queue.put(item):
            self.received += 1

    def _decode(self, address: str, args) -> ParamUpdate | ControlEvent:
        if len(address) > MAX_ADDRESS:
            raise _Refused(f"an address of {len(address)} characters (at most {MAX_ADDRESS})")
        if not address.isprintable():
            raise _Refused("control characters in the address")
        if len(args) > MAX_ARGS:
            raise _Refused(f"{len(args)} arguments (at most {MAX_ARGS})")
        value = _first_number(args)
        if value is not None and not math.isfinite(value):
            raise _Refused("needs a finite number", args)
        head = self.prefix + "/"
        if not address.startswith(head):
            return ControlEvent("osc", value=0.0 if value is None else value, timestamp=self.clock.now(),
                                source="osc", address=address)
        name = address[len(head):]
        if name in self.registry.targets:
            if len(args) != 1 or value is None:
                raise _Refused(f"needs one number (the {name} value)", args)
            return ParamUpdate(name, value, source="osc")
        if name in self.registry.actions:
            spec = self.registry.actions[name]
            if len(args) > 1 or (args and value is None):
                raise _Refused(f"takes {'one number' if spec.takes_value else 'at most one number'}", args)
            if spec.takes_value and value is None:
                raise _Refused("needs a number", args)
            return ParamUpdate(name, 0.0 if value is None else value, action=True, source="osc")
        guesses = Registry.suggest(name, list(self.registry.targets) + list(self.registry.actions))
        hint = f"; did you mean {' or '.join(head + g for g in guesses)}?" if guesses else ""
        raise _Refused(f"no target or action {shorten_repr(name, 60)}{hint}")

    def _reject(self, sender, address: str, why: _Refused) -> None:
        self.rejected += 1
        who = "" if sender is None else f" from {_sender(sender)}"
        where = shorten(address, 60)
        self._complaints.say(("refused", address[:MAX_ADDRESS], why.reason), f"OSC {where}{who} refused: {why}",
                             f"OSC {where}: {{n}} more refused")

    # -- the engine -----------------------------------------------------------------------
    def drain(self) -> list[ParamUpdate | ControlEvent]:
        """Everything since the last drain, in arrival order: ParamUpdates for our own addresses
        (apply them), ControlEvents for the rest (route them)."""
        return self._queue.drain()

    def hud_lines(self) -> dict[str, str]:
        return {}  # (what it refuses is news: `messages`)

    def stats(self) -> OscStats:
        return OscStats(self.received, self.dropped, self.rejected, len(self._queue), self.malformed)

    def close(self, timeout_s: float = 2.0) -> bool:
        """Stop the server thread (within `timeout_s`) and free the port; True if it stopped."""
        if self._server is None:
            return True
        if self._thread is not None and self._thread.is_alive():
            done = threading.Thread(target=self._server.shutdown, daemon=True)
            done.start()
            done.join(timeout_s)
            self._thread.join(max(0.0, timeout_s))
        stopped = self._thread is None or not self._thread.is_alive()
        self._server.server_close()
        self._server = None
        return stopped

    def __enter__(self) -> OscServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
