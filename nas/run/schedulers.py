"""Schedulers: what happens to a candidate's result when it arrives, the one place fidelity lives.

The search loop (`nas.run.loop`) submits the jobs a scheduler makes and hands every arrival to it. The scheduler
records the result in the log (with whatever must be on disk before the line: a rung's training state) and
answers, for each candidate, continue (a job for more epochs, now or when its rung is complete) or settle (the
strategy may be told it: `told` gives the result it is told). The loop has no fidelity branches:

- `WholeTraining` (no `search.fidelity`): every job is a whole evaluation, settled on arrival. Under
  `search.inherit` it chooses each new candidate's parent when it makes the job and writes each result's weights
  under `RUN_DIR/weights/` before its log line (`nas.run.inheritance`).
- `BatchHalving` (`sync` with `search.fidelity`): successive halving of one batch: every new candidate trains the
  first rung; once the whole batch has it, the best of the rung (`nas.run.fidelity.promote`) continue from their
  states to the next rung, and so on to `fitness.epochs`; the batch settles when its last rung is complete. A
  candidate belongs to the batch when the log does not know it, or knows it only from this same step (a batch
  in flight when the run stopped: the resumed strategy re-asks it, the log answers the rungs already done and the
  same promotions are recomputed from them, so a resumed promotion continues from the saved states and nothing
  is trained twice). Candidates the log knows from an earlier step are cache hits at the highest rung they
  reached. A batch cut short by the budget trains its first rung only, without promoting, and is not told.
- `AshaScheduler` (`async` with `search.fidelity`): ASHA in its stopping form (`nas.run.fidelity.Asha`): each
  rung result is decided the moment it arrives. A candidate occupies one slot from its first rung to its last;
  while it continues it stays in flight for the strategy, and `start` gives its next rung from its saved state.
  Its decisions are rebuilt from the log's lines in file order whenever it is built (never checkpointed), so a
  resumed run makes the same ones, and a continuation lost in a crash (a line that says continue, and no line of
  its next rung) is started again from its saved state, training nothing twice. `settled` lists (line index,
  key) of every settled candidate in the order it was settled, which is the order the strategy was told them.

Several objectives (`search.objectives`): both fidelity schedulers rank a rung by front and crowding of its
results' objective vectors (`nas.run.fidelity.promote_pareto`, `ParetoAsha`) instead of by accuracy alone.

Signals (`search.fidelity.signal`, `nas.run.fidelity`): both rank a rung by `rank_value` (`rank_vector` with
several objectives), read from the rung's log line, so a resumed run ranks as the first did. Under `restart` a
rung job trains a complete schedule of the rung's own epochs from scratch: no rung state is written or read.

Batch and stream. The sync policy hands a scheduler a whole batch (`batch`) and tells the strategy once
`batch_done`; the async policy hands it the genomes in flight that no slot holds (`start`). `WholeTraining`
serves both; each fidelity scheduler serves the policy it was made for.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nas.config import FidelityConfig
from nas.evaluate.job import Job
from nas.evaluate.objective import Objective
from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.run.dispatch import largest_first
from nas.run.fidelity import (
    Asha,
    ParetoAsha,
    carries_state,
    promote,
    promote_pareto,
    rank_value,
    rank_vector,
    rung_epochs,
)
from nas.run.inheritance import Relatives
from nas.run.rungs import RungStore, rung_level, told_result
from nas.run.runlog import EvaluationLog
from nas.strategies import pareto

Record = Callable[[list[Result]], None]


@dataclass
class Verdict:
    """A scheduler's answer to arrivals: jobs to submit now, and the candidates settled, in settling order."""

    continued: list[Job] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)


@dataclass
class BatchStart:
    """A batch handed to a scheduler: the jobs to submit first, how many candidates it trains, and whether the
    budget cut it (a cut batch is trained as far as allowed and never told)."""

    jobs: list[Job]
    trained: int
    cut: bool


class Scheduler(Protocol):
    """What the search loop and its policies ask of a scheduler (module docstring)."""

    log: EvaluationLog
    queues_new: bool  # new candidates may queue beyond the free slots (False: one holds a slot to its last rung)

    def batch(self, genomes: Sequence[Genome], step: int, remaining: int | None) -> BatchStart: ...

    def batch_done(self) -> bool: ...

    def start(self, genomes: Sequence[Genome]) -> list[Job]: ...

    def arrived(self, arrivals: list[tuple[Job, Result]]) -> Verdict: ...

    def told(self, key: str) -> Result: ...

    def split_told(self, position: int, line_position: int) -> tuple[list[str], list[str]]: ...

    def open(self) -> set[str]: ...

    def finish(self) -> None: ...


class WholeTraining:
    """No fidelity: a job trains a candidate for the whole budget and its result settles it."""

    queues_new = True

    def __init__(self, log: EvaluationLog, record: Record, objective: Objective, relatives: Relatives | None = None):
        self.log = log
        self.record = record
        self.objective = objective
        self.relatives = relatives  # `search.inherit`: who a new candidate inherits from (`nas.run.inheritance`)
        self.before_step: int | None = None  # sync: the step of the batch, whose parents were logged before it
        self.pending: set[str] = set()

    def batch(self, genomes: Sequence[Genome], step: int, remaining: int | None) -> BatchStart:
        """What the log does not answer, up to `remaining` of it, largest first (they are told in ask order)."""
        misses = list({g.key: g for g in genomes if g.key not in self.log}.values())
        todo = misses[:remaining] if remaining is not None else misses
        self.pending = {g.key for g in todo}
        self.before_step = step
        return BatchStart(self.start(largest_first(todo, self.objective)), len(todo), len(todo) < len(misses))

    def batch_done(self) -> bool:
        return not self.pending

    def start(self, genomes: Sequence[Genome]) -> list[Job]:
        """A whole evaluation of each genome; under `search.inherit` from its parent, when it has one."""
        if self.relatives is None:
            return [Job(g) for g in genomes]
        parents = self.relatives.parents(genomes, self.before_step)
        return [Job(g, parent=parent) for g, parent in zip(genomes, parents, strict=True)]

    def arrived(self, arrivals: list[tuple[Job, Result]]) -> Verdict:
        """Record the results together (one fsync), each settles its candidate; under `search.inherit` their
        weights are on disk first."""
        results = [result for _, result in arrivals]
        if self.relatives is not None:
            self.relatives.keep(results)
        self.record(results)
        self.pending -= {r.key for r in results}  # an `oom` answers this batch, though it finished nothing
        return Verdict(settled=[r.key for r in results])

    def told(self, key: str) -> Result:
        return self.log.results[key]

    def split_told(self, position: int, line_position: int) -> tuple[list[str], list[str]]:
        """The settled keys told before an async checkpoint (the first `position` of the log) and after it."""
        return self.log.order[:position], self.log.order[position:]

    def open(self) -> set[str]:
        return set()

    def finish(self) -> None:
        """Nothing is kept between jobs."""


class Rungs:
    """What both fidelity schedulers hold: the rung epochs, the run's rung states, its log, how a result is
    recorded."""

    queues_new = False

    def __init__(
        self,
        run_path: Path,
        fidelity: FidelityConfig,
        full_epochs: int,
        log: EvaluationLog,
        record: Record,
        objectives: Sequence[str] | None = None,
    ):
        self.rungs = rung_epochs(fidelity.min_epochs, fidelity.eta, full_epochs)
        self.full_epochs = full_epochs
        self.eta = fidelity.eta
        self.store = RungStore(run_path)
        self.log = log
        self.record = record
        self.objectives = tuple(objectives or ("fitness",))
        self.signal = fidelity.signal

    @property
    def several(self) -> bool:
        """Whether rungs rank by front and crowding (several objectives) rather than by accuracy."""
        return len(self.objectives) > 1

    def vector(self, result: Result | None) -> pareto.Vector | None:
        """A rung result's objective vector (minimisation form, the signal in place of the accuracy); None for a
        missing or failed one."""
        return rank_vector(result, self.objectives, self.signal)

    def value(self, result: Result | None) -> float | None:
        """What a rung result is ranked by with one objective; None for one that cannot go on."""
        return rank_value(result, self.signal)

    def job(self, genome: Genome, epochs: int, state: bytes | None = None) -> Job:
        """The job that trains `genome` to rung `epochs`, from `state` (None: epoch 0): epoch `epochs` of this
        run's full schedule, or under `restart` a complete schedule of `epochs` epochs from scratch."""
        if not carries_state(self.signal):
            return Job(genome, epochs=epochs, full_epochs=epochs)
        return Job(genome, epochs=epochs, full_epochs=self.full_epochs, state=state)

    def state_below(self, key: str, epochs: int) -> bytes | None:
        """The saved state a rung continues from, after `epochs`; None under `restart`, which keeps none."""
        return self.store.load(key, epochs) if carries_state(self.signal) else None

    @staticmethod
    def epochs_of(job: Job) -> int:
        """The rung `job` trains: every job a scheduler makes is a rung (`job`), never a whole evaluation."""
        if job.epochs is None:
            raise ValueError(f"{job.key[:12]} came back as a whole evaluation, not as a rung")
        return job.epochs

    def told(self, key: str) -> Result:
        """What the strategy is told for a settled candidate: its highest rung reached, ranked by rung then
        accuracy (`told_fitness`); a failure as it is."""
        return told_result(self.log.results[key], self.rungs)

    def finish(self) -> None:
        """The search ended: nothing will be continued any more, the states go."""
        self.store.discard_all_but(set())

    def write(self, job: Job, result: Result, keep: bool) -> None:
        """A rung result: its state to disk when it is `keep`t, then its log line, then the states its candidate
        no longer needs removed (so a rung in the log has its state on disk while it may be continued)."""
        epochs = self.epochs_of(job)
        result.epochs = epochs
        state, result.state = result.state, None
        keep = keep and result.ok and state is not None and carries_state(self.signal)
        if keep:
            assert state is not None
            self.store.save(job.key, epochs, state)
        self.record([result])
        self.store.discard(job.key, below=epochs if keep else None)


class BatchHalving(Rungs):
    """Successive halving of one sync batch at a time (module docstring)."""

    def __init__(self, run_path: Path, fidelity: FidelityConfig, full_epochs: int, log: EvaluationLog, record: Record,
                 objectives: Sequence[str] | None = None):  # fmt: skip
        super().__init__(run_path, fidelity, full_epochs, log, record, objectives)
        self.alive: list[Genome] = []
        self.level = 0
        self.last_level = 0  # the level the batch stops at: the top, or the first rung of a cut batch
        self.pending: set[str] = set()

    def members(self, genomes: Sequence[Genome], step: int) -> list[Genome]:
        """The batch's candidates to train: distinct, in ask order, unknown to the log or known from `step`."""
        out: dict[str, Genome] = {}
        for g in genomes:
            known = self.log.get(g.key)
            if g.key not in out and (known is None or known.step == step):
                out[g.key] = g
        return list(out.values())

    def batch(self, genomes: Sequence[Genome], step: int, remaining: int | None) -> BatchStart:
        members = self.members(genomes, step)
        self.store.discard_all_but({g.key for g in members})  # states of told batches: never promoted again
        new = [g for g in members if g.key not in self.log]
        cut = remaining is not None and len(new) > remaining
        self.alive = members
        if cut:
            allowed = {g.key for g in new[:remaining]}
            self.alive = [g for g in members if g.key in allowed or g.key in self.log]
        self.level, self.last_level = 0, 0 if cut else len(self.rungs) - 1
        return BatchStart(self.advance(), len(members), cut)

    def batch_done(self) -> bool:
        return not self.pending and self.level == self.last_level

    def advance(self) -> list[Job]:
        """The jobs of the first level with candidates that lack its rung, promoting through complete levels."""
        while True:
            jobs = self.level_jobs()
            if jobs or self.level == self.last_level:
                if not jobs and self.last_level == len(self.rungs) - 1:
                    for g in self.alive:
                        self.store.discard(g.key)
                self.pending = {job.key for job in jobs}
                return jobs
            self.promote()

    def level_jobs(self) -> list[Job]:
        """Each alive candidate that has not reached this level's rung, from its previous rung's state."""
        epochs = self.rungs[self.level]
        previous = self.rungs[self.level - 1] if self.level else None
        return [self.job(g, epochs, self.state_below(g.key, previous) if previous else None)
                for g in self.alive if self.log.at(g.key, epochs) is None]  # fmt: skip

    def promote(self) -> None:
        """The best of the complete level go on to the next; the states of the rest go."""
        results = [self.log.at(g.key, self.rungs[self.level]) for g in self.alive]
        if self.several:
            chosen = set(promote_pareto([self.vector(r) for r in results], self.eta))
        else:
            chosen = set(promote([self.value(r) for r in results], self.eta))
        for i, g in enumerate(self.alive):
            if i not in chosen:
                self.store.discard(g.key)
        self.alive = [self.alive[i] for i in sorted(chosen)]
        self.level += 1

    def start(self, genomes: Sequence[Genome]) -> list[Job]:
        raise TypeError("batch successive halving runs whole batches (search.mode: sync)")

    def split_told(self, position: int, line_position: int) -> tuple[list[str], list[str]]:
        raise TypeError("a sync search checkpoints after every tell: there is nothing to replay")

    def arrived(self, arrivals: list[tuple[Job, Result]]) -> Verdict:
        """Each rung result written; once the level is complete, the next level's jobs (or the batch settles)."""
        for job, result in arrivals:
            self.write(job, result, keep=self.epochs_of(job) != self.rungs[-1])
            self.pending.discard(job.key)
        if self.pending:
            return Verdict()
        continued = self.advance()
        if continued:
            return Verdict(continued=continued)
        return Verdict(settled=[g.key for g in self.alive]) if self.batch_done() else Verdict()

    def open(self) -> set[str]:
        return set()


class AshaScheduler(Rungs):
    """ASHA for the async policy (module docstring)."""

    def __init__(self, run_path: Path, fidelity: FidelityConfig, full_epochs: int, log: EvaluationLog, record: Record,
                 objectives: Sequence[str] | None = None):  # fmt: skip
        super().__init__(run_path, fidelity, full_epochs, log, record, objectives)
        self.asha = Asha(len(self.rungs), fidelity.eta)
        self.pareto_asha = ParetoAsha(len(self.rungs), fidelity.eta)
        self.continuing: dict[str, int] = {}  # key -> the level of its last rung (it continues to the next)
        self.settled: list[tuple[int, str]] = []
        for index, result in enumerate(log.lines):
            self.decide(result, index)
        self.store.discard_all_but(set(self.continuing))  # the settled are never continued again

    def decide(self, result: Result, index: int) -> bool:
        """ASHA's decision for one rung line (logged as line `index`); True when its candidate continues."""
        level = rung_level(result.epochs, self.rungs)
        if self.several:
            goes_on = self.pareto_asha.decide(level, self.vector(result))
        else:
            goes_on = self.asha.decide(level, self.value(result))
        if goes_on:
            self.continuing[result.key] = level
        else:
            self.continuing.pop(result.key, None)
            self.settled.append((index, result.key))
        return goes_on

    def batch(self, genomes: Sequence[Genome], step: int, remaining: int | None) -> BatchStart:
        raise TypeError("ASHA decides each result as it arrives (search.mode: async)")

    def batch_done(self) -> bool:
        return True

    def split_told(self, position: int, line_position: int) -> tuple[list[str], list[str]]:
        """The settled keys told before an async checkpoint (settled by one of its first `line_position` log
        lines) and after it, each in settling order."""
        before = [key for index, key in self.settled if index < line_position]
        return before, [key for index, key in self.settled if index >= line_position]

    def start(self, genomes: Sequence[Genome]) -> list[Job]:
        """The job of each candidate in flight: its next rung from its saved state if it continues, else (a new
        candidate, or one whose first rung was lost) the first rung from scratch."""
        return [self.next_job(g) for g in genomes]

    def next_job(self, genome: Genome) -> Job:
        level = self.continuing.get(genome.key)
        if level is None:
            return self.job(genome, self.rungs[0])
        return self.job(genome, self.rungs[level + 1], self.state_below(genome.key, self.rungs[level]))

    def arrived(self, arrivals: list[tuple[Job, Result]]) -> Verdict:
        """Each rung result decided, then written (the decision reads only earlier lines, so it is made before
        this line is written, and made again, the same, from the log on a restart); the settled ones in order."""
        settled = []
        for job, result in arrivals:
            self.epochs_of(job)
            result.epochs = job.epochs
            goes_on = self.decide(result, len(self.log.lines))
            self.write(job, result, keep=goes_on)
            if not goes_on:
                settled.append(job.key)
        return Verdict(settled=settled)

    def open(self) -> set[str]:
        return set(self.continuing)
