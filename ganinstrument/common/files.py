"""The permissions a file or folder the instrument creates should get: what the user's umask
gives a new one (tempfile.mkstemp and mkdtemp make them private, 0600 and 0700)."""

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


_UMASK_AT_IMPORT = os.umask(0o022)  # (at import, before any thread of ours: set, then put back)
os.umask(_UMASK_AT_IMPORT)
