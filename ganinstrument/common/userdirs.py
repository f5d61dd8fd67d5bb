"""Where mappings and presets are found: the performer's own folder, then the shipped ones.

The package ships its mappings and presets as package data (ganinstrument/data/mappings and
ganinstrument/data/presets), read with importlib.resources, so an installed wheel finds them
wherever it is installed. A performer's own files live in one per-user folder:

- `$GANINSTRUMENT_HOME` if set (tests, a portable setup on a USB stick);
- Linux and other Unix: `$XDG_CONFIG_HOME/ganinstrument` (default `~/.config/ganinstrument`);
- macOS: `~/Library/Application Support/ganinstrument`;
- Windows: `%APPDATA%\\ganinstrument`.

with `mappings/` and `presets/` inside. A name ("korg-nanokontrol2", "01 calm") is looked up as
a path first, then in the user's folder, then among the shipped files; a user's file of the
same name wins over the shipped one. The default presets folder is the user's `presets/`
(saving must go somewhere writable, never into the installed package): the first time it is
used it is created and seeded with copies of the shipped presets, which the performer may then
change or delete (they are not put back).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from .files import new_folder_mode, set_mode

log = logging.getLogger(__name__)

HOME_ENV = "GANINSTRUMENT_HOME"
KINDS = ("mappings", "presets")
SUFFIXES = (".yaml", ".yml")

_KEEP = contextlib.ExitStack()  # shipped files extracted from a zipped install live until exit
atexit.register(_KEEP.close)


def user_dir() -> Path:
    """The per-user folder (see the module docstring); not created here."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "ganinstrument"


def cache_dir() -> Path:
    """Where derived data is kept (it can always be made again): `$GANINSTRUMENT_HOME/cache` if
    set; else `$XDG_CACHE_HOME/ganinstrument` (default `~/.cache/ganinstrument`) on Linux,
    `~/Library/Caches/ganinstrument` on macOS, `%LOCALAPPDATA%\\ganinstrument\\Cache` on Windows.
    Not created here."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "cache"
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
        return Path(base) / "ganinstrument" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ganinstrument"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganinstrument"


def user_folder(kind: str) -> Path:
    """The user's `mappings` or `presets` folder."""
    assert kind in KINDS, kind
    return user_dir() / kind


def shipped_folder(kind: str) -> Path:
    """The folder of the `mappings` or `presets` shipped inside the package (read-only)."""
    assert kind in KINDS, kind
    found = resources.files("ganinstrument").joinpath("data", kind)
    return found if isinstance(found, Path) else _KEEP.enter_context(resources.as_file(found))


def shipped_names(kind: str) -> list[str]:
    folder = shipped_folder(kind)
    return sorted(p.stem for p in folder.iterdir() if p.suffix in SUFFIXES) if folder.is_dir() else []


def find(name, kind: str, folders=None) -> Path | None:
    """`name` as a path if it is a file, else `name` (with .yaml added if it has no suffix) in
    `folders` (default: the user's folder, then the shipped one); None if nowhere."""
    path = Path(name)
    if path.is_file():
        return path
    if len(path.parts) != 1:  # a path with folders is only a path
        return None
    names = [path.name] if path.suffix in SUFFIXES else [path.name + s for s in SUFFIXES]
    for folder in search_folders(kind) if folders is None else folders:
        for candidate in (Path(folder) / n for n in names):
            if candidate.is_file():
                return candidate
    return None


def search_folders(kind: str) -> list[Path]:
    return [user_folder(kind), shipped_folder(kind)]


def looked_in(name, folders) -> str:
    """'looked for it as a path, then in A and B', for a not-found message."""
    if len(Path(name).parts) != 1:
        return f"looked for it as a path from {Path.cwd()}"
    return f"looked for it as a path from {Path.cwd()}, then in " + " and ".join(str(f) for f in folders)


def default_presets_dir() -> Path:
    """The user's presets folder, created and seeded with the shipped presets the first time."""
    folder = user_folder("presets")
    if folder.is_dir():
        return folder
    tmp = None
    try:  # filled beside it, then renamed: a folder is there whole or not at all
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".presets.", dir=folder.parent))
        for src in shipped_folder("presets").iterdir():
            if src.suffix in SUFFIXES:
                shutil.copyfile(src, tmp / src.name)
        set_mode(tmp, new_folder_mode())  # (mkdtemp makes it private)
        os.rename(tmp, folder)
        tmp = None
        log.info("presets folder %s created with the shipped presets", folder)
    except OSError as exc:
        if not folder.is_dir():  # (not just another process that made it first)
            log.warning("cannot create the presets folder %s (%s); saving presets will fail, give "
                        "--presets-dir", folder, exc.strerror or exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
