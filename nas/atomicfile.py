"""Atomic replacement of a file: the only way evonas rewrites anything in a run directory.

A reader (or a resume after SIGKILL) sees either the old file or the new one, never a torn one: the text goes
to a temporary file in the same folder, is flushed and fsynced, then renamed over the target with `os.replace`.

A write the operating system refuses (disk full, read-only file system, permission denied, quota) is not a bug
in evonas and must not end in a traceback: it becomes a `DiskWriteError`, one line naming the file and the
reason. It is a `UserError` (exit code 2), like "cannot create run directory": the user has to fix something
outside evonas (free space, permissions) and run the command again; exit code 1 stays reserved for bugs.
"""

import errno
import itertools
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from nas.errors import UserError, os_reason


class DiskWriteError(UserError):
    """Writing `path` failed in the operating system; `str(err)` names the file and the reason, on one line."""

    def __init__(self, path: str | Path, exc: OSError, hint: str = ""):
        self.path = Path(path)
        self.errno = exc.errno
        self.reason = os_reason(exc)
        super().__init__(f"cannot write {self.path}: {self.reason}" + (f"; {hint}" if hint else ""))

    def with_hint(self, hint: str) -> "DiskWriteError":
        """The same error with what to do next appended (the caller knows, e.g. `nas resume RUN_DIR`)."""
        return DiskWriteError(self.path, OSError(self.errno, self.reason), hint)


def fsync_dir(path: Path) -> None:
    """Make renames in `path` durable (POSIX: the directory entry must be synced too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an `OSError` raised while writing `path` into a `DiskWriteError` naming it."""
    try:
        yield
    except OSError as exc:
        raise DiskWriteError(path, exc) from None


def atomic_write_text(path: str | Path, text: str | bytes) -> None:
    """Write `text` (or bytes, `atomic_write_bytes`) to `path` by temp file, fsync and rename, so a reader never
    sees half a file.

    On any failure the temporary file is removed and `path` is exactly as it was; an `OSError` is raised as a
    `DiskWriteError`.
    """
    p = Path(path)
    with writing(p):
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode("utf-8") if isinstance(text, str) else text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            with suppress(OSError):  # the error to report is the one that stopped the write
                Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """`atomic_write_text` for bytes (the rung states of `search.fidelity`): the same write, one code path."""
    atomic_write_text(path, data)


STAGED = re.compile(r"\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp")  # what `atomic_write_text` stages: .NAME.RANDOM.tmp


def staged_target(name: str) -> str | None:
    """The name of the file a staged temporary file called `name` was being written to, or None when `name`
    is not one (`atomic_write_text` stages `path` as `.<name of path>.<random>.tmp` beside it)."""
    m = STAGED.fullmatch(name)
    return m["target"] if m else None


def remove_staged(folder: str | Path, targets: Callable[[str], bool]) -> list[Path]:
    """Remove the staged temporary files that a write killed before its rename (SIGKILL, power loss) left in
    `folder`, for the targets whose names `targets` accepts; returns those removed.

    Only regular files are removed (never a folder, a link or anything else that happens to have such a name),
    and only in `folder` itself; a missing folder has none. Call it only while no write to `folder` can be in
    flight (under the run lock, before the driver writes): a staged file of a live write looks the same. A file
    that cannot be removed (read-only disk) is left, as it harms nothing: nothing ever reads a staged file.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:  # missing, not a folder, unreadable: nothing this can clean
        return removed
    for name in sorted(names):
        target = staged_target(name)
        if target is None or not targets(target):
            continue
        path = Path(folder) / name
        with suppress(OSError):
            if stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink()
                removed.append(path)
    return removed


def move_folder_aside(path: Path) -> Path | None:
    """Free `path`, where a folder stands that no write of ours made: an empty folder is removed (None is
    returned), one holding anything is renamed beside it to the first free `<name>.moved-<n>` (returned), so
    nothing in it is deleted. The `OSError` of a folder that can be neither is raised."""
    try:
        os.rmdir(path)
        return None
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    names = (path.with_name(f"{path.name}.moved-{n}") for n in itertools.count(1))
    aside = next(p for p in names if not os.path.lexists(p))
    os.rename(path, aside)
    return aside
