"""The async driver (`search.mode: async`): every slot stays busy, each result is told the moment it arrives.

One round of the loop, in this order (the order is what makes it crash-safe):

    wait for any finished candidate(s)                      evaluator.wait
    for each, in completion order:
        record: append to the log (fsync), best file        Loop.record        <- a finished result is safe
        tell the strategy that one result                   strategy.tell([r])
        top up: ask for enough new genomes to have          top_up
            `target` in flight (cache hits told at once)
    checkpoint (strategy state, log position)               save_state          <- the asks are safe
    submit what the strategy has in flight and the          submit_new
        evaluator does not, largest first

`target` is the number of candidates the evaluator can run at once (`Evaluator.slots()`, read once per
session). The strategy is asked after every single tell, for `target - len(in_flight)` genomes (fewer when the
budget is nearly spent), so what it is asked and told is a function of the order of the log alone: replaying
the log in order through a fresh strategy with the same `target` (`replay`) gives exactly the state of the run.

Crash safety. Every genome is in a checkpoint's in-flight list before it is submitted, and every result is in
the log before it is told, so after a crash at any instant `resume` restores the last checkpoint and replays
the log lines written after it (the checkpoint's `evaluations` is their position), one at a time and in logged
order, with the same top-ups: the strategy reaches the state it had before the crash. The genomes it then
holds in flight are the trainings the crash lost: they are submitted again (none is retrained that the log
already holds), and the run continues. Unlike `sync`, the search depends on the order in which results arrive
(that is the point: nobody waits for the slowest), so `async` promises that a resumed run continues the same
run, not that two runs with the same seed agree.

Budget: `search.budget.evaluations` and `--max-evaluations` cap what is asked (candidates in flight count);
`search.budget.hours` is checked as each result arrives and at every poll (`POLL_S`): once spent, what is in
flight is cancelled and the search stops (in flight in the checkpoint, never lost from the log).
"""

import logging
import time
from collections.abc import Callable
from typing import Any

from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.run.checkpoint import load_checkpoint
from nas.run.dispatch import largest_first
from nas.run.driver import STALL_STEPS, Loop, save_state
from nas.strategies.strategy import Strategy

log = logging.getLogger(__name__)

POLL_S = 1.0  # longest wait for a result before the clock is looked at again


def top_up(strategy: Strategy, want: Callable[[], int], known: Callable[[str], Result | None]) -> None:
    """Ask until the strategy has as many genomes in flight as `want()` allows (or it has none to give).

    `want()` is how many more may be in flight now. A genome the log already holds is told its logged result at
    once (no new evaluation); a strategy that keeps proposing only such genomes has converged, and after
    `STALL_STEPS` asks in a row it is asked no more.
    """
    repeats = 0
    while not strategy.done() and repeats < STALL_STEPS:
        n = want()
        if n <= 0:
            return
        asked = strategy.ask(n)
        if not asked:
            return  # the strategy waits for results
        hits = [r for r in (known(g.key) for g in asked) if r is not None]
        for result in hits:
            strategy.tell([result])
        repeats = repeats + 1 if len(hits) == len(asked) else 0
    if repeats >= STALL_STEPS:
        log.warning("the last %d asks held only genomes already evaluated: the search has converged", STALL_STEPS)


def replay(strategy: Strategy, prior: dict[str, Result], results: list[Result], target: int, budget: int | None) -> int:
    """Tell `results` (log lines, in log order) one by one, topping up to `target` in flight after each, as the
    async loop does; `prior` holds the lines logged before them. Returns how many were told.

    From a fresh strategy and the whole log this reconstructs the strategy of an async run; from a checkpoint
    and the lines after it, the strategy at the crash. A line whose genome is not in flight (a log written by
    something else) is skipped with a warning: it stays in the log, where it answers repeats.
    """
    known = dict(prior)
    told = 0

    def want() -> int:
        return in_flight_room(target, budget, len(known)) - len(strategy.in_flight())

    top_up(strategy, want, known.get)
    for result in results:
        known[result.key] = result
        if result.key not in {g.key for g in strategy.in_flight()}:
            log.warning("log line of %s was never in flight: not told", result.key[:12])
            continue
        strategy.tell([result])
        told += 1
        top_up(strategy, want, known.get)
    return told


def in_flight_room(target: int, budget: int | None, logged: int) -> int:
    """How many genomes may be in flight: the slots, or fewer when the evaluation budget is nearly spent."""
    return target if budget is None else max(0, min(target, budget - logged))


class AsyncLoop(Loop):
    """The sync `Loop`'s log, budget, best file and monitor, driven one result at a time (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._target: int | None = None
        self.position = int(load_checkpoint(self.s.run.path).get("evaluations", 0))
        self.submitted: dict[int, Genome] = {}  # ticket -> genome, what the evaluator holds
        self.unscaled: list[Result] = []  # told since the last TensorBoard scalars

    @property
    def target(self) -> int:
        """The slots of the evaluator, read once (the evaluator connects after the loop is built)."""
        if self._target is None:
            assert self.evaluator is not None, "the async loop runs only once its evaluator is connected"
            self._target = max(1, self.evaluator.slots())
        return self._target

    def want(self) -> int:
        """How many more genomes the strategy may be asked for now (what the budget leaves of the slots).

        `--max-evaluations` is not in here but in `submit_new`: it caps what is trained in this invocation, not
        what is asked, so that where an invocation stopped never changes the search."""
        room = in_flight_room(self.target, self.s.config.search.budget.evaluations, len(self.log))
        return room - len(self.s.strategy.in_flight())

    # --- the loop ---------------------------------------------------------------------------------------------

    def run(self) -> None:
        self.replay_after_checkpoint()
        if self.finished():
            return
        top_up(self.s.strategy, self.want, self.log.get)
        self.checkpoint()
        self.submit_new()
        while self.evaluator.outstanding():
            arrived = self.evaluator.wait(timeout=POLL_S)
            for ticket, result in arrived:
                self.arrived_async(ticket, result)
            if self.out_of_time():
                self.evaluator.cancel()
                self.checkpoint()
                return
            if arrived:
                self.checkpoint()
                self.submit_new()

    def replay_after_checkpoint(self) -> None:
        """Tell the strategy what the log holds beyond the checkpoint, as the crashed run had (module docstring)."""
        keys = self.log.order
        if len(keys) <= self.position:
            return
        prior = {key: self.log.results[key] for key in keys[: self.position]}
        after = [self.log.results[key] for key in keys[self.position :]]
        told = replay(self.s.strategy, prior, after, self.target, self.s.config.search.budget.evaluations)
        log.info("told the strategy the %d results logged after the checkpoint", told)

    def arrived_async(self, ticket: int, result: Result) -> None:
        """A result arrived: record it (the log, first), tell it, top up. Where multi-fidelity rungs would decide
        whether a candidate continues, this is the place: after the record, before the tell."""
        genome = self.submitted.pop(ticket)
        if genome.key != result.key:
            raise RuntimeError(f"ticket {ticket} came back with {result.key[:12]}, not {genome.key[:12]}")
        self.record(result)
        self.s.strategy.tell([result])
        self.unscaled.append(result)
        top_up(self.s.strategy, self.want, self.log.get)

    def checkpoint(self) -> None:
        """The strategy (with its in-flight genomes) and the log position it has been told through; the scalars
        once per `target` results."""
        self.s.step += 1
        self.s.elapsed_seconds = self.elapsed()
        self.started = time.monotonic()
        with self.guard.critical():
            save_state(self.s, self.base, len(self.log))
        if len(self.unscaled) >= self.target:
            best = self.best.fitness if self.best else None
            self.monitor.step(self.s.step, self.unscaled, best)
            self.unscaled = []

    def submit_new(self) -> None:
        """Submit, largest first, the genomes in flight for the strategy that the evaluator does not hold yet
        (after a crash: the trainings it lost), as many as `--max-evaluations` still allows."""
        held = {g.key for g in self.submitted.values()}
        new = [g for g in self.s.strategy.in_flight() if g.key not in held]
        if self.limit is not None:
            new = new[: max(0, self.limit - self.new - len(self.submitted))]
        for genome in largest_first(new, self.s.objective):
            self.submitted[self.evaluator.submit(genome)] = genome
