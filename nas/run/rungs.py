"""`search.fidelity`'s rung states under `RUN_DIR/rungs/`: the files the schedulers (`nas.run.schedulers`) keep.

Files. `RUN_DIR/rungs/<key>.e<epochs>.safetensors` is the whole training state of candidate `key` after
`epochs` epochs (`nas.evaluate.trainstate`; safetensors tensors plus a JSON header, no pickle). A state is
written atomically (temp file, fsync, rename) before the rung's log line, and the previous rung's state is
removed only after that line, so at every instant the log and the folder agree: a rung in the log has its
state on disk until the candidate can no longer be promoted, which is when it is removed. The driver seals
each state it writes (its key and a sha256 of header and tensors in its header) and checks a file where it
reads it, without torch (`nas.evaluate.rungfile`, `RungStore`): a regular file in the run's own `rungs/`, of
bounded size, sealed, of that key and those epochs. Then it ships the bytes to the worker (a Ray worker needs no
access to the driver's disk), which loads them with safetensors. A missing or bad state is one warning line,
and the candidate then trains that rung from epoch 0, which gives the same numbers (a result depends only on
genome, seed and epochs), only slower. A `rungs` that is not a folder stops a resume with one line (exit 2),
and the staged files of a write that a kill interrupted are removed on resume (`prepare_folder`).
"""

import logging
import os
import re
import stat
from pathlib import Path

from nas.atomicfile import atomic_write_bytes, move_folder_aside, remove_staged, writing
from nas.errors import UserError, os_reason
from nas.evaluate.result import Result
from nas.evaluate.rungfile import check, seal
from nas.run.fidelity import told_fitness

log = logging.getLogger(__name__)

NAME = re.compile(r"^(?P<key>[0-9a-f]{64})\.e(?P<epochs>\d+)\.safetensors$")


def rung_level(epochs: int | None, rungs: list[int]) -> int:
    """The level of a result's rung; a line of another budget counts as the top (it is never continued)."""
    return rungs.index(epochs) if epochs in rungs else len(rungs) - 1


def told_result(result: Result, rungs: list[int]) -> Result:
    """A copy of `result` whose fitness is `told_fitness` of its rung (failures as they are)."""
    if not result.ok or result.fitness is None:
        return result
    told = Result.from_dict(result.to_dict())
    told.fitness = told_fitness(result.fitness, rung_level(result.epochs, rungs), len(rungs))
    return told


# The largest rung state written or read. The state of the largest network `limits.max_params` allows by default
# (200 M parameters) under AdamW (weights and two moments) is 2.4 GB; a file far larger than that is not a state
# this run wrote (a sparse file, one that grows as it is read), and reading it would take the driver's memory.
MAX_STATE_BYTES = 16 * 2**30


class BadState(Exception):
    """A rung path that holds no usable state; `str(exc)` says why, in a few words after the path."""


def prepare_folder(run_path: Path) -> None:
    """The resume hook of a `search.fidelity` run: `RUN_DIR/rungs` must be a folder of the run itself, and the
    staged files of a state write that a kill interrupted (`rungs/.<key>.e<N>.safetensors.<random>.tmp`) go.

    A `rungs` that is a file, a link (to `/proc`, to another disk) or anything else but a folder is a
    `UserError` naming it (exit 2, one line): no resume could write a state there, and it is not evonas's to
    move, since a link or a file at that name was put there by someone. Nothing is touched in that case."""
    folder = run_path / "rungs"
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"cannot read {folder}: {exc.strerror}; fix its permissions and resume") from None
    if stat.S_ISLNK(mode):
        raise UserError(f"{folder} is a link, not a folder (rung states are kept only inside the run directory); "
                        "move it away and resume")  # fmt: skip
    if not stat.S_ISDIR(mode):
        what = "a file" if stat.S_ISREG(mode) else "a FIFO, a device or a socket"
        raise UserError(f"{folder} is {what}, not a folder; move it away and resume")
    removed = remove_staged(folder, lambda target: NAME.match(target) is not None)
    if removed:
        log.info("removed %d staged rung state file(s) a killed run left in %s", len(removed), folder)


class RungStore:
    """The run's `rungs/` folder: one state file per (candidate, rung) kept.

    Every state is sealed when it is written (`nas.evaluate.rungfile.seal`: the candidate's key and a sha256 of
    the whole file in its header) and checked when it is read (`load`): only a regular file, not a link (the
    name itself is opened with O_NOFOLLOW, inside the folder opened the same way), of at most `max_bytes`, read
    without blocking (a FIFO is never opened for reading), whose checksum, key and epochs are the expected ones.
    A path that fails any check is one warning line naming the path and the reason, and its candidate trains
    that rung again from epoch 0, which gives the numbers the saved state would have (the run's determinism
    rule: a candidate's result depends only on its genome, seed and epochs), only slower.

    A folder at a state's path (no write ever makes one) is set aside the first time the store meets it (a
    load, a write or a removal of that path), with that one warning line: removed when it is empty, else
    renamed beside it to `<name>.moved-<n>` (nothing in it is deleted; `checkpoint.json` does the same), so
    the run goes on as for any other bad state instead of failing on every resume. A FIFO, a link or a
    damaged file at a state's path is removed when the state is no longer needed, or replaced by the next
    write, as a good state is (removing a link removes the link, never what it points to).
    """

    def __init__(self, run_path: Path, max_bytes: int = MAX_STATE_BYTES):
        self.path = run_path / "rungs"
        self.max_bytes = max_bytes

    def file(self, key: str, epochs: int) -> Path:
        return self.path / f"{key}.e{epochs}.safetensors"

    def save(self, key: str, epochs: int, state: bytes) -> None:
        """Seal and write a state atomically; `DiskWriteError` when the disk refuses. A state that cannot be
        sealed (not a rung state of `key` after `epochs`) or is too large is not kept, with a warning: the
        candidate then trains its next rung from epoch 0."""
        path = self.file(key, epochs)
        try:
            sealed = seal(state, key, epochs)
        except ValueError as exc:
            log.warning("the state of %s after %d epochs is not kept (%s); its next rung trains from epoch 0",
                        key[:12], epochs, exc)  # fmt: skip
            return
        if len(sealed) > self.max_bytes:
            log.warning("the state of %s after %d epochs is not kept (%d bytes, over the %d a rung state may have); "
                        "its next rung trains from epoch 0", key[:12], epochs, len(sealed), self.max_bytes)  # fmt: skip
            return
        if self.folder_at(path):
            log.warning("rung state %s %s", path, self.set_aside(path))
        atomic_write_bytes(path, sealed)

    def load(self, key: str, epochs: int) -> bytes | None:
        """The state of `key` after `epochs`, checked; None (with one warning line) when missing or unusable."""
        path = self.file(key, epochs)
        try:
            blob = self.read(path)
            reason = check(blob, key, epochs)
            if reason is not None:
                raise BadState(reason)
        except BadState as exc:
            log.warning("rung state %s %s; that candidate trains again from epoch 0", path, exc)
            return None
        return blob

    def read(self, path: Path) -> bytes:
        """The bytes of the regular file `path` (a name in the folder), or `BadState` saying why not."""
        nofollow = getattr(os, "O_NOFOLLOW", 0)
        try:
            folder = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | nofollow)
        except FileNotFoundError:
            raise BadState("is missing") from None
        except OSError as exc:
            raise BadState(f"is unreadable: {self.path} is not a folder of the run ({exc.strerror})") from None
        try:
            try:
                mode = os.stat(path.name, dir_fd=folder, follow_symlinks=False).st_mode
            except FileNotFoundError:
                raise BadState("is missing") from None
            if stat.S_ISDIR(mode):
                raise BadState(self.set_aside(path))
            if stat.S_ISLNK(mode):
                raise BadState("is a link, not a file (never followed)")
            if not stat.S_ISREG(mode):
                raise BadState("is not a regular file (a FIFO, a device or a socket: never opened)")
            fd = os.open(path.name, os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0), dir_fd=folder)
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):  # swapped since the check above
                    raise BadState("is not a regular file")
                if info.st_size > self.max_bytes:
                    raise BadState(f"is {info.st_size} bytes, over the {self.max_bytes} a rung state may have")
                chunks, size = [], 0
                while size <= self.max_bytes:
                    chunk = os.read(fd, min(1 << 24, self.max_bytes + 1 - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                if size > self.max_bytes:
                    raise BadState(f"grew past the {self.max_bytes} bytes a rung state may have while it was read")
                return b"".join(chunks)
            finally:
                os.close(fd)
        except OSError as exc:
            raise BadState(f"is unreadable ({os_reason(exc)})") from None
        finally:
            os.close(folder)

    @staticmethod
    def folder_at(path: Path) -> bool:
        """Whether `path` is a folder itself (not a link to one)."""
        try:
            return stat.S_ISDIR(os.lstat(path).st_mode)
        except OSError:
            return False

    @staticmethod
    def set_aside(path: Path) -> str:
        """Free a state's path held by a folder (class docstring): removed when empty, else renamed beside it.
        Returns the words for the warning line; `UserError` when neither is possible (exit 2, naming it)."""
        try:
            aside = move_folder_aside(path)
        except OSError as exc:
            raise UserError(f"{path} is a folder, not a rung state, and cannot be moved aside ({exc.strerror}); "
                            "move it away and resume") from None  # fmt: skip
        if aside is None:
            return "was a folder, not a file (an empty one: removed)"
        return f"was a folder, not a file (moved aside to {aside.name})"

    def kept(self) -> dict[str, list[int]]:
        """{key: [epochs of each state on disk]}."""
        out: dict[str, list[int]] = {}
        if self.path.is_dir():
            for p in self.path.iterdir():
                m = NAME.match(p.name)
                if m:
                    out.setdefault(m["key"], []).append(int(m["epochs"]))
        return out

    def discard(self, key: str, below: int | None = None) -> None:
        """Remove the states of `key` (only those of fewer than `below` epochs, when given)."""
        for epochs in self.kept().get(key, []):
            if below is None or epochs < below:
                path = self.file(key, epochs)
                if self.folder_at(path):
                    log.warning("rung state %s %s", path, self.set_aside(path))
                    continue
                with writing(path):
                    path.unlink(missing_ok=True)

    def discard_all_but(self, keys: set[str]) -> None:
        """Remove the states of every candidate not in `keys` (they can no longer be promoted)."""
        for key in self.kept():
            if key not in keys:
                self.discard(key)
