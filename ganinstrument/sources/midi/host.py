"""The show's side of the MIDI input process (child.py): start it, open and close inputs
through it, hand each message to its port's `on_bytes`, and start it again if it dies.

One reader thread per child blocks on the child's stdout (no polling in the show's process, and
no GIL taken while idle), splits the frames and calls `on_bytes(list_of_bytes)`; that is where
MidiInput timestamps. If the child dies (a crash in RtMidi or the MIDI driver), the reader says so,
starts a new child after a short pause (longer when it keeps dying) and reopens every port that
was open; messages sent in that moment are lost, nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .child import ALIVE_S, CLOSED, DATA, ERROR, OPENED, READY, FrameReader

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0  # a cold start imports Python and rtmidi
REPLY_TIMEOUT_S = 5.0
RESTART_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)  # by crashes in the last minute
HUNG_S = 5.0  # a child silent this long (no ALIVE frame) is hung: it is killed and restarted


class HostUnavailable(RuntimeError):
    """The MIDI process could not be started here (frozen app, no interpreter, no rtmidi)."""


class HostError(OSError):
    """The MIDI process answered an open with an error (its text is the message)."""


class InputHost:
    """RtMidi inputs in a child process. `open(name, on_bytes)` -> close(); `close()` ends it.

    `notify(text)` receives what the performer should know (the process died and restarted).
    `restarts` counts the restarts; `pid` is the current child's.
    """

    def __init__(self, api_name: str | None, client_name: str, queue_size: int,
                 notify: Callable[[str], None] | None = None) -> None:
        self.api_name, self.client_name, self.queue_size = api_name or "", client_name, int(queue_size)
        self.notify = notify
        self.restarts = 0
        self.callback_errors = 0  # on_bytes raised (a bug): counted, the reader goes on
        self.api_label = ""
        self._lock = threading.RLock()  # the child, its stdin and the port tables
        self._proc: subprocess.Popen | None = None
        self._ready = threading.Event()
        self._names: dict[int, str] = {}  # ports that should be open
        self._live: set[int] = set()  # ports open in the current child
        self._callbacks: dict[int, Callable[[list[int]], None]] = {}
        self._replies: dict[int, tuple[threading.Event, list]] = {}
        self._next_id = 1
        self._crashes: list[float] = []
        self._closed = False
        self._readers: list[threading.Thread] = []
        self.hung_s = HUNG_S
        self._heard = time.monotonic()  # when the current child last said anything
        self._watchdog: threading.Thread | None = None
        self._wake = threading.Event()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    # -- the child ----------------------------------------------------------------------
    def _spawn(self) -> None:
        if getattr(sys, "frozen", False):
            raise HostUnavailable("a frozen application cannot start a Python child process")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[3])  # so a source checkout works uninstalled
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        kwargs: dict = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        else:
            kwargs["start_new_session"] = True  # the terminal's Ctrl-C is the show's to handle
        cmd = [sys.executable, "-m", "ganinstrument.sources.midi.child",
               self.api_name, self.client_name, str(self.queue_size)]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                    env=env, **kwargs)
        except OSError as exc:
            raise HostUnavailable(f"cannot start the MIDI input process ({exc})") from None
        started = threading.Event()  # set by this child's reader: READY, an error, or its end
        self._ready.clear()
        self._heard = time.monotonic()
        self._proc = proc
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="ganinstrument-midi-watchdog", daemon=True)
            self._watchdog.start()
        reader = threading.Thread(target=self._read, args=(proc, started), name="ganinstrument-midi-host",
                                  daemon=True)
        self._readers = [t for t in self._readers if t.is_alive()] + [reader]
        reader.start()
        self._live.clear()
        started.wait(START_TIMEOUT_S)
        if not self._ready.is_set() or proc.poll() is not None:
            error = self._replies.pop(0, (None, []))[1]
            why = error[0] if error else ("it exited" if proc.poll() is not None
                                          else f"no answer within {START_TIMEOUT_S:g} s")
            self._proc = None  # so its reader, once we release the lock, does not restart it
            self._stop_child(proc)
            raise HostUnavailable(f"the MIDI input process did not start: {why}")

    def _stop_child(self, proc: subprocess.Popen) -> None:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(2.0)

    def _read(self, proc: subprocess.Popen, started: threading.Event) -> None:
        frames, fd = FrameReader(), proc.stdout.fileno()
        callbacks, replies = self._callbacks, self._replies
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            self._heard = time.monotonic()
            for kind, port_id, payload in frames.feed(chunk):
                if kind == DATA:
                    callback = callbacks.get(port_id)
                    if callback is not None:
                        try:
                            callback(list(payload))
                        except Exception:  # whatever a message does, this reader goes on
                            self._callback_failed()
                elif kind == READY:
                    self.api_label = payload.decode("utf-8", "replace")
                    self._ready.set()
                    started.set()
                elif kind in (OPENED, CLOSED, ERROR):
                    waiter = replies.get(port_id) if port_id else replies.setdefault(0, (threading.Event(), []))
                    if waiter is not None:
                        waiter[1].append(payload.decode("utf-8", "replace") if kind == ERROR else None)
                        waiter[0].set()
                    if not port_id:  # the child could not start: say why at once
                        started.set()
        started.set()
        proc.stdout.close()
        code = proc.wait()
        if proc is self._proc:  # answer whoever waits on this child first: they may hold the lock
            for event, result in list(replies.values()):
                result.append("the MIDI input process stopped")
                event.set()
        with self._lock:
            if self._closed or proc is not self._proc:
                return
            self._proc = None
        self._restart(code)

    def _callback_failed(self) -> None:
        self.callback_errors += 1
        if self.callback_errors == 1:  # a bug of ours, not the sender's: the details once, in the log
            log.exception("a MIDI input callback failed (further failures are only counted)")

    def _watch(self) -> None:
        """Kill a child that has gone silent (hung in the driver); its reader then restarts it."""
        while not self._wake.wait(ALIVE_S):
            proc = self._proc
            if proc is None or not self._ready.is_set() or time.monotonic() - self._heard < self.hung_s:
                continue
            self._say(f"the MIDI input process stopped answering for {self.hung_s:g} s; restarting it")
            self._heard = time.monotonic()
            try:
                proc.kill()
            except OSError:
                pass

    def _restart(self, code: int) -> None:
        now = time.monotonic()
        self._crashes = [t for t in self._crashes if now - t < 60.0] + [now]
        delay = RESTART_DELAYS_S[min(len(self._crashes), len(RESTART_DELAYS_S)) - 1]
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        self._say(f"the MIDI input process died ({how}); restarting it in {delay:g} s "
                  f"and reopening {len(self._names)} port(s)")
        time.sleep(delay)
        with self._lock:
            if self._closed:
                return
            if self._proc is None:  # (an open() in the meantime may have started one)
                try:
                    self._spawn()
                except HostUnavailable as exc:
                    self._say(f"{exc}; MIDI input is down until the next try")
                    threading.Timer(RESTART_DELAYS_S[-1], self._restart, args=(code,)).start()
                    return
            self.restarts += 1
            for port_id, name in list(self._names.items()):
                if port_id in self._live:
                    continue
                try:
                    self._request("open", port_id, name)
                    self._live.add(port_id)
                except HostError as exc:
                    self._say(f"MIDI input {name!r} did not reopen after the restart: {exc}")
        log.info("MIDI input process restarted (pid %s)", self.pid)

    def _say(self, text: str) -> None:
        log.warning("%s", text)
        if self.notify is not None:
            try:
                self.notify(text)
            except Exception:
                log.exception("MIDI notify callback failed")

    def _request(self, op: str, port_id: int, name: str = "") -> None:
        """Send a command and wait for its answer (under self._lock); HostError if it failed."""
        event, result = threading.Event(), []
        self._replies[port_id] = (event, result)
        try:
            proc = self._proc
            if proc is None:
                raise HostError("the MIDI input process is not running")
            try:
                proc.stdin.write((json.dumps({"op": op, "id": port_id, "name": name}) + "\n").encode())
            except OSError as exc:
                raise HostError(f"the MIDI input process is not running ({exc})") from None
            if not event.wait(REPLY_TIMEOUT_S):
                raise HostError(f"the MIDI input process did not answer within {REPLY_TIMEOUT_S:g} s")
            if result and result[0] is not None:
                raise HostError(result[0])
        finally:
            self._replies.pop(port_id, None)

    # -- ports --------------------------------------------------------------------------
    def open(self, name: str, on_bytes: Callable[[list[int]], None]) -> Callable[[], None]:
        """Open input `name` in the child; HostUnavailable if no child can run, HostError if the
        port would not open. Returns close()."""
        with self._lock:
            if self._closed:
                raise HostError("the MIDI input process has been shut down")
            if self._proc is None:
                self._spawn()
            port_id, self._next_id = self._next_id, self._next_id + 1
            self._callbacks[port_id] = on_bytes
            try:
                self._request("open", port_id, name)
            except HostError:
                self._callbacks.pop(port_id, None)
                raise
            self._names[port_id] = name
            self._live.add(port_id)

        def close() -> None:
            with self._lock:
                self._names.pop(port_id, None)
                self._live.discard(port_id)
                try:
                    if self._proc is not None and not self._closed:
                        self._request("close", port_id)
                finally:
                    self._callbacks.pop(port_id, None)

        return close

    def close(self) -> None:
        """Close every port and end the child (it closes its ports when its stdin ends)."""
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
            self._names.clear()
        self._wake.set()
        if proc is not None:
            self._stop_child(proc)
        for thread in [*self._readers, self._watchdog]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(2.0)
        self._callbacks.clear()
