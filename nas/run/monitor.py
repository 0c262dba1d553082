"""What a person watches during a search: TensorBoard scalars per step and a progress bar with an ETA.

Scalars (under `RUN_DIR/tensorboard/`): `search/best_fitness`, `search/mean_fitness` (of the step's ok
results), `search/evaluations_per_second`, `search/failures` (cumulative), `search/repeats_avoided` (candidates the
strategy drew again because they were already evaluated or asked) and `search/unfilled` (slots it left empty
for want of a new genome), each against the step. The bar counts
new evaluations against the budget and is shown only when stderr is a terminal.
"""

import sys
import time
from pathlib import Path

from tqdm import tqdm

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

    def evaluated(self, result: Result) -> None:
        """One new evaluation arrived."""
        self.step_evaluations += 1
        if not result.ok:
            self.failures += 1
        self.bar.update(1)

    def step(self, step: int, results: list[Result], best: float | None) -> None:
        """A batch was told to the strategy: log its scalars."""
        fitness = [r.fitness for r in results if r.ok and r.fitness is not None]
        elapsed = max(time.monotonic() - self.step_started, 1e-9)
        if best is not None:
            self.writer.add_scalar("search/best_fitness", best, step)
            self.bar.set_postfix(best=f"{best:.4f}")
        if fitness:
            self.writer.add_scalar("search/mean_fitness", sum(fitness) / len(fitness), step)
        self.writer.add_scalar("search/evaluations_per_second", self.step_evaluations / elapsed, step)
        self.writer.add_scalar("search/failures", self.failures, step)
        self.writer.flush()
        self.step_started = time.monotonic()
        self.step_evaluations = 0

    def best(self, step: int, best: float) -> None:
        """The best fitness so far, for a step that was cut short by the budget (and not told)."""
        self.writer.add_scalar("search/best_fitness", best, step)
        self.writer.flush()

    def repeats(self, step: int, avoided: int, unfilled: int) -> None:
        """The strategy's repeat counts of the step's ask (`Strategy.repeats`)."""
        self.writer.add_scalar("search/repeats_avoided", avoided, step)
        self.writer.add_scalar("search/unfilled", unfilled, step)
        self.writer.flush()

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
