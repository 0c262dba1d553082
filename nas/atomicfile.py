"""Atomic replacement of a file: the only way evonas rewrites anything in a run directory.

A reader (or a resume after SIGKILL) sees either the old file or the new one, never a torn one: the text goes
to a temporary file in the same folder, is flushed and fsynced, then renamed over the target with `os.replace`.

A write the operating system refuses (disk full, read-only file system, permission denied, quota) is not a bug
in evonas and must not end in a traceback: it becomes a `DiskWriteError`, one line naming the file and the
reason. It is a `UserError` (exit code 2), like "cannot create run directory": the user has to fix something
outside evonas (free space, permissions) and run the command again; exit code 1 stays reserved for bugs.
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from nas.errors import UserError


class DiskWriteError(UserError):
    """Writing `path` failed in the operating system; `str(err)` names the file and the reason, on one line."""

    def __init__(self, path: str | Path, exc: OSError, hint: str = ""):
        self.path = Path(path)
        self.errno = exc.errno
        self.reason = exc.strerror or str(exc) or type(exc).__name__
        super().__init__(f"cannot write {self.path}: {self.reason}" + (f"; {hint}" if hint else ""))

    def with_hint(self, hint: str) -> "DiskWriteError":
        """The same error with what to do next appended (the caller knows, e.g. `nas resume RUN_DIR`)."""
        return DiskWriteError(self.path, OSError(self.errno, self.reason), hint)


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
