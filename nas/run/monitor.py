"""What a person watches during a search: TensorBoard scalars per step and a progress bar with an ETA.

Scalars (under `RUN_DIR/tensorboard/`): `search/best_fitness`, `search/mean_fitness` (of the step's ok
results), `search/evaluations_per_second`, `search/failures` (cumulative), `search/repeats_avoided` (candidates the
strategy drew again because they were already evaluated or asked) and `search/unfilled` (slots it left empty
for want of a new genome), each against the step. The bar counts
new evaluations against the budget and is shown only when stderr is a terminal.

Steps are numbered from 0 everywhere a person reads them: the `step` of a log line, `summary.md`, the figures
and these scalars all say "step 2" of the third batch. The loops call `step` and `repeats` once a step is
complete, with the run's count of completed steps, so the scalars go to index `completed - 1`, the number the
step's results carry in the log; `best` is called for a step that was cut short and gets that step's index.

The bar's `best=` is the run's best finished fitness, the figure `summary.md` and `best/architecture.yaml`
give: it is updated whenever the loop hands one over (a told step, a step cut short by the budget, or each
result when the loop passes its best along), so the last number on screen is the run's final best.

While the bar is shown, log records on the console go through `tqdm.write`, which clears the bar, prints the
record on a line of its own and redraws the bar below it (a warning used to be glued to the end of the bar's
line). A search that stops before its budget (`--max-evaluations`, a signal, a full disk) ends its bar as
"paused" with no time left to show: the ETA it last drew would never come true.
"""

import contextlib
import sys
import time
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from nas.evaluate.result import Result
from nas.run.scalars import ScalarWriter


class Monitor:
    def __init__(self, tensorboard_dir: Path, total: int | None, done: int, failures: int):
        self.writer = ScalarWriter(tensorboard_dir)
        self.failures = failures
        self.bar = tqdm(
            total=total, initial=done, unit="eval", desc="search", file=sys.stderr, disable=not sys.stderr.isatty()
        )
        self.step_started = time.monotonic()
        self.step_evaluations = 0
        self._redirect = contextlib.ExitStack()
        if not self.bar.disable:
            self._redirect.enter_context(logging_redirect_tqdm(tqdm_class=tqdm))

    def evaluated(self, result: Result, best: float | None = None) -> None:
        """One new evaluation arrived; `best`, when given, is the run's best finished fitness after it."""
        self.step_evaluations += 1
        if not result.ok:
            self.failures += 1
        if best is not None:
            self.show_best(best, refresh=False)
        self.bar.update(1)

    def show_best(self, best: float, refresh: bool = True) -> None:
        """The bar's `best=`, printed as `summary.md` prints a fitness (4 decimals)."""
        self.bar.set_postfix(best=f"{best:.4f}", refresh=refresh)

    def step(self, completed: int, results: list[Result], best: float | None) -> None:
        """A batch was told to the strategy, the `completed`-th: its scalars, at its index `completed - 1`."""
        index = completed - 1
        fitness = [r.fitness for r in results if r.ok and r.fitness is not None]
        elapsed = max(time.monotonic() - self.step_started, 1e-9)
        if best is not None:
            self.writer.add_scalar("search/best_fitness", best, index)
            self.show_best(best)
        if fitness:
            self.writer.add_scalar("search/mean_fitness", sum(fitness) / len(fitness), index)
        self.writer.add_scalar("search/evaluations_per_second", self.step_evaluations / elapsed, index)
        self.writer.add_scalar("search/failures", self.failures, index)
        self.writer.flush()
        self.step_started = time.monotonic()
        self.step_evaluations = 0

    def best(self, step: int, best: float) -> None:
        """The best fitness so far, for the step of index `step`, cut short by the budget (and not told); the bar
        shows it too, since no later step will (the run's final best is often found in that last batch)."""
        self.writer.add_scalar("search/best_fitness", best, step)
        self.writer.flush()
        self.show_best(best)

    def repeats(self, completed: int, avoided: int, unfilled: int) -> None:
        """The strategy's repeat counts of the `completed`-th step's ask (`Strategy.repeats`), at its index."""
        self.writer.add_scalar("search/repeats_avoided", avoided, completed - 1)
        self.writer.add_scalar("search/unfilled", unfilled, completed - 1)
        self.writer.flush()

    def close(self, paused: bool = False) -> None:
        """End the bar (as "paused", without an ETA, when the search stops before its budget), then the writer."""
        if paused and not self.bar.disable:
            self.bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} paused"
            if self.bar.total is None:
                self.bar.bar_format = "{desc}: {n_fmt} paused"
            self.bar.refresh()
        self._redirect.close()
        self.bar.close()
        self.writer.close()
