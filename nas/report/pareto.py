"""`pareto.png`: validation accuracy against size for every evaluated network, with the Pareto front.

A network is on the front when no other evaluated network is at least as accurate with fewer parameters: the
front is the menu of trade-offs a user picks from when the best network is too big for their hardware. The
front is drawn as a staircase (the accuracy reachable at each parameter budget). Points are coloured by the
step that evaluated them, so the figure also shows where the search spent its time as it went on. Failed
evaluations have no accuracy and are counted in the title instead.
"""

from pathlib import Path

from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from nas.evaluate.result import Result
from nas.report import style
from nas.report.context import ReportContext

NAME = "pareto.png"


def pareto_front(results: list[Result]) -> list[Result]:
    """The ok results no other ok result dominates (fewer or equal params and higher fitness), by size."""
    sized = [r for r in results if r.ok and r.fitness is not None and r.params is not None]
    front: list[Result] = []
    for r in sorted(sized, key=lambda r: (r.params, -(r.fitness or 0.0), r.key)):
        if not front or (r.fitness or 0.0) > (front[-1].fitness or 0.0):
            front.append(r)
    return front


def human_count(value: float, _position: object = None) -> str:
    """10k, 250k, 1.2M: parameter counts as people say them."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def draw_pareto(ctx: ReportContext, folder: Path) -> Path:
    """Draw and save `pareto.png` into `folder`."""
    results = ctx.snapshot.results
    sized = [r for r in results if r.ok and r.fitness is not None and r.params is not None]
    front = pareto_front(results)
    fig = style.new_figure(NAME)
    ax = fig.add_subplot()
    if sized:
        steps = [r.step if r.step is not None else 0 for r in sized]
        points = ax.scatter(
            [r.params for r in sized],
            [r.fitness for r in sized],
            c=steps,
            cmap="viridis",
            vmin=min(steps),
            vmax=max(max(steps), min(steps) + 1),
            s=36,
            alpha=0.8,
            edgecolors="none",
            label="one evaluated network",
            zorder=2,
        )
        bar = fig.colorbar(points, ax=ax, pad=0.01)
        bar.set_label("search step that evaluated it")
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
        xs = [r.params for r in front] + [max(r.params for r in sized if r.params is not None)]
        ys = [r.fitness for r in front] + [front[-1].fitness]
        ax.step(xs, ys, where="post", color=style.FRONT, lw=2.5, zorder=3)
        ax.scatter(
            [r.params for r in front],
            [r.fitness for r in front],
            s=90,
            color=style.FRONT,
            edgecolors="black",
            lw=1,
            label=f"Pareto front ({len(front)} networks)",
            zorder=4,
        )
        best = ctx.snapshot.best_first[0]
        ax.scatter(
            [best.params],
            [best.fitness],
            marker="*",
            s=420,
            color=style.BEST,
            edgecolors="black",
            lw=1,
            label=f"best: {best.fitness:.4f} with {human_count(best.params or 0)} params",
            zorder=5,
        )
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(human_count))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, p: ""))
        ax.legend(loc="best", framealpha=0.9)
    failed = len(ctx.snapshot.failures)
    note = f"{len(sized)} networks" + (f", {failed} failed evaluations not shown" if failed else "")
    ax.set_title(f"Accuracy against size: {ctx.title}\n{note}")
    ax.set_xlabel("parameters (log scale, fewer is better)")
    ax.set_ylabel("validation accuracy (fitness, higher is better)")
    return style.save_figure(fig, folder, NAME)
