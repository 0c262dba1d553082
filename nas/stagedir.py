"""Publishing a folder of outputs all at once: `nas export` and `nas report` write into a staging folder and
rename it into place only when every file is complete.

A reader (or a crash at any instant) therefore sees the old folder or the new one, never a half-written mix
of the two. Refreshing a folder that already holds outputs takes two renames (old folder aside, new folder
in), so for that instant the folder is absent, never torn; the old one is deleted afterwards. A crash
mid-write leaves only a hidden `.NAME.staging-*` sibling, never a partial NAME.

A folder the disk will not take (read-only, full, no permission, a place such as /proc where nothing can be
made) is a `DiskWriteError` naming it (one line, exit 2), whether making the staging folder fails (before the
command's work) or a step of publishing it (an fsync, a rename): the renames already made are undone, so the
previous folder is back in place, and the staging folder is deleted.

Only folders a command owns may be refreshed, and only when they hold nothing but that command's own files:
a folder with anything else in it (a user's notes, retrained weights) is refused rather than replaced.
"""

import os
import shutil
import tempfile
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from nas.atomicfile import DiskWriteError, fsync_dir
from nas.errors import UserError, os_reason


def check_target(target: Path, refreshable: bool, owned: Collection[str], flag: str) -> None:
    """Refuse a target we may not (re)write: a file, a non-empty folder we do not own, or foreign contents."""
    try:
        if target.exists() and not target.is_dir():
            raise UserError(f"{flag} {target} is a file, not a folder")
        if not target.is_dir():
            return
        names = sorted(p.name for p in target.iterdir())
    except OSError as exc:
        raise UserError(f"cannot read {target}: {os_reason(exc)}") from None
    if not names:
        return
    if not refreshable:
        raise UserError(f"{flag} {target} is not empty; choose an empty or new folder")
    foreign = [n for n in names if n not in owned]
    if foreign:
        raise UserError(f"{target} holds {foreign[0]!r}, which this command did not write; move it away first")


@contextmanager
def staged_directory(
    target: str | Path, *, refreshable: bool, owned: Collection[str], flag: str = "--out"
) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; on success it replaces `target` as a whole.

    `refreshable`: `target` may already hold outputs (only names in `owned`), which are replaced. Otherwise a
    non-empty `target` is a `UserError`, checked before the caller does any work. On an exception the
    staging folder is deleted and `target` is left exactly as it was. A folder the operating system will not
    let us make, fill or rename (read-only file system, no permission, a path under /proc) is a
    `DiskWriteError` naming `target`, raised before the caller's work when the staging folder cannot be made.
    """
    target = Path(target)
    check_target(target, refreshable, owned, flag)
    staging = make_staging(target)
    try:
        try:
            yield staging
        except OSError as exc:
            if not inside(exc.filename, staging):
                raise
            raise DiskWriteError(target, exc) from None  # writing the outputs into staging failed: disk full, ...
        publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def inside(filename: object, folder: Path) -> bool:
    """Whether an `OSError` belongs to the writing of `folder`'s files: its file is in `folder`, or it names no
    file (a `write()` on a full disk names none). An error with a file elsewhere (an input that cannot be read)
    keeps its own message rather than being blamed on the output."""
    if filename is None:
        return True
    if not isinstance(filename, str | bytes | Path):
        return False
    path = Path(filename.decode() if isinstance(filename, bytes) else filename)
    return path == folder or folder in path.parents


def make_staging(target: Path) -> Path:
    """The empty hidden staging folder beside `target` (its parents made first)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {target.parent} (for {target}): {os_reason(exc)}") from None
    try:
        return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))
    except OSError as exc:
        raise DiskWriteError(target, exc) from None


def publish(staging: Path, target: Path) -> None:
    """Move the finished `staging` folder to `target`; an existing `target` is renamed aside, then deleted.

    Every step that can fail (the files' fsync, the renames, the folder's fsync) fails as a `DiskWriteError`
    naming `target`, after undoing the renames already made: `target` is back as it was (absent, empty or the
    previous outputs) and `staging` holds the new files, for the caller to delete."""
    old: Path | None = None
    placed = was_empty = False
    try:
        for path in staging.iterdir():
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        os.chmod(staging, 0o755 & ~current_umask())
        if target.is_dir() and any(target.iterdir()):
            aside = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, aside)
            old = aside
        else:
            was_empty = target.is_dir()
        os.replace(staging, target)  # POSIX rename replaces an empty folder
        placed = True
        fsync_dir(target.parent)
    except OSError as exc:
        raise DiskWriteError(target, exc, undo(staging, target, old, placed, was_empty)) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def undo(staging: Path, target: Path, old: Path | None, placed: bool, was_empty: bool) -> str:
    """Put `target` back as it was before a failed publish; a hint naming where the previous outputs are when
    that fails too."""
    try:
        if placed:
            os.rename(target, staging)
            if was_empty:
                target.mkdir()
        if old is not None:
            os.rename(old, target)
    except OSError:
        return f"the previous {target.name} is kept at {old}" if old is not None else ""
    return ""


def current_umask() -> int:
    """The process umask (read by setting and restoring it): staging folders are created 0700 by mkdtemp."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
