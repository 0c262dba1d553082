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

A load that finds `checkpoint.json` missing, truncated, garbled or not a file at all (a directory in its place)
falls back to the previous one with a warning, said once however often the run's parts load it; if both are bad
it is a `UserError` and neither file is touched. A directory where a save renames a checkpoint file is cleared
first, as a bad file is replaced (an empty one removed, one holding files moved aside, never deleted). Write
failures are `DiskWriteError`s naming the file.
"""

import contextlib
import errno
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from nas.atomicfile import atomic_write_text, fsync_dir, move_folder_aside, writing
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
    with writing(staged):
        clear_way(staged)
    atomic_write_text(staged, text)
    current = run_dir / CURRENT
    try:
        if valid_text(current) is not None:
            keep_previous(current, run_dir / PREVIOUS)
        with writing(current):
            clear_way(current)
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
        clear_way(previous)
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


def clear_way(path: Path) -> None:
    """Make way for a rename onto `path` where a directory stands in its place (a rename replaces a file of any
    kind, not a directory): an empty one is removed, one holding anything is moved aside, with a warning that
    says where. Nothing else is touched."""
    if path.is_symlink() or not path.is_dir():
        return
    aside = move_folder_aside(path)
    if aside is not None:
        log.warning("%s is a directory holding files, not a checkpoint; moved it to %s", path, aside.name)


def valid_text(path: Path) -> str | None:
    """The text of a valid checkpoint file, None when it is missing or not one."""
    if not path.is_file():  # a directory, or a FIFO whose read would block forever
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if parsed(text) is not None else None


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
    if not path.is_file():
        return None
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
    fault = "is a directory, not a checkpoint" if (run_dir / CURRENT).is_dir() else "is missing or corrupt"
    if staged is not None and (previous is None or staged.get("step", 0) > previous.get("step", 0)):
        warn_once(run_dir, "%s: %s %s; using the staged checkpoint of step %s", run_dir, CURRENT, fault,
                  staged.get("step"))  # fmt: skip
        return staged
    if previous is None:  # and no staged one either
        raise UserError(f"{run_dir}: both {CURRENT} and {PREVIOUS} are missing or corrupt; cannot resume")
    warn_once(run_dir, "%s: %s %s; falling back to %s", run_dir, CURRENT, fault, PREVIOUS)
    return previous


# run directory -> the state of its checkpoint files when a fallback was last announced
_announced: dict[Path, tuple[Any, ...]] = {}


def warn_once(run_dir: Path, message: str, *args: Any) -> None:
    """Warn about a fallback once while the checkpoint files stay as they are: the driver, its loop and the async
    loop each load the checkpoint, and the same fallback said three times reads as three faults."""
    state = tuple(file_state(run_dir / name) for name in (CURRENT, PREVIOUS, STAGED))
    key = run_dir.resolve()
    if _announced.get(key) != state:
        _announced[key] = state
        log.warning(message, *args)


def file_state(path: Path) -> tuple[int, int, int, int] | None:
    """What tells a file's version apart (inode, kind, size, modification time), None when it is absent."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns)


def saved_state(run_dir: Path, log_path: Path) -> str:
    """What a refused write leaves for `nas resume`, as it is: a checkpoint of the last step, an earlier one the
    resume falls back to, or none; a log that holds evaluations is never called empty."""
    if read_one(run_dir / CURRENT) is not None:
        return f"every finished evaluation is in the log and {CURRENT} holds the last step"
    if read_one(run_dir / PREVIOUS) is not None or read_one(run_dir / STAGED) is not None:
        return "every finished evaluation is in the log and an earlier checkpoint is intact (resume falls back to it)"
    if log_path.is_file() and log_path.stat().st_size:
        return f"every finished evaluation is in the log, but neither {CURRENT} nor {PREVIOUS} is readable"
    return "no checkpoint was written yet, so nothing was evaluated; resume starts the search from its config"
