"""What a person watches during a search: TensorBoard scalars per step and a progress bar with an ETA.

Scalars (under `RUN_DIR/tensorboard/`): `search/best_fitness`, `search/mean_fitness` (of the step's ok
results), `search/evaluations_per_second`, `search/failures` (cumulative), `search/repeats_avoided` (candidates the
strategy drew again because they were already evaluated or asked) and `search/unfilled` (slots it left empty
for want of a new genome), each against the step; with several objectives whose costs are analytic,
`search/hypervolume` (the front's normalised hypervolume, `RUN_DIR/pareto.json`) against the evaluations so far,
written whenever it changes; with `search.screen`, `search/screened` (genomes the predictor left untrained, over
the run) against the step. The bar counts
new evaluations against the budget and is shown only when stderr is a terminal.

Steps are numbered from 0 everywhere a person reads them: the `step` of a log line, `summary.md`, the figures
and these scalars all say "step 2" of the third batch. The loops call `step` and `repeats` once a step is
complete, with the run's count of completed steps, so the scalars go to index `completed - 1`, the number the
step's results carry in the log; `best` is called for a step that was cut short and gets that step's index.

The bar's `best=` is the run's best finished fitness, the figure `summary.md` and `best/architecture.yaml`
give: it is updated whenever the loop hands one over (a told step, a step cut short by the budget, or each
result when the loop passes its best along), so the last number on screen is the run's final best.

Log lines (logger `nas.run.monitor`, on stderr, terminal or not), one per line, in a fixed form for grep and
a log follower; a fitness has 4 decimals as in `summary.md`, `none` where there is none yet:

    step S: evaluations N/B, step best F, best so far F        at INFO, once per step
    step S: evaluations N/B, step best F, best so far F, cut short
    candidate KEY12: fitness F, params P, seconds T            at DEBUG (`nas -v`), once per finished candidate
    candidate KEY12: STATUS, params P, seconds T, error LINE   (a failed, timed out or out-of-memory one)

N is the run's evaluations so far (the log's candidates, as the summary counts them), B the evaluation budget
(`N` alone when the budget is in hours only); "step best" is the best of the evaluations that arrived during
the step, ranked as the run ranks them (none when every candidate was answered from the log), and "best so far"
is the run's best finished fitness, the bar's `best=`. A step cut short by the budget is not told to the
strategy but its evaluations count, so the last step line of a finished run shows the final best. Under
`search.fidelity` a candidate line is one rung's result and ends with `, epochs E`. In async mode a "step" is
a checkpoint (about one a second) and a step line is written for each that told the strategy something.

While the bar is shown, log records on the console go through `tqdm.write`, which clears the bar, prints the
record on a line of its own and redraws the bar below it (a warning used to be glued to the end of the bar's
line). A search that stops before its budget (`--max-evaluations`, a signal, a full disk) ends its bar as
"paused" with no time left to show: the ETA it last drew would never come true.
"""

import contextlib
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from nas.evaluate.result import Result
from nas.run.runlog import rank_key
from nas.run.scalars import ScalarWriter

log = logging.getLogger(__name__)


def fitness_text(fitness: float | None) -> str:
    """A fitness as `summary.md` and the bar print it (4 decimals), `none` for a missing one."""
    return "none" if fitness is None else f"{fitness:.4f}"


def candidate_line(result: Result) -> str:
    """The `-v` line of one finished candidate (module docstring)."""
    if result.ok:
        text = f"candidate {result.key[:12]}: fitness {fitness_text(result.fitness)}"
    else:
        text = f"candidate {result.key[:12]}: {result.status}"
    text += f", params {result.params}, seconds {result.seconds:.2f}"
    if not result.ok:
        error = (result.error or "").strip().splitlines()
        text += f", error {error[0] if error else 'none'}"
    if result.epochs is not None:
        text += f", epochs {result.epochs}"
    return text


class Monitor:
    def __init__(self, tensorboard_dir: Path, total: int | None, done: int, failures: int):
        self.writer = ScalarWriter(tensorboard_dir)
        self.failures = failures
        self.bar = tqdm(
            total=total, initial=done, unit="eval", desc="search", file=sys.stderr, disable=not sys.stderr.isatty()
        )
        self.total = total
        self.step_started = time.monotonic()
        self.step_evaluations = 0
        self.step_best: Result | None = None  # the best evaluation that arrived during this step
        self._redirect = contextlib.ExitStack()
        if not self.bar.disable:
            self._redirect.enter_context(logging_redirect_tqdm(tqdm_class=tqdm))

    def evaluated(self, result: Result, best: float | None = None) -> None:
        """One new evaluation arrived; `best`, when given, is the run's best finished fitness after it."""
        self.step_evaluations += 1
        if not result.ok:
            self.failures += 1
        elif result.fitness is not None and (self.step_best is None or rank_key(result) < rank_key(self.step_best)):
            self.step_best = result
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s", candidate_line(result))
        if best is not None:
            self.show_best(best, refresh=False)
        self.bar.update(1)

    def show_best(self, best: float, refresh: bool = True) -> None:
        """The bar's `best=`, printed as `summary.md` prints a fitness (4 decimals)."""
        self.bar.set_postfix(best=f"{best:.4f}", refresh=refresh)

    def step_line(self, index: int, evaluations: int, best: float | None, cut_short: bool = False) -> None:
        """The step's log line (module docstring); the step's best starts again for the next step."""
        done = f"{evaluations}/{self.total}" if self.total is not None else f"{evaluations}"
        step_best = fitness_text(self.step_best.fitness if self.step_best is not None else None)
        log.info("step %d: evaluations %s, step best %s, best so far %s%s", index, done, step_best,
                 fitness_text(best), ", cut short" if cut_short else "")  # fmt: skip
        self.step_best = None

    def step(self, completed: int, results: list[Result], best: float | None, evaluations: int) -> None:
        """A batch was told to the strategy, the `completed`-th, with `evaluations` in the run's log: its log line
        and its scalars, at its index `completed - 1`."""
        index = completed - 1
        self.step_line(index, evaluations, best)
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

    def best(self, step: int, best: float | None, evaluations: int) -> None:
        """The step of index `step` was cut short by the budget (and not told), with `evaluations` in the run's
        log: its step line, and the best fitness so far (if any) on the curve and the bar, since no later step
        will show it (the run's final best is often found in that last batch)."""
        self.step_line(step, evaluations, best, cut_short=True)
        if best is None:
            return
        self.writer.add_scalar("search/best_fitness", best, step)
        self.writer.flush()
        self.show_best(best)

    def repeats(self, completed: int, avoided: int, unfilled: int) -> None:
        """The strategy's repeat counts of the `completed`-th step's ask (`Strategy.repeats`), at its index."""
        self.writer.add_scalar("search/repeats_avoided", avoided, completed - 1)
        self.writer.add_scalar("search/unfilled", unfilled, completed - 1)
        self.writer.flush()

    def screened(self, completed: int, count: int) -> None:
        """Genomes the predictor screen withdrew untrained over the run, at the `completed`-th step's index."""
        self.writer.add_scalar("search/screened", count, completed - 1)
        self.writer.flush()

    def hypervolume(self, value: float, evaluations: int) -> None:
        """The front's normalised hypervolume after `evaluations` evaluations (it changed); flushed with the
        step's scalars."""
        self.writer.add_scalar("search/hypervolume", value, evaluations)

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
