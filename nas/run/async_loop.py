"""The async driver (`search.mode: async`): every slot stays busy, each result is told the moment it arrives.

One round of the loop:

    wait for any finished candidate(s)                      evaluator.wait
    record them: append to the log (one fsync), best file   Loop.record_many   <- the results are safe from here
    for each, in completion order (`receive`):
        tell the strategy that one result                   strategy.tell([r])
        top up: ask for enough new genomes to have          top_up
            `target` in flight
    submit what the strategy has in flight and the          submit_new
        evaluator does not (largest first, by analytic
        FLOPs, when they cannot all start at once)
    once a second (`CHECKPOINT_EVERY_S`): checkpoint,       checkpoint
        TensorBoard scalars

`target` is the number of candidates the evaluator can run at once (`Evaluator.slots()`, read once per session
and kept in the checkpoint), plus a short queue (`QUEUED`) so that a slot that frees up never waits for the
driver. The strategy is asked after every single tell, for `target - len(in_flight)`
genomes (fewer when the evaluation budget is nearly spent), so everything it is asked and told is a function of
the order of the log alone: `replay`, the log told in order with the same top-ups, brings a strategy from any
checkpoint to exactly the state the run had at the last logged result. A fresh strategy replayed through the
whole log ends in the run's final state.

Crash safety. Every result is in the log before it is told, and the asks that followed it are re-derived by the
replay, so a checkpoint is needed only to keep the replay short (one a second). After a crash at
any instant, `nas resume` restores the last checkpoint and replays the log lines written after it (the
checkpoint's `evaluations` is their position) in logged order, with the checkpoint's `target`: the strategy
reaches the state it had before the crash. The genomes it then holds in flight are the trainings the crash lost;
they are submitted again, and no genome the log holds is trained again. The search depends on the order in which
results arrive (that is the point: nobody waits for the slowest), so two runs with one seed need not agree:
`async` promises that a resumed run continues the same run, where `sync` promises the same search whatever the
number of workers.

Budget: `search.budget.evaluations` caps what is asked (genomes in flight count); `--max-evaluations` caps what
is submitted in this invocation, not what is asked, so that where an invocation stopped never changes the search
(what was asked and not submitted stays in flight in the checkpoint). `search.budget.hours` is checked as each
result arrives and at every poll (`POLL_S`): once spent, what is in flight is cancelled and the search stops.

Multi-fidelity (`search.fidelity`): ASHA in its stopping form (`nas.run.rungs.AsyncRungs`). A new genome
trains the first rung; each rung result is decided the moment it arrives: in the top 1/eta of its rung so far,
the candidate goes straight on to the next rung from its saved state (in the slot it had), else it is settled.
The strategy is told a candidate once, when it is settled, at the highest rung it reached (`told_fitness`, rung
then accuracy, as in sync), so until then it stays in flight for the strategy, and the budget (which counts
candidates) counts it there. The order of tells is the order of settling lines in the log, so the replay
tells the same results in the same order: the checkpoint keeps its position as a count of log lines
(`async_lines`), and ASHA's decisions are rebuilt from the lines on every start. A continuation lost in a crash
is the strategy's in-flight genome whose last line says continue: it is submitted again from its saved state.
A search whose budget is spent goes on until every candidate in flight is settled.
"""

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from nas.evaluate.job import Job
from nas.evaluate.result import Result
from nas.run.checkpoint import load_checkpoint
from nas.run.dispatch import largest_first
from nas.run.loop import Loop, save_state
from nas.run.rungs import AsyncRungs
from nas.strategies.strategy import Strategy

log = logging.getLogger(__name__)

POLL_S = 1.0  # longest wait for a result before the clock is looked at again
# Candidates kept queued beyond the slots, as a fraction of them: a slot that frees up starts a queued candidate
# at once (Ray hands the finished task's worker straight to the next one of the same kind) instead of waiting for
# the driver to log, tell, ask and submit. On 32 simulated GPUs this raised the busy fraction from 0.65 to 0.78
# (benchmarks/RESULTS.md); the price is that a queued genome is asked a few results earlier.
QUEUED = 0.25
# A checkpoint only shortens the replay of a resume (module docstring), so one a second is plenty; each costs a
# few fsyncs, which at one per result would take a good part of the driver's time on a busy cluster.
CHECKPOINT_EVERY_S = 1.0


def top_up(strategy: Strategy, want: Callable[[], int], known: Callable[[str], Result | None]) -> None:
    """Ask until the strategy has as many genomes in flight as `want()` allows (or it has none to give).

    `want()` is how many more may be in flight now. Strategies never ask a genome they were told, so the log
    answers an ask only when it holds a line the strategy never saw (a log not written by this run's
    strategy): that genome is told its logged result at once, never trained again.
    """
    while not strategy.done():
        n = want()
        if n <= 0:
            return
        asked = strategy.ask(n)
        if not asked:
            return  # the strategy waits for results
        for result in (r for r in (known(g.key) for g in asked) if r is not None):
            strategy.tell([result])


def in_flight_room(target: int, budget: int | None, logged: int) -> int:
    """How many genomes may be in flight: the slots, or fewer when the evaluation budget is nearly spent."""
    return target if budget is None else max(0, min(target, budget - logged))


def replay(strategy: Strategy, prior: dict[str, Result], results: list[Result], target: int, budget: int | None) -> int:
    """Tell `results` (log lines, in log order) one by one, topping up to `target` in flight after each, as the
    async loop does; `prior` holds the lines logged before them. Returns how many were told.

    The budget counts finished evaluations as the log does: an `oom` line is told (a failure for now) but is
    not one, and it answers no ask; counted as finished, it made the replay ask one genome fewer than the run
    did near the end of the budget, and a resume rebuilt a different strategy.

    From a fresh strategy and the whole log this reconstructs the strategy of an async run; from a checkpoint
    and the lines after it, the strategy at the crash. A line whose genome is not in flight (a log written by
    something else) is skipped with a warning: it stays in the log, where it answers repeats.
    """
    known = dict(prior)
    finished = sum(not r.transient for r in known.values())
    told = 0

    def want() -> int:
        return in_flight_room(target, budget, finished) - len(strategy.in_flight())

    def answer(key: str) -> Result | None:
        result = known.get(key)
        return None if result is None or result.transient else result

    top_up(strategy, want, answer)
    for result in results:
        previous = known.get(result.key)
        finished += (not result.transient) - (previous is not None and not previous.transient)
        known[result.key] = result
        if result.key not in {g.key for g in strategy.in_flight()}:
            log.warning("log line of %s was never in flight: not told", result.key[:12])
            continue
        strategy.tell([result])
        told += 1
        top_up(strategy, want, answer)
    return told


class AsyncLoop(Loop):
    """The sync `Loop`'s log, budget, best file and monitor, driven one result at a time (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.target = 0  # set by `connected`: the evaluator is connected after the loop is built
        checkpoint = load_checkpoint(self.s.run.path)
        # the log keys the checkpoint has told (`evaluations` counts finished ones only, without `oom` lines)
        self.position = int(checkpoint.get("async_position", checkpoint.get("evaluations", 0)))
        self.line_position = int(checkpoint.get("async_lines", 0))  # under `search.fidelity`: log lines told through
        self.replay_target: int | None = checkpoint.get("async_target")  # the session that wrote it
        self.submitted: dict[int, Job] = {}  # ticket -> the job (a genome, or one of its rungs) the evaluator holds
        fidelity = self.s.config.search.fidelity
        self.rungs = None  # the sync scheduler is not used here
        self.asha = None if fidelity is None else AsyncRungs(
            self.s.run.path, fidelity, self.s.config.fitness.epochs, self.log, self.record
        )  # fmt: skip
        self.told_since_checkpoint: list[Result] = []
        self.untold: set[str] = set()  # logged in this round, not told yet
        self.checkpointed = time.monotonic()
        total = self.s.strategy.repeats_total
        self.repeats = (total.avoided, total.unfilled)  # the strategy's repeat counts at the last scalars

    def want(self) -> int:
        """How many more genomes the strategy may be asked for now (what the budget leaves of the slots)."""
        told = len(self.log) - sum(key in self.log for key in self.untold)  # as the strategy heard it, as `replay`
        if self.asha is not None:
            told -= len(self.asha.open)  # logged, not settled: still in flight for the strategy
        room = in_flight_room(self.target, self.s.config.search.budget.evaluations, told)
        return room - len(self.s.strategy.in_flight())

    def promotions_pending(self) -> bool:
        """Under `search.fidelity`: a candidate continues to a higher rung. The budget does not stop it: it
        counts candidates, and this one is counted already."""
        return self.asha is not None and bool(self.asha.open)

    def finished(self) -> bool:
        if self.out_of_time():
            return True
        return super().finished() and not self.promotions_pending()

    def told_result(self, key: str) -> Result:
        """The result the strategy is told for a logged `key`: its line, or under `search.fidelity` its highest
        rung, ranked by rung then accuracy."""
        return self.log.results[key] if self.asha is None else self.asha.settled_result(key)

    # --- the loop ---------------------------------------------------------------------------------------------

    def connected(self) -> None:
        """Read the evaluator's slots, once: in flight, every slot busy and a short queue."""
        assert self.evaluator is not None, "the async loop runs only once its evaluator is connected"
        slots = max(1, self.evaluator.slots())
        self.target = slots + math.ceil(slots * QUEUED)
        bound = self.s.strategy.parallelism()
        if bound is not None and bound < self.target:
            log.warning("%s can keep at most %d genomes in flight, fewer than the %d this search wants (%d slots "
                        "and a queue): slots will idle; for hgapso raise search.pso.swarm_size or "
                        "search.ga.population", self.s.strategy.name, bound, self.target, slots)  # fmt: skip
        if self.replay_target is None:
            self.replay_target = self.target

    def run(self) -> None:
        self.connected()
        self.replay_after_checkpoint()
        if self.finished():
            if self.asha is not None:
                self.asha.finish()
            return
        top_up(self.s.strategy, self.want, self.known)
        self.checkpoint()  # this session's target, from here on
        self.submit_new()
        while self.evaluator.outstanding():
            self.receive(self.evaluator.wait(timeout=POLL_S))
            if self.out_of_time():
                self.evaluator.cancel()
                break
            self.submit_new()
            if self.told_since_checkpoint and time.monotonic() - self.checkpointed >= CHECKPOINT_EVERY_S:
                self.checkpoint()
        self.checkpoint()
        if self.asha is not None and self.finished():
            self.asha.finish()  # a finished search continues no candidate: its states go

    def known(self, key: str) -> Result | None:
        """The log's answer to an ask, in the form the strategy is told (None: not evaluated)."""
        return None if key not in self.log else self.told_result(key)

    def replay_after_checkpoint(self) -> None:
        """Tell the strategy what the log holds beyond the checkpoint, as the crashed run had (module docstring)."""
        if self.asha is None:
            keys = self.log.order
            prior_keys, after_keys = keys[: self.position], keys[self.position :]
        else:  # the settled candidates, in the order they were settled (= told)
            settled = self.asha.settled
            prior_keys = [key for index, key in settled if index < self.line_position]
            after_keys = [key for index, key in settled if index >= self.line_position]
        if not after_keys:
            return
        prior = {key: self.told_result(key) for key in prior_keys}
        after = [self.told_result(key) for key in after_keys]
        budget = self.s.config.search.budget.evaluations
        told = replay(self.s.strategy, prior, after, int(self.replay_target or self.target), budget)
        log.info("told the strategy the %d results logged after the checkpoint", told)

    def receive(self, finished: list[tuple[int, Result]]) -> None:
        """Results arrived: record them (into the log, first, one fsync for those that came together), then for
        each in completion order tell it and top up. A top-up sees the log only up to the result just told, as
        the replay does. Under `search.fidelity` a rung result is told only when it settles its candidate (the
        rest go straight on to their next rung, `submit_new`)."""
        arrivals = []
        for ticket, result in finished:
            job = self.submitted.pop(ticket)
            if job.key != result.key:
                raise RuntimeError(f"ticket {ticket} came back with {result.key[:12]}, not {job.key[:12]}")
            arrivals.append((job, result))
        if not arrivals:
            return
        if self.asha is None:
            self.record_many([result for _, result in arrivals])
            told = [result for _, result in arrivals]
        else:
            settled = [job.key for job, r in arrivals if self.asha.arrived(job, r)]
            told = [self.asha.settled_result(key) for key in settled]
        self.untold = {r.key for r in told}
        for result in told:
            self.untold.discard(result.key)
            self.s.strategy.tell([result])
            self.told_since_checkpoint.append(result)
            top_up(self.s.strategy, self.want, lambda key: None if key in self.untold else self.known(key))

    def submit_new(self) -> None:
        """Submit, largest first, the genomes in flight for the strategy that the evaluator does not hold yet
        (after a crash: the trainings it lost), as many as `--max-evaluations` still allows. Under
        `search.fidelity`, the candidates that continue go first (each to its next rung), and new genomes fill
        the slots that are free."""
        held = {w.key for w in self.submitted.values()}
        flying = list({g.key: g for g in self.s.strategy.in_flight() if g.key not in held}.values())  # each once
        jobs: list[Job] = []
        if self.asha is not None:
            jobs = [self.asha.next_job(g) for g in flying if g.key in self.asha.open]
            flying = [g for g in flying if g.key not in self.asha.open]
        new = flying
        if self.limit is not None:
            new = new[: max(0, self.limit - self.new - self.new_submitted())]
        free = self.target - self.evaluator.outstanding() - len(jobs)
        if len(new) > free:  # not all start at once: the biggest first
            new = largest_first(new, self.s.objective)
            if self.asha is not None:  # continuations were first: new candidates wait for a free slot
                new = new[: max(0, free)]
        jobs += [Job(g) if self.asha is None else self.asha.next_job(g) for g in new]
        for job in jobs:
            self.submitted[self.evaluator.submit(job)] = job

    def new_submitted(self) -> int:
        """Submitted candidates not in the log yet (a candidate's later rungs are not new evaluations)."""
        return sum(1 for w in self.submitted.values() if w.key not in self.log)

    def checkpoint(self) -> None:
        """The strategy (in-flight genomes included), the log position it has been told through, this session's
        target; then the TensorBoard scalars of the results told since the last one."""
        self.s.step += 1
        self.s.elapsed_seconds = self.elapsed()
        self.started = self.checkpointed = time.monotonic()
        with self.guard.critical():
            save_state(
                self.s,
                self.base,
                len(self.log),
                async_target=self.target,
                async_position=len(self.log.order),
                async_lines=len(self.log.lines),
            )
        if self.told_since_checkpoint:
            best = self.best.fitness if self.best else None
            self.monitor.step(self.s.step, self.told_since_checkpoint, best, len(self.log))
            self.told_since_checkpoint = []
            total = self.s.strategy.repeats_total
            self.monitor.repeats(self.s.step, total.avoided - self.repeats[0], total.unfilled - self.repeats[1])
            self.repeats = (total.avoided, total.unfilled)
