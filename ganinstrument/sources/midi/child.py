"""The MIDI input process: RtMidi inputs opened in a small child, their messages piped back.

Why a process: RtMidi's input queue is not thread-safe (thestk/rtmidi#352). Under load, JACK's
process thread crashed in `jackProcessIn` writing that queue while our reader emptied it, and a
crash there took the whole show down. A callback instead of the queue runs Python on JACK's
real-time thread and deadlocks on close. Here the same polling runs in a process that does
nothing else; if it dies, `host.InputHost` starts another and reopens the ports, and the show
loses the messages of that instant, not its picture.

Protocol. The parent writes one JSON object per line to our stdin:
    {"op": "open", "id": 3, "name": "nanoKONTROL2:in"}     {"op": "close", "id": 3}
We write frames to stdout: a header (kind, port id, payload length) and the payload:
    READY  payload: the API in use          OPENED  (empty)      CLOSED  (empty)
    ERROR  payload: the error, UTF-8        DATA    payload: one MIDI message's bytes
    ALIVE  (empty), every ALIVE_S from the poller
The end of stdin (the parent closed it, or died) closes every port and ends the process.

Run as `python -m ganinstrument.sources.midi.child API CLIENT_NAME QUEUE_SIZE`.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import threading
import time

HEADER = struct.Struct("<BIH")  # kind, port id, payload length
READY, OPENED, CLOSED, ERROR, DATA, ALIVE = (ord(c) for c in "ROCEDA")
MAX_PAYLOAD = 0xFFFF
POLL_S = 0.0005  # the pause when every queue is empty
ALIVE_S = 0.5  # the poller says it is alive this often (the host restarts a child that stops)


def frame(kind: int, port_id: int, payload: bytes = b"") -> bytes:
    payload = payload[:MAX_PAYLOAD]
    return HEADER.pack(kind, port_id, len(payload)) + payload


class PortGone(LookupError):
    """No MIDI port has that name (any more)."""


def open_rtmidi_input(rtmidi, api: int, client_name: str, queue_size: int, name: str):
    """An RtMidi input on the port called `name`, queueing its messages (no callback), with
    sysex and active sensing dropped inside RtMidi, the cheapest place. Timing clock passes (RtMidi
    drops it by default): MidiInput follows MIDI clock (midi/clock.py); at 174 BPM that is ~70
    messages/s per port, which the reader hands to the clock without waking the engine.
    PortGone if no port has that name now. Used here and by ports.py's in-process reader."""
    port = rtmidi.MidiIn(api, client_name, queue_size_limit=queue_size)
    names = port.get_ports()
    if name not in names:
        port.delete()
        raise PortGone(f"MIDI port {name!r} has gone (ports now: {', '.join(names) or 'none'})")
    port.ignore_types(sysex=True, timing=False, active_sense=True)
    port.open_port(names.index(name), "in")
    return port


def api_label(rtmidi, api: int) -> str:
    """RtMidi's name for an API constant: "UNIX_JACK" for rtmidi.API_UNIX_JACK."""
    for attr in dir(rtmidi):
        if attr.startswith("API_") and getattr(rtmidi, attr) == api:
            return attr[4:]
    return str(api)


class FrameReader:
    """Splits a byte stream into (kind, port id, payload) frames, whatever the chunking."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[int, int, bytes]]:
        buf = self._buf
        buf += chunk
        frames, pos, size = [], 0, HEADER.size
        while len(buf) - pos >= size:
            kind, port_id, length = HEADER.unpack_from(buf, pos)
            if len(buf) - pos - size < length:
                break
            start = pos + size
            frames.append((kind, port_id, bytes(buf[start:start + length])))
            pos = start + length
        del buf[:pos]
        return frames


class _Child:
    def __init__(self, api_name: str, client_name: str, queue_size: int, out) -> None:
        import rtmidi

        self.rtmidi = rtmidi
        self.api = getattr(rtmidi, f"API_{api_name}") if api_name else rtmidi.API_UNSPECIFIED
        self.client_name, self.queue_size = client_name, queue_size
        self.out = out
        self.ports: dict[int, object] = {}
        self.lock = threading.Lock()  # ports dict and stdout
        self.stop = threading.Event()

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.out.flush()

    def open(self, port_id: int, name: str) -> None:
        try:
            port = open_rtmidi_input(self.rtmidi, self.api, self.client_name, self.queue_size, name)
        except Exception as exc:
            with self.lock:
                self.write(frame(ERROR, port_id, (str(exc) or type(exc).__name__).encode("utf-8", "replace")))
            return
        with self.lock:
            self.ports[port_id] = port
            self.write(frame(OPENED, port_id))

    def close(self, port_id: int) -> None:
        with self.lock:
            port = self.ports.pop(port_id, None)
        if port is not None:
            try:
                port.close_port()
            finally:
                port.delete()
        with self.lock:
            self.write(frame(CLOSED, port_id))

    def poll(self) -> None:
        """Empty every port's RtMidi queue into stdout, oldest first, until told to stop; an
        ALIVE frame every ALIVE_S, so a hung poller (or driver) can be told from a quiet one."""
        next_alive = 0.0
        while not self.stop.is_set():
            busy = False
            with self.lock:
                chunks = []
                now = time.monotonic()
                if now >= next_alive:
                    chunks.append(frame(ALIVE, 0))
                    next_alive = now + ALIVE_S
                for port_id, port in self.ports.items():
                    for _ in range(1024):  # bounded, so one flooding port cannot starve the others
                        item = port.get_message()
                        if item is None:
                            break
                        chunks.append(frame(DATA, port_id, bytes(item[0])))
                if chunks:
                    busy = len(chunks) > 1 or chunks[0][0] != ALIVE
                    self.write(b"".join(chunks))
            if not busy:
                time.sleep(POLL_S)

    def serve(self, commands) -> None:
        self.write(frame(READY, 0, api_label(self.rtmidi, self.api).encode()))
        poller = threading.Thread(target=self.poll, name="midi-child-poll", daemon=True)
        poller.start()
        for line in commands:
            try:
                cmd = json.loads(line)
                op, port_id = cmd["op"], int(cmd["id"])
            except (ValueError, KeyError, TypeError):
                continue
            if op == "open":
                self.open(port_id, str(cmd.get("name", "")))
            elif op == "close":
                self.close(port_id)
        self.stop.set()
        poller.join(1.0)
        for port_id in list(self.ports):
            self.close(port_id)


def main(argv: list[str]) -> int:
    # Ctrl-C belongs to the show: it closes our stdin when it stops, and that ends us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "win32":  # frames are bytes: no newline translation on either pipe
        import msvcrt

        for stream in (sys.stdin, sys.stdout):
            msvcrt.setmode(stream.fileno(), os.O_BINARY)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing stray may reach the frame stream
    api_name, client_name, queue_size = argv[0], argv[1], int(argv[2])
    try:
        child = _Child(api_name, client_name, queue_size, out)
    except Exception as exc:  # no rtmidi, unknown API: say it in the stream, then stop
        out.write(frame(ERROR, 0, f"{type(exc).__name__}: {exc}".encode()))
        out.flush()
        return 1
    try:
        child.serve(sys.stdin)
    except BrokenPipeError:  # the parent is gone
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
