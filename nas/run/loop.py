"""The search loop: one event loop for every mode, with a policy (when to ask and tell) and a scheduler (what a
result means when it arrives).

    policy.next_jobs()            ask the strategy (sync: a whole batch once the last one is told; async: enough
                                  genomes to keep every slot busy) and make their jobs (the scheduler)
    evaluator.submit(job)         one ticket a job
    evaluator.wait()              whatever finished, in completion order
    scheduler.arrived(arrivals)   record each result in the log at once (a rung's state on disk first), then
                                  answer: continue (more epochs) or settle
    policy.settled(results)       async: tell each settled result at once, and top up; sync: hold them until the
                                  batch is complete, then tell it in ask order (the barrier)
    policy.after_round()          checkpoint (sync: after every told batch; async: at most once a second)

The policies (`SyncPolicy`, `AsyncPolicy`, in `nas.run.policies`) are handed to the loop by the driver; the
schedulers are in `nas.run.schedulers`; the budget that the loop and the async replay both count with is in
`nas.run.budget`. A step is one tell of the strategy: a batch in sync, a single result in async; log lines,
checkpoints and the TensorBoard axis count the same steps.
`nas.run.driver` sets a session up (new, resumed or restarted) and runs the loop.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from nas.config import Config
from nas.errors import UserError
from nas.evaluate.constraints import genome_cost, infeasible, over_cap
from nas.evaluate.evaluator import Evaluator
from nas.evaluate.job import Job
from nas.evaluate.objective import Objective
from nas.evaluate.result import Result
from nas.genome.architecture import Architecture, save_architecture
from nas.genome.space import SearchSpace
from nas.run.best_weights import drop_weights, save_best_weights
from nas.run.budget import Budget
from nas.run.inheritance import Relatives
from nas.run.monitor import Monitor
from nas.run.pareto_file import write_pareto
from nas.run.rundir import RunDir, input_digests
from nas.run.runlog import EvaluationLog, line_rules, rank_key, ranked
from nas.run.schedulers import AshaScheduler, BatchHalving, Scheduler, WholeTraining
from nas.run.signals import SignalGuard
from nas.run.state import RunState, load_state, save_state_record
from nas.strategies.strategy import Strategy
from nas.yamlfile import load_yaml_mapping

log = logging.getLogger(__name__)

POLL_S = 1.0  # longest wait for a result before the clock and the signals are looked at again


@dataclass
class Session:
    """Everything one invocation of the driver works with."""

    run: RunDir
    config: Config
    space: SearchSpace
    strategy: Strategy
    objective: Objective
    step: int = 0
    elapsed_seconds: float = 0.0
    config_sha256: str = ""
    stalled_steps: int = 0
    inputs: dict[str, Any] | None = None  # the input files' digests (`nas.run.rundir.input_digests`)


def architecture_of(base: dict[str, Any], genome: dict[str, Any], provenance: dict[str, Any]) -> Architecture:
    """A logged genome with the run's fixed parts: the network the log line describes."""
    return Architecture.from_dict({"format": "nas-architecture/1", **base, **genome, "provenance": provenance})


def save_state(session: Session, base: dict[str, Any], evaluations: int = 0, **policy_fields: Any) -> None:
    """The checkpoint (`nas.run.state.RunState`); `policy_fields` are what the async policy keeps of its own."""
    state = RunState(
        strategy=session.strategy.state_dict(),
        architecture_base=base,
        config_sha256=session.config_sha256,
        seed=session.config.seed,
        step=session.step,
        elapsed_seconds=session.elapsed_seconds,
        stalled_steps=session.stalled_steps,
        evaluations=evaluations,
        inputs=session.inputs if session.inputs is not None else input_digests(session.config),
        **policy_fields,
    )
    save_state_record(session.run.path, state)


class Policy(Protocol):
    """When the strategy is asked and told (`nas.run.policies`)."""

    def start(self) -> None: ...

    def next_jobs(self) -> list[Job]: ...

    def settled(self, results: list[Result]) -> None: ...

    def after_round(self) -> None: ...

    def out_of_time(self) -> None: ...

    def stop(self) -> None: ...

    def owes_work(self) -> bool: ...


class SearchLoop:
    """One invocation's pass over submit / wait / record / tell / checkpoint, with its budget and its outputs."""

    def __init__(
        self,
        session: Session,
        policy: "Callable[[SearchLoop], Policy]",
        limit: int | None,
        guard: SignalGuard,
        evaluator: Evaluator | None = None,
    ):
        self.s = session
        self.evaluator = evaluator
        self.guard = guard
        self.state = load_state(session.run.path, session.config.seed)
        self.base = self.state.architecture_base
        self.log = EvaluationLog(session.run.log, line_rules(session.config))
        best = ranked(iter(self.log))
        self.best: Result | None = best[0] if best else None
        if self.best is not None and self.best_file_key() != self.best.key:
            self.write_best(self.best)  # the run stopped between a new best's log line and its file
        budget = session.config.search.budget
        self.budget = Budget(budget.evaluations, budget.hours, limit, session.elapsed_seconds)
        failures = sum(1 for r in self.log if not r.ok)
        self.monitor = Monitor(session.run.tensorboard, budget.evaluations, len(self.log), failures)
        self.scheduler = make_scheduler(session, self.log, self.record_many)
        self.submitted: dict[int, Job] = {}  # ticket -> the job the evaluator holds
        self.constraints = session.config.search.constraints
        self.answered: list[tuple[Job, Result]] = []  # jobs answered without training (over a cost cap)
        self.front = ParetoFile(session)
        self.policy = policy(self)

    @property
    def new(self) -> int:
        """New evaluations of this invocation."""
        return self.budget.new

    def remaining(self) -> int | None:
        """New evaluations still allowed (None: no evaluation-count limit)."""
        return self.budget.remaining(len(self.log))

    def finished(self) -> bool:
        """The search has nothing left to do: out of time, or its budget spent (and no candidate it counted is
        owed more training), or the strategy done or stalled with nothing open."""
        if self.budget.out_of_time():
            return True
        if self.budget.spent(len(self.log)):
            return not self.policy.owes_work()
        stall = self.s.config.search.stall_batches
        stalled = stall is not None and self.s.stalled_steps >= stall
        return (self.s.strategy.done() or stalled) and not self.scheduler.open()

    def save(self, **extra: Any) -> None:
        """The checkpoint, with the time spent so far; `extra` is what the policy keeps of its own."""
        self.s.elapsed_seconds = self.budget.elapsed()
        with self.guard.critical():
            save_state(self.s, self.base, len(self.log), **extra)

    def record_many(self, results: list[Result]) -> None:
        """New results that arrived together: into the log first (durably, one fsync), then the best file (once)
        and the monitor."""
        with self.guard.critical():
            for result in results:
                result.step = self.s.step
            new_keys = {r.key for r in results if r.key not in self.log}
            self.log.append(*results)
            self.budget.new += len(new_keys)  # a later rung of a candidate is not a new evaluation
            better = [r for r in results if r.ok and r.fitness is not None]
            top = min(better, key=rank_key, default=None)
            if top is not None and (self.best is None or rank_key(top) < rank_key(self.best)):
                self.best = top
                self.write_best(top)
            drop_weights(results)  # the best's are on disk; the log's index keeps every result
            moved = self.front.update(self.log)
        for result in results:
            self.monitor.evaluated(result, self.best_fitness())  # the bar shows the run's best
        if moved and self.front.hypervolume is not None:
            self.monitor.hypervolume(self.front.hypervolume, len(self.log))

    def best_fitness(self) -> float | None:
        return self.best.fitness if self.best else None

    def write_best(self, result: Result) -> None:
        """`best/architecture.yaml` for `result`, with where it came from."""
        provenance = {"run": self.s.run.path.name, "key": result.key, "fitness": result.fitness,
                      "step": result.step, "params": result.params, "flops": result.flops}  # fmt: skip
        save_architecture(architecture_of(self.base, result.genome, provenance), self.s.run.best_architecture)
        save_best_weights(self.s.run, result)

    def best_file_key(self) -> str | None:
        """The genome key `best/architecture.yaml` names, None when it is missing or unreadable."""
        try:
            provenance = load_yaml_mapping(self.s.run.best_architecture).get("provenance")
        except (UserError, OSError):
            return None
        return provenance.get("key") if isinstance(provenance, dict) else None

    # --- the event loop ---------------------------------------------------------------------------------------

    def run(self) -> None:
        assert self.evaluator is not None, "the loop runs only once its evaluator is connected"
        self.policy.start()
        while True:
            self.guard.check()
            self.submit_round()
            if self.answered:
                self.receive([])  # the answers without training first: nothing waits for them
            elif self.evaluator.outstanding():
                self.receive(self.evaluator.wait(timeout=POLL_S))
            else:
                break
            if self.budget.out_of_time():
                self.evaluator.cancel()
                self.submitted.clear()
                self.policy.out_of_time()
                break
            self.policy.after_round()
        self.policy.stop()

    def submit_round(self) -> None:
        """Submit the jobs the policy has for the evaluator now."""
        assert self.evaluator is not None
        for job in self.policy.next_jobs():
            self.submit(job)

    def submit(self, job: Job) -> None:
        """Hand `job` to the evaluator; a candidate over a cost cap is answered at once instead, never trained."""
        assert self.evaluator is not None
        answer = infeasible(self.s.objective, job.genome, self.constraints) if job.state is None else None
        if answer is not None:
            self.answered.append((job, answer))
            return
        self.submitted[self.evaluator.submit(job)] = job

    def receive(self, finished: list[tuple[int, Result]]) -> None:
        """Results arrived: the scheduler records them and decides; what continues is submitted at once, what
        settled goes to the policy, in settling order."""
        arrivals, self.answered = self.answered, []
        for ticket, result in finished:
            job = self.submitted.pop(ticket)
            if job.key != result.key:
                raise RuntimeError(f"ticket {ticket} came back with {result.key[:12]}, not {job.key[:12]}")
            arrivals.append((job, over_cap(result, self.constraints)))
        if not arrivals:
            return
        verdict = self.scheduler.arrived(arrivals)
        for job in verdict.continued:
            self.submit(job)
        self.policy.settled([self.scheduler.told(key) for key in verdict.settled])

    def close(self) -> None:
        """Close the monitor and the log. A monitor that cannot flush (the disk that stopped the search) is only
        a warning: the scalars are a view, and the error that stopped the search is the one to show."""
        try:
            self.monitor.close(paused=not self.finished())
        except OSError as exc:
            log.warning("could not close the TensorBoard writer: %s", exc)
        self.log.close()


class ParetoFile:
    """`RUN_DIR/pareto.json` of a search with several objectives (`nas.run.pareto_file`), kept as results
    arrive; nothing for one objective. When every cost is analytic (params, FLOPs) the front's normalised
    hypervolume is taken against the costs of the space's largest network, and `hypervolume` holds it (None
    otherwise, or before the first result)."""

    def __init__(self, session: Session):
        self.path = session.run.path
        self.objectives = session.config.search.objectives or ["fitness"]
        self.largest: list[float] | None = None
        costs = self.objectives[1:]
        if costs and all(name in ("params", "flops") for name in costs):
            largest = genome_cost(session.objective, session.space.largest_genome())
            self.largest = [float(largest[name]) for name in costs]
        self.hypervolume: float | None = None
        self.written: dict[str, Any] | None = None  # the document last written: the file is rewritten on change

    def update(self, log: EvaluationLog) -> bool:
        """Rewrite the file from the log if its front changed; True when the hypervolume changed (a new value
        for TensorBoard)."""
        document = self.written = write_pareto(self.path, log, self.objectives, self.largest, self.written)
        value = document.get("hypervolume") if document is not None else None
        moved, self.hypervolume = value != self.hypervolume, value
        return moved


def make_scheduler(session: Session, log: EvaluationLog, record: Any) -> Scheduler:
    """The scheduler of the session's config: whole trainings, or the fidelity scheduler of its mode."""
    fidelity = session.config.search.fidelity
    if fidelity is None:
        return WholeTraining(log, record, session.objective, make_relatives(session, log))
    kind = AshaScheduler if session.config.search.mode == "async" else BatchHalving
    search = session.config.search
    return kind(session.run.path, fidelity, session.config.fitness.epochs, log, record, search.objectives)


def make_relatives(session: Session, log: EvaluationLog) -> Relatives | None:
    """The parent chooser of `search.inherit` (`nas.run.inheritance`), its folder cleared of staged writes that a
    kill interrupted; None without it."""
    inherit = session.config.search.inherit
    if inherit is None:
        return None
    relatives = Relatives(session.run.path, inherit, log)
    relatives.store.remove_staged()
    return relatives
