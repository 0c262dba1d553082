"""The search loop of `search.mode: sync` and what every driver mode shares: the `Session` an invocation works
with, the checkpoint it writes (`save_state`) and `Loop`, which `nas.run.async_loop.AsyncLoop` builds on.

ask -> answer repeats from the log (the cache) -> evaluate the misses -> append each result to the log the
moment it arrives -> tell the strategy in ask order -> checkpoint -> log scalars. `nas.run.driver` sets a
session up (new, resumed or restarted) and picks the loop for `search.mode`.
"""

import logging
import time
from dataclasses import dataclass
from typing import Any

from nas.config import Config
from nas.errors import UserError
from nas.evaluate.evaluator import Evaluator
from nas.evaluate.job import Job
from nas.evaluate.objective import Objective
from nas.evaluate.result import Result
from nas.genome.architecture import Architecture, save_architecture
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.run.checkpoint import load_checkpoint, save_checkpoint
from nas.run.dispatch import largest_first
from nas.run.monitor import Monitor
from nas.run.rundir import (
    RunDir,
    input_digests,
)
from nas.run.rungs import SyncRungs
from nas.run.runlog import EvaluationLog, line_rules, rank_key, ranked
from nas.run.signals import SignalGuard
from nas.strategies.strategy import Strategy
from nas.yamlfile import load_yaml_mapping

log = logging.getLogger(__name__)


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


def save_state(session: Session, base: dict[str, Any], evaluations: int = 0, **extra: Any) -> None:
    """The checkpoint; `extra` is what a driver mode keeps of its own (the async loop: its slot count)."""
    save_checkpoint(
        session.run.path,
        {
            "step": session.step,
            "strategy": session.strategy.state_dict(),
            "config_sha256": session.config_sha256,
            "elapsed_seconds": session.elapsed_seconds,
            "stalled_steps": session.stalled_steps,
            "evaluations": evaluations,
            "inputs": session.inputs if session.inputs is not None else input_digests(session.config),
            "seed": session.config.seed,
            "architecture_base": base,
            **extra,
        },
    )


class OutOfTime(Exception):
    """`search.budget.hours` ran out while results were arriving: stop, cancelling what is still in flight."""


class Loop:
    """One invocation's pass over the ask/evaluate/tell cycle, with its budget and its outputs."""

    def __init__(self, session: Session, evaluator: Evaluator | None, limit: int | None, guard: SignalGuard):
        self.s = session
        self.evaluator = evaluator
        self.guard = guard
        self.base = load_checkpoint(session.run.path)["architecture_base"]
        self.log = EvaluationLog(session.run.log, line_rules(session.config))
        best = ranked(iter(self.log))
        self.best: Result | None = best[0] if best else None
        if self.best is not None and self.best_file_key() != self.best.key:
            self.write_best(self.best)  # the run stopped between a new best's log line and its file
        self.new = 0
        self.limit = limit
        budget = session.config.search.budget.evaluations
        failures = sum(1 for r in self.log if not r.ok)
        self.monitor = Monitor(session.run.tensorboard, budget, len(self.log), failures)
        self.started = time.monotonic()
        fidelity = session.config.search.fidelity
        self.rungs = None
        if fidelity is not None:
            self.rungs = SyncRungs(
                session.run.path, fidelity, session.config.fitness.epochs, self.log, lambda r: self.arrived(0, r)
            )

    def remaining(self) -> int | None:
        """New evaluations still allowed (None: no evaluation-count limit)."""
        caps = []
        budget = self.s.config.search.budget.evaluations
        if budget is not None:
            caps.append(budget - len(self.log))
        if self.limit is not None:
            caps.append(self.limit - self.new)
        return max(min(caps), 0) if caps else None

    def elapsed(self) -> float:
        return self.s.elapsed_seconds + time.monotonic() - self.started

    def out_of_time(self) -> bool:
        hours = self.s.config.search.budget.hours
        return hours is not None and self.elapsed() >= hours * 3600

    def promotions_pending(self) -> bool:
        """Under `search.fidelity`, a batch asked before a stop whose candidates are all logged may still owe
        promotions (a kill in the middle of one): that is work of the budget already spent, so the budget does
        not stop it, and resume finishes it exactly as the uninterrupted run would have."""
        if self.rungs is None:
            return False
        # sync: the batch the stopped run asked. A checkpoint is taken between batches, so a resumed strategy
        # holds none: ask() draws it again (the same genomes, the RNG is in the state); in_flight() would not
        pending = self.s.strategy.ask()
        return bool(pending) and all(g.key in self.log for g in pending)

    def finished(self) -> bool:
        budget = self.s.config.search.budget
        if budget.evaluations is not None and len(self.log) >= budget.evaluations:
            return not self.promotions_pending()
        if self.out_of_time():
            return True
        stall = self.s.config.search.stall_batches
        return self.s.strategy.done() or (stall is not None and self.s.stalled_steps >= stall)

    def save_elapsed(self) -> None:
        """Checkpoint the time spent without telling anything (the pending batch is part of the strategy's
        state), so that a resumed run sees the hours budget spent."""
        self.s.elapsed_seconds = self.elapsed()
        self.started = time.monotonic()
        with self.guard.critical():
            save_state(self.s, self.base, len(self.log))

    def arrived(self, index: int, result: Result) -> None:
        """A result arrived: record it, then look at the clock (`search.budget.hours` is checked per result)."""
        self.record(result)
        if self.out_of_time():
            raise OutOfTime

    def record(self, result: Result) -> None:
        """A new result: into the log first (durably), then the best file and the monitor."""
        self.record_many([result])

    def record_many(self, results: list[Result]) -> None:
        """New results that arrived together: into the log first (durably, one fsync), then the best file (once)
        and the monitor."""
        with self.guard.critical():
            for result in results:
                result.step = self.s.step
            new_keys = {r.key for r in results if r.key not in self.log}
            self.log.append(*results)
            self.new += len(new_keys)  # a later rung of a candidate is not a new evaluation
            better = [r for r in results if r.ok and r.fitness is not None]
            top = min(better, key=rank_key, default=None)
            if top is not None and (self.best is None or rank_key(top) < rank_key(self.best)):
                self.best = top
                self.write_best(top)
        for result in results:
            self.monitor.evaluated(result, self.best.fitness if self.best else None)  # the bar shows the run's best

    def write_best(self, result: Result) -> None:
        """`best/architecture.yaml` for `result`, with where it came from."""
        provenance = {"run": self.s.run.path.name, "key": result.key, "fitness": result.fitness,
                      "step": result.step, "params": result.params, "flops": result.flops}  # fmt: skip
        save_architecture(architecture_of(self.base, result.genome, provenance), self.s.run.best_architecture)

    def best_file_key(self) -> str | None:
        """The genome key `best/architecture.yaml` names, None when it is missing or unreadable."""
        try:
            provenance = load_yaml_mapping(self.s.run.best_architecture).get("provenance")
        except (UserError, OSError):
            return None
        return provenance.get("key") if isinstance(provenance, dict) else None

    def evaluate_batch(self, genomes: list[Genome]) -> tuple[bool, int]:
        """Evaluate what the log does not answer: (whole batch done, how many candidates were trained)."""
        assert self.evaluator is not None, "run_batch before the evaluator is connected"
        if self.rungs is not None:
            todo = self.rungs.batch(genomes, self.s.step)
            return self.rungs.run(self.evaluator, genomes, self.s.step, self.remaining()), len(todo)
        misses: dict[str, Genome] = {}
        for g in genomes:
            if g.key not in self.log and g.key not in misses:
                misses[g.key] = g
        remaining = self.remaining()
        todo = list(misses.values())[: remaining if remaining is not None else None]
        fresh: set[str] = set()  # an `oom` of this batch is an answer for this step, though not a finished one

        def arrived(index: int, result: Result) -> None:
            fresh.add(result.key)
            self.arrived(index, result)

        self.evaluator.evaluate([Job(g) for g in largest_first(todo, self.s.objective)], arrived)
        return all(g.key in self.log or g.key in fresh for g in genomes), len(todo)

    def run_batch(self) -> bool:
        """Ask, evaluate, tell one batch. False when the batch was cut short by a limit (and not told)."""
        genomes = self.s.strategy.ask()
        if not genomes:  # the strategy found nothing new to ask: it is done
            if self.s.strategy.exhausted:
                log.warning("the strategy found no genome it has not evaluated: the search has converged")
            return False
        try:
            complete, todo = self.evaluate_batch(genomes)
        except OutOfTime:  # what is still in flight was cancelled; the batch is not told
            complete, todo = False, 0
        if not complete:  # cut short by a budget or --max-evaluations: not told, but its time is the run's
            self.save_elapsed()
            # its line, and a best it found belongs on the curve
            self.monitor.best(self.s.step, self.best.fitness if self.best else None, len(self.log))
            return False
        results = [self.log.results[g.key] for g in genomes]  # a complete batch: the log holds every genome
        told = results if self.rungs is None else [self.rungs.told(r) for r in results]
        self.s.strategy.tell(told)
        self.s.step += 1
        self.s.stalled_steps = 0 if todo else self.s.stalled_steps + 1
        if self.s.stalled_steps == self.s.config.search.stall_batches:
            log.warning(
                "the last %d batches held only genomes already evaluated: the search has converged",
                self.s.stalled_steps,
            )
        self.s.elapsed_seconds = self.elapsed()
        self.started = time.monotonic()
        with self.guard.critical():
            save_state(self.s, self.base, len(self.log))
        repeats = self.s.strategy.repeats
        # the step just told, by its index: numbered from 0, as the log, summary.md and TensorBoard number it; the
        # monitor writes the step's INFO line, this one's detail is for `-v`
        log.debug("step %d: %d asked, %d new, repeats avoided %d, slots left empty %d", self.s.step - 1, len(genomes),
                  todo, repeats.avoided, repeats.unfilled)  # fmt: skip
        self.monitor.step(self.s.step, results, self.best.fitness if self.best else None, len(self.log))
        self.monitor.repeats(self.s.step, repeats.avoided, repeats.unfilled)
        return True

    def run(self) -> None:
        while (not self.finished() and self.remaining() != 0) or self.promotions_pending():
            self.guard.check()
            if not self.run_batch():
                break
        if self.rungs is not None and self.finished():
            self.rungs.store.discard_all_but(set())  # a finished search promotes nothing more

    def close(self) -> None:
        """Close the monitor and the log. A monitor that cannot flush (the disk that stopped the search) is only
        a warning: the scalars are a view, and the error that stopped the search is the one to show."""
        try:
            self.monitor.close(paused=not self.finished())
        except OSError as exc:
            log.warning("could not close the TensorBoard writer: %s", exc)
        self.log.close()
