"""`checkpoint.json` and `checkpoint.prev.json`: the strategy's state after each tell, written atomically.

A save writes the new state to a temporary file (fsynced), moves the current checkpoint to
`checkpoint.prev.json`, then renames the new one into place; at every instant at least one good checkpoint
exists. A load that finds `checkpoint.json` missing, truncated or garbled falls back to the previous one with a
warning; if both are bad it is a `UserError` and neither file is touched.
"""

import json
import logging
import os
from pathlib import Path
from typing import Any

from nas.atomicfile import atomic_write_text
from nas.errors import UserError

log = logging.getLogger(__name__)
FORMAT = "nas-checkpoint/1"
CURRENT = "checkpoint.json"
PREVIOUS = "checkpoint.prev.json"


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write `state` as the new checkpoint, keeping the old one as `checkpoint.prev.json`."""
    text = json.dumps({"format": FORMAT, **state}, allow_nan=False)
    staged = run_dir / f".{CURRENT}.new"
    atomic_write_text(staged, text)
    current = run_dir / CURRENT
    if current.exists():
        os.replace(current, run_dir / PREVIOUS)
    os.replace(staged, current)
    fsync_dir(run_dir)


def fsync_dir(path: Path) -> None:
    """Make renames in `path` durable (POSIX: the directory entry must be synced too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_one(path: Path) -> dict[str, Any] | None:
    """A checkpoint's contents, or None when it is missing or not a valid checkpoint."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "strategy" not in data:
        return None
    return data


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The newest valid checkpoint of `run_dir` (falling back to the previous one with a warning)."""
    current = read_one(run_dir / CURRENT)
    if current is not None:
        return current
    previous = read_one(run_dir / PREVIOUS)
    staged = read_one(run_dir / f".{CURRENT}.new")
    if previous is None and staged is None:
        raise UserError(f"{run_dir}: both {CURRENT} and {PREVIOUS} are missing or corrupt; cannot resume")
    if staged is not None and (previous is None or staged.get("step", 0) > previous.get("step", 0)):
        log.warning("%s: %s is missing or corrupt; using the staged checkpoint of step %s", run_dir, CURRENT,
                    staged.get("step"))  # fmt: skip
        return staged
    log.warning("%s: %s is missing or corrupt; falling back to %s", run_dir, CURRENT, PREVIOUS)
    return previous  # type: ignore[return-value]
