"""When the strategy is asked and told: the two policies of the search loop (`nas.run.loop`).

`SyncPolicy` (`search.mode: sync`) is a barrier. It asks a batch, lets the scheduler train what the log does not
answer, and tells the whole batch in ask order once it is complete, then checkpoints. The strategy's RNG lives in
its state, so the same seed and fitness values give the same search whatever the number of workers or the order
in which they finish. A checkpoint follows every tell (and one precedes the first ask), so after a crash the
restored strategy re-asks the same batch and the log answers what already finished. A batch cut short by the
budget or `--max-evaluations` is trained as far as allowed and not told: the checkpoint keeps the step and the
time spent, and the strategy re-asks the same batch until told, so `nas resume` continues it exactly.

`AsyncPolicy` (`search.mode: async`) passes every settled result to the strategy the moment it settles, and tops
the strategy up after each tell to `target` genomes in flight: the evaluator's slots plus a short queue
(`QUEUED`), fewer when the evaluation budget is nearly spent (`Budget.room`). Every result is in the log before
it is told and the asks that follow a tell depend only on the log's order, so a checkpoint is needed only to
keep the replay short (`nas.run.replay`: at most one a second). After a crash at any instant `nas resume`
restores the last checkpoint and replays the log lines written after it (the checkpoint's `async_position`, or
under fidelity `async_lines`) with the checkpoint's `async_target`; the genomes the strategy then holds in flight
are the trainings the crash lost, submitted again, and no genome the log holds is trained again. Two async runs
with one seed need not agree (nobody waits for the slowest), but a resumed run continues the same run.
`--max-evaluations` caps what is submitted, not what is asked, so where an invocation stopped never changes the
search: what was asked and not submitted stays in flight in the checkpoint. With `search.screen` each top-up asks
more than it submits and a predictor picks (`nas.run.screen`); the predictor is rebuilt from the log on every
start (the checkpoint's told results, then the replay), never checkpointed, so a resumed run picks the same.
"""

import logging
import math
import time

from nas.evaluate.constraints import genome_cost
from nas.evaluate.job import Job
from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.run.dispatch import largest_first
from nas.run.loop import SearchLoop, Session
from nas.run.replay import replay, top_up
from nas.run.screen import Screen, build_screen

log = logging.getLogger(__name__)

# Candidates kept queued beyond the slots, as a fraction of them: a slot that frees up starts a queued candidate
# at once (Ray hands the finished task's worker straight to the next one of the same kind) instead of waiting for
# the driver to log, tell, ask and submit (benchmarks/cluster_utilization.py measures the busy fraction); the price
# is that a queued genome is asked a few results earlier.
QUEUED = 0.25
# A checkpoint only shortens the replay of a resume, so one a second is plenty; each costs a few fsyncs, which at
# one per result would take a good part of the driver's time on a busy cluster.
CHECKPOINT_EVERY_S = 1.0


class SyncPolicy:
    """Ask a batch, train it, tell it whole in ask order, checkpoint (module docstring)."""

    def __init__(self, loop: SearchLoop):
        self.loop = loop
        self.s = loop.s
        self.batch: list | None = None  # the genomes asked and not told yet
        self.cut = False
        self.trained = 0
        self.stopped = False

    def start(self) -> None:
        """Nothing to rebuild: a checkpoint follows every tell."""

    def next_jobs(self) -> list[Job]:
        """The jobs of a new batch once the last one is told; batches the log answers whole are told at once."""
        while self.batch is None and not self.stopped:
            if not self.goes_on():
                self.stopped = True
                break
            self.loop.guard.check()
            genomes = self.s.strategy.ask()
            if not genomes:  # the strategy found nothing new to ask: it is done
                if self.s.strategy.exhausted:
                    log.warning("the strategy found no genome it has not evaluated: the search has converged")
                self.stopped = True
                break
            start = self.loop.scheduler.batch(genomes, self.s.step, self.loop.remaining())
            self.batch, self.cut, self.trained = genomes, start.cut, start.trained
            if start.jobs:
                return start.jobs
            self.batch_over()
        return []

    def goes_on(self) -> bool:
        return (not self.loop.finished() and self.loop.remaining() != 0) or self.owes_work()

    def owes_work(self) -> bool:
        """Under `search.fidelity`, a batch asked before a stop whose candidates are all logged may still owe
        promotions (a kill in the middle of one): that is work of the budget already spent, so the budget does
        not stop it, and resume finishes it exactly as the uninterrupted run would have."""
        if self.s.config.search.fidelity is None or self.batch is not None:
            return False
        # a checkpoint is taken between batches, so a resumed strategy holds none: ask() draws it again (the
        # same genomes, the RNG is in the state); in_flight() would not
        pending = self.s.strategy.ask()
        return bool(pending) and all(g.key in self.loop.log for g in pending)

    def settled(self, results: list[Result]) -> None:
        """The barrier: settled results wait for the whole batch (`after_round`)."""

    def after_round(self) -> None:
        if self.batch is not None and self.loop.scheduler.batch_done():
            self.batch_over()

    def batch_over(self) -> None:
        """The batch has all it will get: told when it is complete, else its time and its best recorded."""
        genomes, self.batch = self.batch or [], None
        if self.cut:
            self.cut_short()
            return
        results = [self.loop.scheduler.told(g.key) for g in genomes]  # a complete batch: the log holds every one
        self.s.strategy.tell(results)
        self.s.step += 1
        self.s.stalled_steps = 0 if self.trained else self.s.stalled_steps + 1
        if self.s.stalled_steps == self.s.config.search.stall_batches:
            log.warning("the last %d batches held only genomes already evaluated: the search has converged",
                        self.s.stalled_steps)  # fmt: skip
        self.loop.save()
        repeats = self.s.strategy.repeats
        # the step just told, by its index: numbered from 0, as the log, summary.md and TensorBoard number it; the
        # monitor writes the step's INFO line, this one's detail is for `-v`
        log.debug("step %d: %d asked, %d new, repeats avoided %d, slots left empty %d", self.s.step - 1,
                  len(genomes), self.trained, repeats.avoided, repeats.unfilled)  # fmt: skip
        fresh = [self.loop.log.results[g.key] for g in genomes]
        self.loop.monitor.step(self.s.step, fresh, self.loop.best_fitness(), len(self.loop.log))
        self.loop.monitor.repeats(self.s.step, repeats.avoided, repeats.unfilled)

    def cut_short(self) -> None:
        """A batch cut by a budget or `--max-evaluations` is not told, but its time is the run's, and its line
        and a best it found belong on the curve; the search stops here."""
        self.stopped = True
        self.loop.save()
        self.loop.monitor.best(self.s.step, self.loop.best_fitness(), len(self.loop.log))

    def out_of_time(self) -> None:
        """What was in flight is cancelled: the batch is cut short."""
        if self.batch is not None:
            self.batch, self.cut = None, True
            self.cut_short()

    def stop(self) -> None:
        if self.loop.finished():
            self.loop.scheduler.finish()  # a finished search promotes nothing more


class AsyncPolicy:
    """Tell each settled result at once, keep the slots busy, checkpoint once a second (module docstring)."""

    def __init__(self, loop: SearchLoop):
        self.loop = loop
        self.s = loop.s
        state = loop.state
        self.position = int(state.async_position or 0)  # log keys the checkpoint has told through
        self.line_position = state.async_lines  # under `search.fidelity`: log lines told through
        self.replay_target = state.async_target  # the slots and queue of the session that wrote it
        self.target = 0  # set by `start`, once the evaluator is connected
        self.told_since_checkpoint: list[Result] = []
        self.untold: set[str] = set()  # settled in this round, not told yet
        self.idle = False  # the replay found the search finished: nothing to submit, nothing to checkpoint
        self.checkpointed = time.monotonic()
        total = self.s.strategy.repeats_total
        self.repeats = (total.avoided, total.unfilled)  # the strategy's repeat counts at the last scalars
        self.screen = make_screen(loop)

    def want(self) -> int:
        """How many more genomes the strategy may be asked for now (what the budget leaves of the slots)."""
        log_ = self.loop.log
        told = len(log_) - sum(key in log_ for key in self.untold)  # as the strategy heard it, as `replay`
        told -= len(self.loop.scheduler.open())  # logged, not settled: still in flight for the strategy
        return self.loop.budget.room(self.target, told) - len(self.s.strategy.in_flight())

    def known(self, key: str) -> Result | None:
        """The log's answer to an ask, in the form the strategy is told (None: not evaluated)."""
        return None if key not in self.loop.log else self.loop.scheduler.told(key)

    def owes_work(self) -> bool:
        """A candidate continues to a higher rung: the budget counts candidates, and this one is counted."""
        return bool(self.loop.scheduler.open())

    def start(self) -> None:
        """Read the evaluator's slots, replay what the log holds beyond the checkpoint, top up, checkpoint."""
        assert self.loop.evaluator is not None
        slots = max(1, self.loop.evaluator.slots())
        self.target = slots + math.ceil(slots * QUEUED)
        bound = self.s.strategy.parallelism()
        if bound is not None and bound < self.target:
            log.warning("%s can keep at most %d genomes in flight, fewer than the %d this search wants (%d slots "
                        "and a queue): slots will idle; for hgapso raise search.pso.swarm_size or "
                        "search.ga.population", self.s.strategy.name, bound, self.target, slots)  # fmt: skip
        if self.replay_target is None:
            self.replay_target = self.target
        self.replay_after_checkpoint()
        if self.loop.finished():
            self.idle = True
            return
        top_up(self.s.strategy, self.want, self.known, self.screen)
        self.checkpoint()  # this session's target, from here on

    def replay_after_checkpoint(self) -> None:
        """Tell the strategy what the log holds beyond the checkpoint, as the crashed run had."""
        prior_keys, after_keys = self.loop.scheduler.split_told(self.position, self.line_position)
        told = self.loop.scheduler.told
        if self.screen is not None:
            self.screen.learn_all(told(key) for key in prior_keys)
        if not after_keys:
            return
        prior = {key: told(key) for key in prior_keys}
        count = replay(self.s.strategy, prior, [told(k) for k in after_keys], int(self.replay_target), self.loop.budget,
                       self.screen)  # fmt: skip
        self.s.step += count
        log.info("told the strategy the %d results logged after the checkpoint", count)

    def next_jobs(self) -> list[Job]:
        """The genomes in flight for the strategy that the evaluator does not hold yet (after a crash: the
        trainings it lost), as many as `--max-evaluations` still allows. Candidates that continue go first (each
        to its next rung); new genomes fill the free slots, largest first when not all start at once."""
        loop = self.loop
        assert loop.evaluator is not None
        if self.idle:
            return []
        held = {job.key for job in loop.submitted.values()}
        flying = list({g.key: g for g in self.s.strategy.in_flight() if g.key not in held}.values())  # each once
        open_ = loop.scheduler.open()
        continuing = [g for g in flying if g.key in open_]
        new = [g for g in flying if g.key not in open_]
        if loop.budget.limit is not None:
            new_submitted = sum(1 for job in loop.submitted.values() if job.key not in loop.log)
            new = new[: max(0, loop.budget.limit - loop.new - new_submitted)]
        free = self.target - loop.evaluator.outstanding() - len(continuing)
        if len(new) > free:  # not all start at once: the biggest first
            new = largest_first(new, self.s.objective)
            if not loop.scheduler.queues_new:
                new = new[: max(0, free)]  # a candidate holds its slot to its last rung: new ones wait for one
        return loop.scheduler.start(continuing) + loop.scheduler.start(new)

    def settled(self, results: list[Result]) -> None:
        """Tell each settled result in settling order, topping up after each; a top-up sees the log only up to
        the result just told, as the replay does."""
        self.untold = {r.key for r in results}
        for result in results:
            self.untold.discard(result.key)
            self.s.strategy.tell([result])
            if self.screen is not None:
                self.screen.learn(result)
            self.s.step += 1
            self.told_since_checkpoint.append(result)
            top_up(self.s.strategy, self.want, lambda key: None if key in self.untold else self.known(key), self.screen)

    def after_round(self) -> None:
        if self.told_since_checkpoint and time.monotonic() - self.checkpointed >= CHECKPOINT_EVERY_S:
            self.checkpoint()

    def out_of_time(self) -> None:
        """What was in flight is cancelled; the strategy keeps it in flight, and a resume submits it again."""

    def stop(self) -> None:
        if not self.idle:
            self.checkpoint()
        if self.loop.finished():
            self.loop.scheduler.finish()  # a finished search continues no candidate: its states go

    def checkpoint(self) -> None:
        """The strategy (in-flight genomes included), the log position it has been told through, this session's
        target; then the TensorBoard scalars of the results told since the last one."""
        self.checkpointed = time.monotonic()
        log_ = self.loop.log
        screened = {} if self.screen is None else {"screened": self.screen.screened}
        self.loop.save(async_target=self.target, async_position=len(log_.order), async_lines=len(log_.lines),
                       **screened)  # fmt: skip
        if not self.told_since_checkpoint:
            return
        self.loop.monitor.step(self.s.step, self.told_since_checkpoint, self.loop.best_fitness(), len(log_))
        self.told_since_checkpoint = []
        total = self.s.strategy.repeats_total
        self.loop.monitor.repeats(self.s.step, total.avoided - self.repeats[0], total.unfilled - self.repeats[1])
        self.repeats = (total.avoided, total.unfilled)
        if self.screen is not None:
            self.loop.monitor.screened(self.s.step, self.screen.screened)


def make_screen(loop: SearchLoop) -> Screen | None:
    """The session's predictor screen (None without `search.screen`), with the count of genomes it withdrew
    before this session (the checkpoint's)."""
    session = loop.s
    screen = build_screen(session.config.search.screen, session.config.seed, lambda g: cost_of(session, g))
    if screen is not None:
        screen.screened = loop.state.screened
    return screen


def cost_of(session: Session, genome: Genome) -> tuple[int, int]:
    """(params, FLOPs) of the network the session's objective builds from `genome`, by formula."""
    cost = genome_cost(session.objective, genome)
    return int(cost["params"]), int(cost["flops"])
