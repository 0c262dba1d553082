"""`search.fidelity` in the driver: rung states under `RUN_DIR/rungs/` and the sync scheduler of one batch.

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

Sync (`SyncRungs`). One batch of a `sync` search goes through successive halving: every new candidate trains
the first rung; when the whole batch has it, the best of the rung (`nas.run.fidelity.promote`) continue from
their states to the next rung, and so on to `fitness.epochs`. Every rung result is logged the moment it arrives.
A candidate is new to the batch when the log does not know it, or knows it only from this same step (a batch
that was in flight when the run stopped: the resumed strategy re-asks it, the log answers the rungs already
done and the scheduler recomputes the same promotions from them, so a resumed promotion continues from the
saved states and nothing is trained twice). Candidates the log knows from an earlier step are cache hits at the
highest rung they reached. A batch cut short by the budget trains its first rung only, without promoting, and
is not told (the driver's rule for any cut batch), so the resumed run promotes over the whole batch.

Async (`AsyncRungs`): ASHA for `search.mode: async`, built on the evaluators' submit/wait; see its docstring
and `nas.run.async_loop`, which drives it.
"""

import logging
import os
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from nas.atomicfile import atomic_write_bytes, move_folder_aside, remove_staged, writing
from nas.config import FidelityConfig
from nas.errors import UserError, os_reason
from nas.evaluate.evaluator import Evaluator
from nas.evaluate.job import Job
from nas.evaluate.result import Result
from nas.evaluate.rungfile import check, seal
from nas.genome.genome import Genome
from nas.run.fidelity import Asha, promote, rung_epochs, told_fitness
from nas.run.runlog import EvaluationLog

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


class Rungs:
    """What both schedulers hold: the rung epochs, the run's rung states, its log and how a result is recorded."""

    def __init__(
        self,
        run_path: Path,
        fidelity: FidelityConfig,
        full_epochs: int,
        log: EvaluationLog,
        record: Callable[[Result], None],
    ):
        self.rungs = rung_epochs(fidelity.min_epochs, fidelity.eta, full_epochs)
        self.full_epochs = full_epochs
        self.eta = fidelity.eta
        self.store = RungStore(run_path)
        self.log = log
        self.record = record

    def job(self, genome: Genome, epochs: int, state: bytes | None = None) -> Job:
        """The job that trains `genome` to rung `epochs` of this run's schedule, from `state` (None: epoch 0)."""
        return Job(genome, epochs=epochs, full_epochs=self.full_epochs, state=state)

    @staticmethod
    def epochs_of(job: Job) -> int:
        """The rung `job` trains: every job a scheduler makes is a rung (`job`), never a whole evaluation."""
        if job.epochs is None:
            raise ValueError(f"{job.key[:12]} came back as a whole evaluation, not as a rung")
        return job.epochs


class SyncRungs(Rungs):
    """Successive halving of one batch at a time (see the module docstring); the driver calls `run`."""

    def batch(self, genomes: Sequence[Genome], step: int) -> list[Genome]:
        """The batch's candidates to train: distinct, in ask order, unknown to the log or known from `step`."""
        out: dict[str, Genome] = {}
        for g in genomes:
            known = self.log.get(g.key)
            if g.key not in out and (known is None or known.step == step):
                out[g.key] = g
        return list(out.values())

    def run(self, evaluator: Evaluator, genomes: Sequence[Genome], step: int, remaining: int | None) -> bool:
        """Train the batch through its rungs; False when `remaining` new candidates cut it short (not told)."""
        batch = self.batch(genomes, step)
        self.store.discard_all_but({g.key for g in batch})  # states of told batches: never promoted again
        new = [g for g in batch if g.key not in self.log]
        if remaining is not None and len(new) > remaining:
            allowed = {g.key for g in new[:remaining]}
            self.train(evaluator, [g for g in batch if g.key in allowed or g.key in self.log], 0)
            return False
        alive = batch
        for level in range(len(self.rungs)):
            self.train(evaluator, alive, level)
            if level == len(self.rungs) - 1:
                break
            results = [self.log.at(g.key, self.rungs[level]) for g in alive]
            chosen = set(promote([r.fitness if r is not None and r.ok else None for r in results], self.eta))
            for i, g in enumerate(alive):
                if i not in chosen:
                    self.store.discard(g.key)
            alive = [alive[i] for i in sorted(chosen)]
        for g in alive:
            self.store.discard(g.key)
        return True

    def train(self, evaluator: Evaluator, candidates: Sequence[Genome], level: int) -> None:
        """Train each candidate that has not reached rung `level` yet, from its previous rung's state."""
        epochs = self.rungs[level]
        jobs = []
        for g in candidates:
            if self.log.at(g.key, epochs) is None:
                previous = self.rungs[level - 1] if level else None
                state = self.store.load(g.key, previous) if previous else None
                jobs.append(self.job(g, epochs, state))
        evaluator.evaluate(jobs, lambda index, result: self.arrived(jobs[index], result))

    def arrived(self, job: Job, result: Result) -> None:
        """A rung result: its state to disk, then its log line, then the previous state away."""
        epochs = self.epochs_of(job)
        result.epochs = epochs
        state, result.state = result.state, None
        top = epochs == self.rungs[-1]
        if result.ok and state is not None and not top:
            self.store.save(job.key, epochs, state)
        self.record(result)
        self.store.discard(job.key, below=epochs if result.ok and not top else None)

    def told(self, result: Result) -> Result:
        """The result a strategy is told: fitness ranked by rung, then accuracy (`told_fitness`)."""
        return told_result(result, self.rungs)


class AsyncRungs(Rungs):
    """ASHA (stopping form, `nas.run.fidelity.Asha`) for the async driver, over a submit/wait evaluator.

    A candidate occupies one slot from its first rung to its last: when a rung result arrives, `arrived`
    decides at once whether the candidate continues (its state to disk, and `next_job` is its next rung from
    that state) or is settled (stopped, failed, or at the top: its states are removed, and the strategy is told
    its highest rung). `open` holds the candidates that continue: logged, not settled, still in flight for the
    strategy. Everything is rebuilt from the log's lines in file order on construction (never checkpointed):
    the decisions are a function of that order, so a resumed run makes the same ones, and a continuation in
    flight when the run stopped (a line that says continue, and no line of its next rung) is submitted again
    from its saved state, training nothing twice. `settled` lists (line index, key) of every settled
    candidate in the order it was settled, which is the order the strategy was told them.
    """

    def __init__(
        self,
        run_path: Path,
        fidelity: FidelityConfig,
        full_epochs: int,
        log: EvaluationLog,
        record: Callable[[Result], None],
    ):
        super().__init__(run_path, fidelity, full_epochs, log, record)
        self.asha = Asha(len(self.rungs), fidelity.eta)
        self.open: dict[str, int] = {}  # key -> the level of its last rung (it continues to the next)
        self.settled: list[tuple[int, str]] = []
        for index, result in enumerate(log.lines):
            self.decide(result, index)
        self.store.discard_all_but(set(self.open))  # the settled are never continued again

    def decide(self, result: Result, index: int) -> bool:
        """ASHA's decision for one rung line (logged as line `index`); True when its candidate continues."""
        level = rung_level(result.epochs, self.rungs)
        goes_on = self.asha.decide(level, result.fitness if result.ok else None)
        if goes_on:
            self.open[result.key] = level
        else:
            self.open.pop(result.key, None)
            self.settled.append((index, result.key))
        return goes_on

    def next_job(self, genome: Genome) -> Job:
        """The job of a candidate in flight: its next rung from its saved state if it continues, else (a new
        candidate, or one whose first rung was lost) the first rung from scratch."""
        level = self.open.get(genome.key)
        if level is None:
            return self.job(genome, self.rungs[0])
        return self.job(genome, self.rungs[level + 1], self.store.load(genome.key, self.rungs[level]))

    def arrived(self, job: Job, result: Result) -> bool:
        """A rung result: decided, its state to disk when it continues, its log line, then the states it no
        longer needs removed. True when the candidate is settled (the strategy may be told it)."""
        epochs = self.epochs_of(job)
        result.epochs = epochs
        state, result.state = result.state, None
        # the decision reads only earlier lines, so it is made before this line is written (and made again,
        # the same, from the log on a restart); the state is on disk before a line that says continue
        goes_on = self.decide(result, len(self.log.lines))
        if goes_on and state is not None:
            self.store.save(job.key, epochs, state)
        self.record(result)
        self.store.discard(job.key, below=epochs if goes_on and state is not None else None)
        return not goes_on

    def settled_result(self, key: str) -> Result:
        """What the strategy is told for a settled candidate: its highest rung reached, ranked by rung then
        accuracy (`told_fitness`); a failure as it is."""
        return told_result(self.log.results[key], self.rungs)

    def finish(self) -> None:
        """The search ended: nothing will be continued any more."""
        self.store.discard_all_but(set())
