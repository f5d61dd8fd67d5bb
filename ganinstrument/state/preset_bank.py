"""A folder of presets as numbered slots, read and written off the engine thread.

"03 sunset.yaml" is slot 3; `preset.recall N` / `preset.save N` use slots (SLOTS: 1 to 999),
`preset.next` / `preset.prev` walk the files in name order.

Until `start()`, a bank works in the caller's thread: it lists the folder and reads a file when
asked (scripts, `render`, tests). `start()` (perform, before the show; the live engine, if not
yet) reads the whole folder, then a worker thread owns the disk: it reads the folder again
whenever a file changes (polled every RESCAN_S) and writes saves atomically. The engine thread
then only looks up what the worker has published (the listing, the parsed presets) and never
waits on a disk: a recall of a file not parsed yet comes back as None and is asked for (the
caller tries again on a later frame); a save puts the look in the bank at once (recallable
straight away, even if the disk then refuses it) and queues the write, the newest save of a
file replacing one not written yet. Failures, the worker's own included, are kept in `errors`
(one line each) for the caller to show.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import threading
from pathlib import Path

from ..common.text import shorten
from ..common.userdirs import default_presets_dir
from .presets import Preset, PresetError, load_preset_file, save_preset_file

log = logging.getLogger(__name__)

SLOTS = range(1, 1000)
RESCAN_S = 1.0
_SLOT = re.compile(r"^(\d{1,4})(?:\D.*)?$")


def slot_number(value, action: str = "preset slot") -> int:
    """A slot number from a control's value; ValueError naming the range for anything else."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or value != value
            or abs(value) == float("inf") or value != round(value) or int(value) not in SLOTS):
        raise ValueError(f"{action}: a slot is a whole number from {SLOTS.start} to "
                         f"{SLOTS.stop - 1}, got {value!r}")
    return int(value)


class PresetBank:
    """The presets in one folder: its listing, parsed presets, and saves (see the module)."""

    def __init__(self, directory=None):
        self._directory = None if directory is None else Path(directory)
        self.current: int | None = None  # index into files()
        self.errors: collections.deque[str] = collections.deque(maxlen=32)  # for the HUD
        self._lock = threading.Lock()  # guards the fields below (held for no disk work)
        self._wake = threading.Condition(self._lock)
        self._files: tuple[Path, ...] = ()  # the listing: on disk, and saved this show
        self._disk: dict[Path, tuple[tuple, Preset | PresetError]] = {}  # path -> (stat, as read)
        self._kept: dict[Path, Preset] = {}  # saved this show, not (yet) on disk: the truth
        self._saves: dict[Path, Preset] = {}  # writes to do; the newest per file
        self._wanted: set[Path] = set()  # reads the engine asked for
        self._thread: threading.Thread | None = None
        self._stop = False

    @property
    def directory(self) -> Path:
        """The folder; by default the user's presets folder, created (and seeded with the
        shipped presets) the first time it is needed (userdirs.py), not before."""
        if self._directory is None:
            self._directory = default_presets_dir()
        return self._directory

    # -- the worker ---------------------------------------------------------------------
    def start(self) -> PresetBank:
        """Read the whole folder (here, before the show), then move disk work to a worker."""
        if self._thread is None:
            self._stop = False
            self._scan_safely()
            self._thread = threading.Thread(target=self._run, name="presets", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout_s: float = 5.0) -> bool:
        """Write the saves still queued, then stop the worker. True if it finished in time."""
        thread = self._thread
        if thread is None:
            return True
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        thread.join(timeout_s)
        self._thread = None
        return not thread.is_alive()

    @property
    def background(self) -> bool:
        return self._thread is not None

    def _run(self) -> None:
        while True:
            with self._lock:
                self._wake.wait_for(lambda: self._stop or self._saves or self._wanted, timeout=RESCAN_S)
                saves, self._saves = self._saves, {}
                stop = self._stop
            for path, preset in saves.items():
                self._write(path, preset)
            if stop:
                return
            self._scan_safely()

    def _scan_safely(self) -> None:
        try:
            self._scan(read=True)
        except Exception as exc:  # the show goes on with what was read before
            self._failed(f"presets: cannot read {self.directory}: {type(exc).__name__}: {exc}")
            with self._lock:
                self._wanted.clear()  # (asked again by the next recall)

    def _scan(self, read: bool) -> None:
        """List the folder; with `read`, (re)read every preset whose file changed."""
        files = set(self._list())
        if read:
            with self._lock:
                known = dict(self._disk)
                wanted, self._wanted = self._wanted, set()
            fresh = {}
            for path in files | wanted:
                key = _stat_key(path)
                old = known.get(path)
                fresh[path] = old if old is not None and old[0] == key else (key, _read(path))
        with self._lock:
            if read:
                self._disk = fresh
            self._files = tuple(sorted(files | set(self._kept)))

    def _list(self) -> list[Path]:
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return []
        return [Path(e.path) for e in entries
                if e.name.endswith((".yaml", ".yml")) and not e.name.startswith(".") and _is_file(e)]

    def _write(self, path: Path, preset: Preset) -> None:
        try:
            save_preset_file(path, preset)
            key = _stat_key(path)
        except Exception as exc:  # PresetError, or a bug: either way one line, and go on
            why = "; ".join(exc.problems) if isinstance(exc, PresetError) else f"{type(exc).__name__}: {exc}"
            self._failed(f"preset not saved to disk (kept for this show): {path}: {why}")
            return
        with self._lock:
            if self._kept.get(path) is preset and path not in self._saves:
                del self._kept[path]
                self._disk[path] = (key, preset)

    def _failed(self, text: str) -> None:
        text = shorten(text, 400)
        log.error("%s", text)
        self.errors.append(text)

    # -- the caller's side (the engine thread): never waits on a disk once started --------
    def files(self) -> list[Path]:
        if not self.background:
            self._scan(read=False)
        with self._lock:
            return list(self._files)

    def slot_path(self, slot: int) -> Path | None:
        for p in self.files():
            m = _SLOT.match(p.stem)
            if m and int(m.group(1)) == slot:
                return p
        return None

    def path_for_save(self, slot: int) -> Path:
        slot = slot_number(slot, "preset.save")
        return self.slot_path(slot) or self.directory / f"{slot:02d}.yaml"

    def step(self, delta: int) -> Path | None:
        """The file `delta` places from the current one (wrapping); the first/last if none yet."""
        files = self.files()
        if not files:
            return None
        if self.current is None:
            self.current = 0 if delta > 0 else len(files) - 1
        else:
            self.current = (self.current + delta) % len(files)
        return files[self.current]

    def mark(self, path) -> None:
        """Make `path` the current file (where next/prev walk from)."""
        where = os.path.abspath(path)
        files = self.files()
        self.current = next((i for i, p in enumerate(files) if os.path.abspath(p) == where), self.current)

    def get(self, path) -> Preset | None:
        """The parsed preset at `path`; None while the worker has not read it yet (it is asked
        to). Raises the file's PresetError."""
        path = Path(path)
        if not self.background:
            key = _stat_key(path)
            with self._lock:
                old = self._disk.get(path)
            if old is None or old[0] != key:
                entry = (key, _read(path))
                with self._lock:
                    self._disk[path] = entry
        with self._lock:
            kept = self._kept.get(path)
            entry = self._disk.get(path)
            if kept is None and entry is None:
                self._wanted.add(path)
                self._wake.notify_all()
                return None
        if kept is not None:
            return kept
        if isinstance(entry[1], PresetError):
            raise entry[1]
        return entry[1]

    def save(self, path, preset: Preset) -> Path:
        """Keep `preset` as the look at `path` now; write it (atomically) here, or on the
        worker once started. Raises PresetError only when writing here."""
        path = Path(path)
        if not self.background:
            save_preset_file(path, preset)
            with self._lock:
                self._disk[path] = (_stat_key(path), preset)
            return path
        with self._lock:
            self._kept[path] = self._saves[path] = preset
            if path not in self._files:
                self._files = tuple(sorted(self._files + (path,)))
            self._wake.notify_all()
        return path


def _read(path: Path) -> Preset | PresetError:
    try:
        return load_preset_file(path)
    except PresetError as exc:
        return exc


def _stat_key(path: Path) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return ("missing",)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False
