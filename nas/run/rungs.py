"""`search.fidelity` in the driver: rung states under `RUN_DIR/rungs/` and the sync scheduler of one batch.

Files. `RUN_DIR/rungs/<key>.e<epochs>.safetensors` is the whole training state of candidate `key` after
`epochs` epochs (`nas.evaluate.trainstate`; safetensors tensors plus a JSON header, no pickle). A state is
written atomically (temp file, fsync, rename) before the rung's log line, and the previous rung's state is
removed only after that line, so at every instant the log and the folder agree: a rung in the log has its
state on disk until the candidate can no longer be promoted, which is when it is removed. The driver checks a
file's header (format, key, epochs) without torch and ships the bytes to the worker, which loads them with
safetensors (`nas.evaluate.rungfile`). A missing or damaged state is a warning, and the candidate then trains
that rung from epoch 0, which gives the same numbers on the CPU, only slower.

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
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from nas.atomicfile import atomic_write_bytes, writing
from nas.config import FidelityConfig
from nas.evaluate.evaluator import Evaluator
from nas.evaluate.result import Result
from nas.evaluate.rungfile import read_header
from nas.evaluate.rungjob import RungJob
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


class RungStore:
    """The run's `rungs/` folder: one state file per (candidate, rung) kept."""

    def __init__(self, run_path: Path):
        self.path = run_path / "rungs"

    def file(self, key: str, epochs: int) -> Path:
        return self.path / f"{key}.e{epochs}.safetensors"

    def save(self, key: str, epochs: int, state: bytes) -> None:
        """Write a state atomically; `DiskWriteError` when the disk refuses."""
        atomic_write_bytes(self.file(key, epochs), state)

    def load(self, key: str, epochs: int) -> bytes | None:
        """The state of `key` after `epochs`, checked; None (with a warning) when missing or not that state."""
        path = self.file(key, epochs)
        try:
            blob = path.read_bytes()
        except OSError as exc:
            log.warning("rung state %s unreadable (%s); that candidate trains again from epoch 0", path, exc.strerror)
            return None
        meta = read_header(blob)
        if meta is None or meta.get("epochs_done") != epochs:
            log.warning("rung state %s is damaged; that candidate trains again from epoch 0", path)
            return None
        return blob

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
                with writing(self.file(key, epochs)):
                    self.file(key, epochs).unlink(missing_ok=True)

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
        self.eta = fidelity.eta
        self.store = RungStore(run_path)
        self.log = log
        self.record = record


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
                jobs.append(RungJob(g, epochs, self.store.load(g.key, previous) if previous else None))
        evaluator.evaluate(jobs, lambda index, result: self.arrived(jobs[index], result))

    def arrived(self, job: RungJob, result: Result) -> None:
        """A rung result: its state to disk, then its log line, then the previous state away."""
        result.epochs = job.epochs
        state, result.state = result.state, None
        top = job.epochs == self.rungs[-1]
        if result.ok and state is not None and not top:
            self.store.save(job.key, job.epochs, state)
        self.record(result)
        self.store.discard(job.key, below=job.epochs if result.ok and not top else None)

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

    def next_job(self, genome: Genome) -> RungJob:
        """The job of a candidate in flight: its next rung from its saved state if it continues, else (a new
        candidate, or one whose first rung was lost) the first rung from scratch."""
        level = self.open.get(genome.key)
        if level is None:
            return RungJob(genome, self.rungs[0])
        return RungJob(genome, self.rungs[level + 1], self.store.load(genome.key, self.rungs[level]))

    def arrived(self, job: RungJob, result: Result) -> bool:
        """A rung result: decided, its state to disk when it continues, its log line, then the states it no
        longer needs removed. True when the candidate is settled (the strategy may be told it)."""
        result.epochs = job.epochs
        state, result.state = result.state, None
        # the decision reads only earlier lines, so it is made before this line is written (and made again,
        # the same, from the log on a restart); the state is on disk before a line that says continue
        goes_on = self.decide(result, len(self.log.lines))
        if goes_on and state is not None:
            self.store.save(job.key, job.epochs, state)
        self.record(result)
        self.store.discard(job.key, below=job.epochs if goes_on and state is not None else None)
        return not goes_on

    def settled_result(self, key: str) -> Result:
        """What the strategy is told for a settled candidate: its highest rung reached, ranked by rung then
        accuracy (`told_fitness`); a failure as it is."""
        return told_result(self.log.results[key], self.rungs)

    def finish(self) -> None:
        """The search ended: nothing will be continued any more."""
        self.store.discard_all_but(set())
