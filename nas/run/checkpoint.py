"""`checkpoint.json` and `checkpoint.prev.json`: the strategy's state after each tell, written atomically.

A save writes the new state to a staged file (temp file, fsync, rename), makes `checkpoint.prev.json` a hard
link to the current checkpoint (renamed into place, so atomically too, and without writing its data again),
then renames the staged file over `checkpoint.json`. `checkpoint.json`
itself is only ever replaced by a rename, never moved aside first, so once it exists it stays in place and
valid at every instant: a crash, a full disk or a read-only file system at any step of a save leaves it as it
was (or already new), and `checkpoint.prev.json` one good state behind. A current checkpoint that is already
bad (resume fell back to the previous one) does not replace the good previous one.

Each checkpoint carries the sha256 of its own contents (canonical JSON), so a garbled byte that still leaves
valid JSON (a digit changed, a letter in a key) is caught like a truncation, instead of resuming a different
search or failing with a traceback on a missing key. A checkpoint without the field (older runs) is trusted.

A load that finds `checkpoint.json` missing, truncated or garbled falls back to the previous one with a
warning; if both are bad it is a `UserError` and neither file is touched. Write failures are
`DiskWriteError`s naming the file.
"""

import contextlib
import errno
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from nas.atomicfile import atomic_write_text, writing
from nas.errors import UserError

log = logging.getLogger(__name__)
FORMAT = "nas-checkpoint/1"
CURRENT = "checkpoint.json"
PREVIOUS = "checkpoint.prev.json"
STAGED = f".{CURRENT}.new"


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write `state` as the new checkpoint, keeping the old one as `checkpoint.prev.json`.

    A save that fails (disk full, read-only) removes its staged file: nothing is left behind on the full disk,
    and `checkpoint.json` is as it was.
    """
    data = {"format": FORMAT, **state}
    text = json.dumps({**data, "sha256": digest(data)}, allow_nan=False)
    staged = run_dir / STAGED
    atomic_write_text(staged, text)
    current = run_dir / CURRENT
    try:
        if valid_text(current) is not None:
            keep_previous(current, run_dir / PREVIOUS)
        with writing(current):
            os.replace(staged, current)
            fsync_dir(run_dir)
    except BaseException:
        with contextlib.suppress(OSError):  # the error to report is the one that stopped the save
            staged.unlink(missing_ok=True)
        raise


def keep_previous(current: Path, previous: Path) -> None:
    """Make `previous` the file `current` is now, by a hard link renamed into place: no data is written, so
    it needs no free space (a full disk was failing right here, on a copy). Where the file system has no hard
    links, a copy, atomically."""
    link = previous.with_name(f".{previous.name}.link")
    with writing(previous):
        link.unlink(missing_ok=True)
        try:
            os.link(current, link)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
                raise
            atomic_write_text(previous, current.read_text(encoding="utf-8"))
            return
        try:
            os.replace(link, previous)
        except BaseException:
            with contextlib.suppress(OSError):
                link.unlink(missing_ok=True)
            raise


def valid_text(path: Path) -> str | None:
    """The text of a valid checkpoint file, None when it is missing or not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if parsed(text) is not None else None


def fsync_dir(path: Path) -> None:
    """Make renames in `path` durable (POSIX: the directory entry must be synced too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def digest(data: dict[str, Any]) -> str:
    """sha256 of `data` as canonical JSON (sorted keys, no spaces): what a checkpoint's `sha256` field holds."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parsed(text: str) -> dict[str, Any] | None:
    """A checkpoint's contents from its text (without its `sha256`), or None when it is not a valid checkpoint."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("strategy"), dict):
        return None
    checksum = data.pop("sha256", None)
    if checksum is not None and checksum != digest(data):
        return None
    return data


def read_one(path: Path) -> dict[str, Any] | None:
    """A checkpoint's contents, or None when it is missing or not a valid checkpoint."""
    try:
        return parsed(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def has_checkpoint(run_dir: Path) -> bool:
    """Whether any checkpoint file (good or bad) exists: a run without one stopped before its first save."""
    return any((run_dir / name).exists() for name in (CURRENT, PREVIOUS, STAGED))


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The newest valid checkpoint of `run_dir` (falling back to the previous one with a warning)."""
    current = read_one(run_dir / CURRENT)
    if current is not None:
        return current
    previous = read_one(run_dir / PREVIOUS)
    staged = read_one(run_dir / STAGED)
    if previous is None and staged is None:
        raise UserError(f"{run_dir}: both {CURRENT} and {PREVIOUS} are missing or corrupt; cannot resume")
    if staged is not None and (previous is None or staged.get("step", 0) > previous.get("step", 0)):
        log.warning("%s: %s is missing or corrupt; using the staged checkpoint of step %s", run_dir, CURRENT,
                    staged.get("step"))  # fmt: skip
        return staged
    log.warning("%s: %s is missing or corrupt; falling back to %s", run_dir, CURRENT, PREVIOUS)
    return previous  # type: ignore[return-value]
