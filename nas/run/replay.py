"""Asking an async strategy, live and in replay: the same top-up rule, so a replayed log rebuilds the strategy.

The async policy asks after every single tell, for as many genomes as the budget's `room` leaves in flight, so
everything a strategy is asked and told is a function of the order of the log alone. `replay`, the log told in
order with the same top-ups, therefore brings a strategy from any checkpoint to exactly the state the run had at
the last logged result, and a fresh strategy replayed through the whole log ends in the run's final state.
With `search.screen` the top-up asks `factor` times the free slots and keeps what the predictor picks
(`nas.run.screen`); the predictor learns each result as it is told, here as in the live loop, so the picks
replay too.
"""

import logging
from collections.abc import Callable

from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.run.budget import Budget
from nas.run.screen import Screen
from nas.strategies.strategy import Strategy

log = logging.getLogger(__name__)


def top_up(strategy: Strategy, want: Callable[[], int], known: Callable[[str], Result | None],
           screen: Screen | None = None) -> None:  # fmt: skip
    """Ask until the strategy has as many genomes in flight as `want()` allows (or it has none to give).

    `want()` is how many more may be in flight now. Strategies never ask a genome they were told, so the log
    answers an ask only when it holds a line the strategy never saw (a log not written by this run's
    strategy): that genome is told its logged result at once, never trained again. With a ready `screen` the
    ask is `factor` times as large, and of the genomes the log does not answer the predictor keeps `want()`'s
    worth; the rest are withdrawn before anything is told.
    """
    while not strategy.done():
        n = want()
        if n <= 0:
            return
        asked = strategy.ask(screen.ask_size(n) if screen is not None else n)
        if not asked:
            return  # the strategy waits for results
        answers = [r for r in (known(g.key) for g in asked) if r is not None]
        if screen is not None:
            screen_out(strategy, screen, [g for g in asked if known(g.key) is None], n)
        for result in answers:
            strategy.tell([result])
            if screen is not None:
                screen.learn(result)


def screen_out(strategy: Strategy, screen: Screen, fresh: list[Genome], n: int) -> None:
    """Keep the `n` of `fresh` the screen picks in flight, withdraw the rest."""
    if len(fresh) <= n:
        return
    kept = {g.key for g in screen.pick(fresh, n)}
    strategy.withdraw([g for g in fresh if g.key not in kept])
    screen.screened += len(fresh) - len(kept)


def replay(strategy: Strategy, prior: dict[str, Result], results: list[Result], target: int, budget: Budget,
           screen: Screen | None = None) -> int:  # fmt: skip
    """Tell `results` (log lines, in log order) one by one, topping up to `target` in flight after each, as the
    async policy does; `prior` holds the lines logged before them (a `screen` has learnt them already). Returns
    how many were told.

    The budget counts finished evaluations as the log does: an `oom` line is told (a failure for now) but is
    not one, and it answers no ask. A line whose genome is not in flight (a log written by something else) is
    skipped with a warning: it stays in the log, where it answers repeats.
    """
    known = dict(prior)
    finished = sum(not r.transient for r in known.values())
    told = 0

    def want() -> int:
        return budget.room(target, finished) - len(strategy.in_flight())

    def answer(key: str) -> Result | None:
        result = known.get(key)
        return None if result is None or result.transient else result

    top_up(strategy, want, answer, screen)
    for result in results:
        previous = known.get(result.key)
        finished += (not result.transient) - (previous is not None and not previous.transient)
        known[result.key] = result
        if result.key not in {g.key for g in strategy.in_flight()}:
            log.warning("log line of %s was never in flight: not told", result.key[:12])
            continue
        strategy.tell([result])
        if screen is not None:
            screen.learn(result)
        told += 1
        top_up(strategy, want, answer, screen)
    return told
