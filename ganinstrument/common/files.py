"""Writing files: whole or not at all (`write_whole`), with the permissions a new file gets
from the user's umask (tempfile.mkstemp and mkdtemp make them private, 0600 and 0700), and
whether a file can be written where the user asked, before long work is spent on it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator

from .errors import GanInstrumentError


class FileWriteError(GanInstrumentError, OSError):
    """A file that could not be written: names it and says why."""

    def __init__(self, path, reason: str):
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"{self.path}: cannot write there ({reason})")


def umask() -> int:
    """The process's umask, read where the kernel tells it (Linux 4.7+): os.umask would have
    to set it to read it, racing other threads; elsewhere, as it was at import."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _UMASK_AT_IMPORT


def new_file_mode() -> int:
    return 0o666 & ~umask()


def new_folder_mode() -> int:
    return 0o777 & ~umask()


def set_mode(path, mode: int) -> None:
    """chmod where the file system keeps modes: FAT and some network shares refuse it, and a
    file there is written all the same."""
    with contextlib.suppress(OSError):
        os.chmod(path, mode)


def cannot_write(path, folders_made: bool = False) -> str | None:
    """Why a file could not be written at `path` (no such folder, a folder not writable, a
    folder of that name, a name too long), or None. `folders_made`: the writer makes missing
    folders, so the nearest folder that exists must take them. Asked before long work, so that
    it fails first; the write itself must still be guarded (the answer can change, and root
    passes every access test)."""
    given = os.path.join(os.getcwd(), os.fspath(path))  # (not normalised: "link/.." is the link's parent)
    folder, name = os.path.realpath(os.path.dirname(given)), os.path.basename(given)
    if os.path.isdir(os.path.join(folder, name)):
        return "that is a folder"
    existing, missing = folder, []
    while folders_made and not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing, part = os.path.split(existing)
        missing.append(part)
    if not os.path.isdir(existing):
        return f"there is no folder {existing}" if not os.path.lexists(existing) else f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the folder {existing} is not writable"
    for part in [*missing, name]:
        longest, length, unit = _name_limit(existing, part)
        if length > longest:
            return f"the name {part[:24]}... is too long: at most {longest} {unit} here"
    longest_path = _path_limit(existing)
    if len(os.fsencode(os.path.join(folder, name))) > longest_path:
        return f"the path is too long: at most {longest_path} bytes here"
    return None


def _path_limit(folder: str) -> int:
    """The longest path the system takes (PATH_MAX on POSIX; 32767 on Windows with long paths)."""
    try:
        return os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        return 32767


def _name_limit(folder: str, name: str) -> tuple[int, int, str]:
    """(the longest name the folder's file system takes, `name`'s length, the unit of both):
    POSIX counts bytes (pathconf's NAME_MAX); Windows counts UTF-16 units, 255."""
    if os.name == "nt":
        return 255, len(name.encode("utf-16-le")) // 2, "characters"
    try:
        longest = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        longest = 255
    return longest, len(os.fsencode(name)), "bytes"


def refuse_unwritable(*options: tuple[str | None, str | None], folders_made: bool = False) -> None:
    """Refuse, before any work, a command's output (its option, or None for a positional
    argument; the path) that could not be written."""
    for option, path in options:
        why = cannot_write(path, folders_made) if path else None
        if why:
            raise GanInstrumentError(f"{option + ' ' if option else ''}{path}: cannot write there: {why}")


@contextlib.contextmanager
def write_whole(path, suffix: str = ".part", error: Callable[[str], Exception] | None = None,
                durable: bool = False) -> Iterator[str]:
    """A temporary path beside `path` to write to (hidden, ending in `suffix` for writers that
    go by the extension). When the block ends without an error it replaces `path`, with the
    permissions a new file gets (where the file system keeps any); on any error it is removed
    and `path` is as it was. An OSError (no folder, a full disk, a folder of that name) becomes
    `error(reason)`, by default a FileWriteError naming `path`. `durable`: the contents reach the
    disk before the rename (fsync), so a power cut leaves the old file or the new one, never an
    empty one: for what a performer made by hand (a learned mapping), not for every frame."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    folder = os.path.realpath(folder or ".")  # (as the system resolves it: "link/.." is the link's parent)
    fail = error or (lambda reason: FileWriteError(path, reason))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name[:40]}.", suffix=suffix, dir=folder)  # (short: any name fits)
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    os.close(fd)
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDWR)  # (Windows' fsync needs a handle open for writing)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        set_mode(tmp, new_file_mode())
        os.replace(tmp, os.path.join(folder, name))
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, GanInstrumentError):
            raise fail(exc.strerror or str(exc)) from None
        raise


_UMASK_AT_IMPORT = os.umask(0o022)  # (at import, before any thread of ours: set, then put back)
os.umask(_UMASK_AT_IMPORT)
