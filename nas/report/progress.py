"""`progress.png`: how the search improved, evaluation by evaluation.

The x axis counts evaluations in log order (the order they finished, which is the order the search paid for
them), with the search's steps on a second axis above. Every ok evaluation is a faint dot; the best-so-far
line is what the search had found after that many evaluations; the per-step mean (over the step's ok results)
shows whether the population as a whole moved, not just its luckiest member; failed and timed-out evaluations
are red crosses along the bottom edge, since they have no fitness to plot.
"""

from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes

from nas.evaluate.result import Result
from nas.report import style
from nas.report.context import ReportContext

NAME = "progress.png"
MAX_STEP_LABELS = 12


@dataclass(frozen=True)
class Progress:
    """The series the figure draws, computed from the log alone (1-based evaluation numbers)."""

    ok_x: list[int]
    ok_fitness: list[float]
    best_x: list[int]
    best_fitness: list[float]
    step_x: list[int]
    step_mean: list[float]
    step_ids: list[int]
    failed_x: list[int]


def progress_of(results: list[Result]) -> Progress:
    """Best-so-far, per-step means (plotted at each step's last evaluation) and failures, in log order."""
    ok_x, ok_fit, best_x, best_fit, failed_x = [], [], [], [], []
    step_end: dict[int, int] = {}
    step_values: dict[int, list[float]] = {}
    best = None
    for number, result in enumerate(results, start=1):
        if result.step is not None:
            step_end[result.step] = number
        if not result.ok or result.fitness is None:
            failed_x.append(number)
            continue
        ok_x.append(number)
        ok_fit.append(result.fitness)
        if result.step is not None:
            step_values.setdefault(result.step, []).append(result.fitness)
        best = result.fitness if best is None else max(best, result.fitness)
        best_x.append(number)
        best_fit.append(best)
    steps = sorted(step_values)
    means = [sum(step_values[s]) / len(step_values[s]) for s in steps]
    return Progress(ok_x, ok_fit, best_x, best_fit, [step_end[s] for s in steps], means, steps, failed_x)


def draw_progress(ctx: ReportContext, folder: Path) -> Path:
    """Draw and save `progress.png` into `folder`."""
    p = progress_of(ctx.snapshot.results)
    fig = style.new_figure(NAME)
    ax = fig.add_subplot()
    ax.scatter(p.ok_x, p.ok_fitness, s=18, color=style.POINTS, alpha=0.45, label="one evaluation", zorder=2)
    if p.step_x:
        ax.plot(p.step_x, p.step_mean, "o-", color=style.MEAN, lw=1.8, ms=5, label="mean of each step", zorder=3)
    if p.best_x:
        total = len(ctx.snapshot.results)
        ax.step(
            p.best_x + [total],
            p.best_fitness + p.best_fitness[-1:],
            where="post",
            color=style.BEST,
            lw=3,
            label="best so far",
            zorder=4,
        )
        mark_best(ax, ctx)
    if p.failed_x:
        ax.scatter(
            p.failed_x,
            [0.02] * len(p.failed_x),
            transform=ax.get_xaxis_transform(),
            marker="x",
            s=60,
            color=style.FAILED,
            lw=2,
            label=f"failed or timed out ({len(p.failed_x)})",
            zorder=5,
            clip_on=False,
        )
    ax.set_xlim(0, len(ctx.snapshot.results) + 1)
    ax.margins(y=0.1)
    ax.set_xlabel("evaluations, in the order they finished")
    ax.set_ylabel("validation accuracy (fitness, higher is better)")
    ax.set_title(f"Search progress: {ctx.title}")
    ax.legend(loc="best", framealpha=0.9)
    add_step_axis(ax, p)
    return style.save_figure(fig, folder, NAME)


def mark_best(ax: Axes, ctx: ReportContext) -> None:
    """Label the final best value where the search found it."""
    best = ctx.snapshot.best_first[0]
    number = next(i for i, r in enumerate(ctx.snapshot.results, start=1) if r.key == best.key)
    ax.annotate(
        f"best {best.fitness:.4f} (evaluation {number})",
        xy=(number, best.fitness),
        xytext=(-12, 12),
        textcoords="offset points",
        ha="right",
        va="bottom",
        color=style.BEST,
        fontweight="bold",
    )


def add_step_axis(ax: Axes, p: Progress) -> None:
    """Ticks on top at the end of each step, thinned to at most `MAX_STEP_LABELS` labels."""
    if not p.step_x:
        return
    every = max(1, -(-len(p.step_x) // MAX_STEP_LABELS))
    top = ax.secondary_xaxis("top")
    top.set_xticks(p.step_x[::every], [str(s) for s in p.step_ids[::every]])
    top.set_xlabel("search step (tick at its last evaluation)")
