"""Publishing a folder of outputs all at once: `nas export` and `nas report` write into a staging folder and
rename it into place only when every file is complete.

A reader (or a crash at any instant) therefore sees the old folder or the new one, never a half-written mix
of the two. Refreshing a folder that already holds outputs takes two renames (old folder aside, new folder
in), so for that instant the folder is absent, never torn; the old one is deleted afterwards. A crash
mid-write leaves only a hidden `.NAME.staging-*` sibling, never a partial NAME.

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

from nas.errors import UserError
from nas.run.checkpoint import fsync_dir


def check_target(target: Path, refreshable: bool, owned: Collection[str], flag: str) -> None:
    """Refuse a target we may not (re)write: a file, a non-empty folder we do not own, or foreign contents."""
    if target.exists() and not target.is_dir():
        raise UserError(f"{flag} {target} is a file, not a folder")
    if not target.is_dir():
        return
    names = sorted(p.name for p in target.iterdir())
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
    staging folder is deleted and `target` is left exactly as it was.
    """
    target = Path(target)
    check_target(target, refreshable, owned, flag)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {target.parent}: {exc.strerror}") from None
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))
    try:
        yield staging
        publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish(staging: Path, target: Path) -> None:
    """Move the finished `staging` folder to `target`; an existing `target` is renamed aside, then deleted."""
    for path in staging.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    os.chmod(staging, 0o755 & ~current_umask())
    old = None
    if target.is_dir() and any(target.iterdir()):
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
    os.replace(staging, target)  # POSIX rename replaces an empty folder
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def current_umask() -> int:
    """The process umask (read by setting and restoring it): staging folders are created 0700 by mkdtemp."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
