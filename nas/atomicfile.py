"""Atomic replacement of a file: the only way evonas rewrites anything in a run directory.

A reader (or a resume after SIGKILL) sees either the old file or the new one, never a torn one: the text goes
to a temporary file in the same folder, is flushed and fsynced, then renamed over the target with `os.replace`.
"""

import os
import tempfile
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` by temp file, fsync and rename, so a reader never sees half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
