"""The permissions a file or folder the instrument creates should get: what the user's umask
gives a new one (tempfile.mkstemp and mkdtemp make them private, 0600 and 0700); and whether a
file can be written where the user asked, before long work is spent on it."""

from __future__ import annotations

import os


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


def cannot_write(path) -> str | None:
    """Why a file could not be written at `path` (no such folder, a folder not writable, a
    folder of that name), or None. Asked before long work, so that it fails first; the write
    itself must still be guarded (the answer can change, and root passes every access test)."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        return "that is a folder"
    if not os.path.isdir(folder):
        return f"there is no folder {folder}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable"
    return None


_UMASK_AT_IMPORT = os.umask(0o022)  # (at import, before any thread of ours: set, then put back)
os.umask(_UMASK_AT_IMPORT)
