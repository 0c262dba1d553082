"""One driver per run directory: an exclusive lock held while `nas search` or `nas resume` runs on it.

Two drivers on one run would both append to the log (genomes trained twice, the budget overrun) and replace
each other's checkpoints. The lock is `flock` on `RUN_DIR/.lock`, taken without waiting: a second driver is
refused at once with one line. The kernel drops the lock when the holding process ends, however it ends
(SIGKILL and power loss included), so a crash never leaves a stale lock to clean up by hand. The file itself
stays empty and is never rewritten (a run directory is only appended to). On NFS the lock is a POSIX lock
(Linux maps `flock` to one there since 2.6.12), which EFS and other NFSv4 servers honour.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nas.errors import UserError

LOCK_NAME = ".lock"


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold the run directory's lock for the enclosed block; refuse (exit 2) while another driver holds it."""
    lock = path / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot open the lock file {lock}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"{path} is in use by another `nas search` or `nas resume`; wait for it to end or stop it first"
            ) from None
        yield
    finally:
        os.close(fd)
