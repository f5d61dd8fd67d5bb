"""An Ableton Link peer on the network: the sockets and the thread around LinkProtocol.

One gateway per IPv4 address of every interface that is up (loopback too, so programs on this
computer find each other; interfaces are looked at again every RESCAN_S, so a network cable or
Wi-Fi that comes later is joined). A gateway has three UDP sockets, as Link's own:
- `listen`: bound to port 20808 on any address, member of 224.76.78.75 on this interface only
  (IP_MULTICAST_ALL off on Linux), where alive and bye-bye messages arrive;
- `discovery`: bound to the interface's address, sends our state to the group (out of this
  interface: IP_MULTICAST_IF; looped back only on loopback) and takes the peers' responses;
- `measure`: bound to the interface's address, answers pings and measures other sessions.

The thread waits on all sockets and on the protocol's next timer (selectors); the engine's
`commit` wakes it through a socket pair. A socket error on one gateway is said once and that
gateway is dropped (opened again at the next rescan); the beat clock never waits on the network.
"""

from __future__ import annotations

import logging
import selectors
import socket
import sys
import threading
import time

from .session import GROUP, LinkProtocol, LinkState
from .wire import DISCOVERY_PORT, MAX_MESSAGE, MULTICAST_GROUP

log = logging.getLogger(__name__)

RESCAN_S = 5.0
IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)  # (Linux; Python names it only from 3.12)


def host_micros() -> int:
    """The host clock in microseconds: perf_counter, the instrument's show clock."""
    return time.perf_counter_ns() // 1000


def interface_addresses() -> list[str]:
    """IPv4 addresses of the interfaces that are up (psutil: Linux, Windows and macOS alike)."""
    import psutil

    stats = psutil.net_if_stats()
    return sorted({a.address for name, addrs in psutil.net_if_addrs().items()
                   if name in stats and stats[name].isup for a in addrs if a.family == socket.AF_INET})


class _Gateway:
    def __init__(self, address: str):
        self.address = address
        loopback = address.startswith("127.")
        self.listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.discovery = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.measure = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for s in (self.listen, self.discovery, self.measure):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(loopback))
                s.setblocking(False)
            if hasattr(socket, "SO_REUSEPORT") and not hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
                self.listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # (macOS needs it to share
                # the port with Live; Linux shares it either way; Windows has SO_REUSEADDR only)
            if sys.platform.startswith("linux"):  # (only the group joined here, on this interface)
                self.listen.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            self.listen.bind(("", DISCOVERY_PORT))
            self.listen.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                   socket.inet_aton(MULTICAST_GROUP) + socket.inet_aton(address))
            for s in (self.discovery, self.measure):
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
                s.bind((address, 0))
        except OSError:
            self.close()
            raise

    def sockets(self) -> tuple[tuple[socket.socket, str], ...]:
        return (self.listen, "discovery"), (self.discovery, "discovery"), (self.measure, "measure")

    def close(self) -> None:
        for s in (self.listen, self.discovery, self.measure):
            s.close()


class LinkNode:
    """A Link peer: `start()`, then `state()` each frame, `commit()` on a tempo change of ours,
    `stop()` (says bye-bye). `addresses` fixes the interfaces (tests); default: all that are up."""

    def __init__(self, bpm: float = 120.0, addresses: list[str] | None = None, micros=host_micros):
        self.micros = micros
        self._fixed = addresses
        self._gateways: dict[str, _Gateway] = {}
        self._said: set[str] = set()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self.unreachable = 0  # pings and responses to peers the network refused
        self.failures = 0
        self.protocol = LinkProtocol(self, micros(), bpm)
        self._thread = threading.Thread(target=self._run, name="ableton-link", daemon=True)

    # -- the engine's side -----------------------------------------------------------------
    def start(self) -> LinkNode:
        self._rescan()
        self._thread.start()
        return self

    def state(self) -> LinkState:
        return self.protocol.state()

    def commit(self, host_s: float, bpm: float, beats: float | None = None) -> None:
        self.protocol.commit(host_s * 1e6, bpm, beats, self.micros())

    def stop(self, timeout_s: float = 2.0) -> bool:
        if self._thread.is_alive():
            self._stop.set()
            self.wake()
            self._thread.join(timeout_s)
        alive = self._thread.is_alive()
        if not alive:
            self._close()
        return not alive

    # -- Transport (for the protocol) ------------------------------------------------------
    def gateways(self) -> list[str]:
        return list(self._gateways)

    def endpoint(self, gateway: str) -> tuple[str, int]:
        return self._gateways[gateway].measure.getsockname()

    def send(self, gateway: str, channel: str, data: bytes, to: tuple[str, int]) -> None:
        g = self._gateways.get(gateway)
        if g is None:
            return
        try:
            (g.measure if channel == "measure" else g.discovery).sendto(data, to)
        except BlockingIOError:
            pass  # (a full send buffer: the next broadcast comes in 250 ms)
        except OSError as exc:
            if to == GROUP:  # our own network failed
                self._drop(gateway, exc)
            else:  # a peer we cannot reach (it says so itself, or it left): not this network's fault
                self.unreachable += 1

    def wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # (already woken, or closing)

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        rescan_at = time.monotonic() + RESCAN_S
        while not self._stop.is_set():
            try:
                wait_us = self.protocol.tick(self.micros()) - self.micros()
            except Exception:  # (a bug: said once, the timers go on)
                self._failed("the timers")
                wait_us = 50_000
            for key, _ in self._selector.select(max(0.0, min(wait_us / 1e6, 0.25))):
                if key.data is None:
                    self._drain_wake()
                else:
                    self._receive(key.fileobj, *key.data)
            if time.monotonic() >= rescan_at:
                rescan_at = time.monotonic() + RESCAN_S
                self._rescan()
        try:
            self.protocol.goodbye()
        except Exception:
            self._failed("the goodbye")

    def _failed(self, what: str) -> None:
        self.failures += 1
        if self.failures == 1:
            log.exception("Ableton Link: handling %s failed (a bug; said once, Link goes on)", what)

    def _receive(self, sock: socket.socket, gateway: str, channel: str) -> None:
        for _ in range(64):  # (a flood is read in slices, timers still run)
            try:
                data, sender = sock.recvfrom(MAX_MESSAGE + 1)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionResetError:  # (Windows: an earlier datagram's port was closed)
                continue
            except OSError as exc:
                self._drop(gateway, exc)
                return
            try:
                if channel == "measure":
                    self.protocol.on_measurement(gateway, sender, data, self.micros())
                else:
                    self.protocol.on_discovery(gateway, sender, data, self.micros())
            except Exception:  # (a bug, not the datagram: WireError never gets here) one datagram lost
                self._failed(f"a datagram from {sender[0]}:{sender[1]}")

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(256):
                pass
        except (BlockingIOError, OSError):
            pass

    def _rescan(self) -> None:
        try:
            wanted = set(self._fixed if self._fixed is not None else interface_addresses())
        except Exception as exc:  # (psutil failing is no reason to stop the show)
            self._say("interfaces", f"Ableton Link: could not list the network interfaces ({exc})")
            return
        for address in set(self._gateways) - wanted:
            self._drop(address, None)
        for address in sorted(wanted - set(self._gateways)):
            try:
                gateway = _Gateway(address)
            except OSError as exc:
                self._say(address, f"Ableton Link: cannot use the network at {address} ({exc}); "
                                   f"tried again every {RESCAN_S:g} s")
                continue
            self._gateways[address] = gateway
            for sock, channel in gateway.sockets():
                self._selector.register(sock, selectors.EVENT_READ, (address, channel))
            self._said.discard(address)
            log.info("Ableton Link: on the network at %s", address)

    def _drop(self, address: str, exc: OSError | None) -> None:
        gateway = self._gateways.pop(address, None)
        if gateway is None:
            return
        if exc is not None:
            self._say(address, f"Ableton Link: the network at {address} failed ({exc}); tried again in {RESCAN_S:g} s")
        for sock, _ in gateway.sockets():
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass
        gateway.close()

    def _say(self, key: str, line: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("%s", line)

    def _close(self) -> None:
        for address in list(self._gateways):
            self._drop(address, None)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

