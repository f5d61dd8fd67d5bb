"""Writing files whole or not at all (common/files.py `write_whole`), and the checks commands ask
before long work (`cannot_write`): what a full disk, a folder in the way, a file system without
modes or a name too long do to each writer."""

from __future__ import annotations

import errno
import os

import pytest

from ganinstrument.common import files
from ganinstrument.common.files import FileWriteError, cannot_write, write_whole


def test_a_whole_file_replaces_the_old_one_with_a_new_files_permissions(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    os.chmod(path, 0o600)
    with write_whole(path) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and os.path.basename(tmp).startswith(".out.txt.")
        with open(tmp, "w") as f:
            f.write("new")
        assert path.read_text() == "old"  # (nothing is replaced before the block ends)
    assert path.read_text() == "new" and os.stat(path).st_mode & 0o777 == files.new_file_mode()
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), ValueError("a bug")])
def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path, failure):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(type(failure) if not isinstance(failure, OSError) else FileWriteError) as caught:
        with write_whole(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise failure
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    if isinstance(failure, OSError):  # one line naming the file the user asked for, not the temporary one
        assert str(caught.value) == f"{path}: cannot write there (No space left on device)"


def test_the_callers_error_and_a_folder_in_the_way(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(LookupError, match="^cannot: Is a directory$"):
        with write_whole(tmp_path / "taken", error=lambda why: LookupError(f"cannot: {why}")) as tmp:
            open(tmp, "w").close()
    with pytest.raises(FileWriteError, match="No such file or directory"):
        with write_whole(tmp_path / "no" / "folder.txt"):
            pass
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_a_file_system_without_modes_still_gets_the_file(tmp_path, monkeypatch):
    """FAT (a USB stick) refuses chmod: the file is written all the same."""
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(files.os, "chmod", refuse)
    with write_whole(tmp_path / "stick.txt") as tmp:
        with open(tmp, "w") as f:
            f.write("ok")
    assert (tmp_path / "stick.txt").read_text() == "ok"


def test_cannot_write_says_why_before_the_work(tmp_path):
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "a_file").write_text("")
    assert cannot_write(tmp_path / "fine.png") is None
    assert cannot_write(tmp_path / "folder.png") == "that is a folder"
    assert cannot_write(tmp_path / "nowhere" / "x.png") == f"there is no folder {tmp_path / 'nowhere'}"
    assert cannot_write(tmp_path / "a_file" / "x.png") == f"{tmp_path / 'a_file'} is not a folder"
    assert cannot_write(tmp_path / "new" / "folders" / "x.yaml", folders_made=True) is None
    through_a_file = cannot_write(tmp_path / "a_file" / "sub" / "x.yaml", folders_made=True)
    assert through_a_file == f"{tmp_path / 'a_file'} is not a folder"
    assert not (tmp_path / "new").exists()  # (asking makes nothing)
    longest = os.pathconf(tmp_path, "PC_NAME_MAX")
    too_long = f"the name {'n' * 24}... is too long: at most {longest} bytes here"
    assert cannot_write(tmp_path / ("n" * (longest + 1))) == too_long
    assert cannot_write(tmp_path / ("n" * longest)) is None
    with write_whole(tmp_path / ("n" * longest)) as tmp:  # (its temporary name fits too)
        open(tmp, "w").close()
    wide = "\u00e9" * (longest // 2 + 1)  # (fewer characters than the limit, more bytes)
    assert cannot_write(tmp_path / wide) == f"the name {wide[:24]}... is too long: at most {longest} bytes here"
    # Folders a writer would make are names too; and the whole path has its limit.
    assert cannot_write(tmp_path / ("n" * (longest + 1)) / "m.yaml", folders_made=True) == too_long
    deep = tmp_path.joinpath(*["d" * 200] * (os.pathconf(tmp_path, "PC_PATH_MAX") // 200 + 1), "m.yaml")
    assert cannot_write(deep, folders_made=True).startswith("the path is too long: at most")


def test_a_parent_through_a_symlink_is_where_the_system_would_write(tmp_path):
    """"link/.." is the parent of the link's target, as the system resolves it, not tmp_path."""
    (tmp_path / "elsewhere" / "inner").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere" / "inner")
    (tmp_path / "afile").write_text("")  # (beside the link: "link/../afile/x" would be a path through a file)
    through = tmp_path / "link" / ".." / "afile" / "x.yaml"
    assert cannot_write(through) == f"there is no folder {tmp_path / 'elsewhere' / 'afile'}"
    (tmp_path / "elsewhere" / "afile").mkdir()
    assert cannot_write(through) is None
    with write_whole(through) as tmp:  # (and the writer writes there too)
        open(tmp, "w").close()
    assert (tmp_path / "elsewhere" / "afile" / "x.yaml").is_file()


def test_a_durable_file_reaches_the_disk_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    synced = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                       real_fsync(fd)))
    monkeypatch.setattr(files.os, "replace", lambda a, b: (synced.append(("replace", a)), real_replace(a, b)))
    with write_whole(tmp_path / "mapping.yaml", durable=True) as tmp:
        with open(tmp, "w") as f:
            f.write("bindings: []\n")
    assert synced == [tmp, ("replace", tmp)]  # (its contents first, then the rename)
    synced.clear()
    with write_whole(tmp_path / "frame.png") as tmp:  # (not durable: no fsync per frame)
        open(tmp, "w").close()
    assert synced == [("replace", tmp)]
