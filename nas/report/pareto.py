"""`pareto.png`: validation accuracy against size for every evaluated network, with the Pareto front.

A network is on the front when no other evaluated network is at least as accurate with fewer parameters: the
front is the menu of trade-offs a user picks from when the best network is too big for their hardware. The
front is drawn as a staircase (the accuracy reachable at each parameter budget). Points are coloured by the
step that evaluated them, so the figure also shows where the search spent its time as it went on. Failed
evaluations have no accuracy and are counted in the title instead.

A search with several objectives (`search.objectives`) draws its own objectives instead: one panel per cost
(parameters, FLOPs, latency), accuracy against that cost for every candidate (at its highest rung), with the
members of the run's front (`RUN_DIR/pareto.json`, non-dominated in all objectives at once) ringed; with a single
cost the front is also drawn as its staircase.
"""

from pathlib import Path

from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from nas.evaluate.result import Result
from nas.report import style
from nas.report.context import ReportContext
from nas.run.pareto_file import front_of
from nas.run.runlog import per_candidate
from nas.strategies import pareto

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


COST_LABELS = {"params": "parameters", "flops": "FLOPs", "latency_ms": "latency, ms (batch 1)"}


def draw_front(ctx: ReportContext, folder: Path) -> Path:
    """`pareto.png` of a search with several objectives (module docstring)."""
    objectives = ctx.objectives
    candidates = [r for r in per_candidate(ctx.snapshot.results) if r.ok and r.fitness is not None]
    front = front_of(candidates, objectives)
    costs = objectives[1:]
    fig = style.new_figure(NAME)
    axes = fig.subplots(1, len(costs), squeeze=False)[0]
    for ax, name in zip(axes, costs, strict=True):
        shown = [(v, r) for r in candidates if (v := pareto.cost_of(r, name)) is not None]
        if shown:
            steps = [r.step if r.step is not None else 0 for _, r in shown]
            ax.scatter([v for v, _ in shown], [r.fitness for _, r in shown], c=steps, cmap="viridis", s=30,
                       alpha=0.7, edgecolors="none", label="one evaluated network", zorder=2)  # fmt: skip
        ends = [(pareto.cost_of(r, name), r.fitness) for r in front]
        if len(costs) == 1 and ends:
            ordered = sorted(ends)
            xs = [x for x, _ in ordered] + [max(v for v, _ in shown)]
            ax.step(xs, [y for _, y in ordered] + [ordered[-1][1]], where="post", color=style.FRONT, lw=2.5, zorder=3)
        ax.scatter([x for x, _ in ends], [y for _, y in ends], s=90, color=style.FRONT, edgecolors="black", lw=1,
                   label=f"Pareto front ({len(front)} networks)", zorder=4)  # fmt: skip
        if name in ("params", "flops") and shown and min(v for v, _ in shown) > 0:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(human_count))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, p: ""))
        ax.set_xlabel(f"{COST_LABELS.get(name, name)} (fewer is better)")
        ax.set_ylabel("validation accuracy (higher is better)")
        ax.legend(loc="best", framealpha=0.9)
    failed = len(ctx.snapshot.failures)
    note = f"{len(candidates)} networks, front over {', '.join(objectives)}"
    fig.suptitle(f"Accuracy against cost: {ctx.title}\n{note}" + (f", {failed} failed not shown" if failed else ""))
    return style.save_figure(fig, folder, NAME)


def draw_pareto(ctx: ReportContext, folder: Path) -> Path:
    """Draw and save `pareto.png` into `folder` (by the run's objectives when it has several)."""
    if ctx.several_objectives:
        return draw_front(ctx, folder)
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
