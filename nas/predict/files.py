"""What a path on the command line is, in words: `nas predict` reads only regular files and folders, and says
what anything else is (a FIFO would block a read forever, `/dev/zero` would never end) instead of calling it
missing."""

import errno
import os
import stat
from pathlib import Path

from nas.errors import UserError

KINDS = (
    (stat.S_ISREG, "a file"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(path: Path) -> str:
    """ "a file", "a folder", "a FIFO", "a character device", ..., "a broken symbolic link" or "missing"
    (links followed; a link that leads nowhere is named as such)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if os.path.islink(path):
            return "a broken symbolic link"
        if exc.errno == errno.ENOTDIR:
            return "missing (a parent is a file, not a folder)"
        return "missing" if exc.errno == errno.ENOENT else f"unreadable ({exc.strerror})"
    return next((word for test, word in KINDS if test(mode)), "not a file or folder")


def require_regular(path: Path, what: str) -> None:
    """A one-line `UserError` unless `path` is a regular file (links followed)."""
    kind = file_kind(path)
    if kind == "missing":
        raise UserError(f"{path} does not exist")
    if kind != "a file":
        raise UserError(f"{path} is {kind}, not {what}")


def first_file_ancestor(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` that is not a folder (so nothing can be created under it)."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return None if parent.is_dir() else parent
    return None


def check_out_path(out: str) -> Path:
    """`--out FILE` checked before any work: not a folder, not a device, its parent a folder that can be made."""
    path = Path(out)
    blocker = first_file_ancestor(path)
    if blocker is not None:
        raise UserError(f"--out {out}: {blocker} is {file_kind(blocker)}, not a folder")
    kind = file_kind(path)
    if kind not in ("missing", "a file"):
        raise UserError(f"--out {out} is {kind}; give a file name for the CSV")
    return path
