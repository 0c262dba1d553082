"""`hypervolume.png` (a search with several objectives): the front's hypervolume against the evaluations spent.

The hypervolume is the share of the objective box the front dominates, normalised as `RUN_DIR/pareto.json`
normalises it (`nas.strategies.pareto.normalised_hypervolume`): each result maps to (fitness, 1 - cost / largest
cost, ...) and the reference point is fitness 0 with every cost at its largest, so the value lies in [0, 1] and
runs over the same space compare. The largest params and FLOPs are those of the space's largest network (as the
search measured its own front, so the curve ends at pareto.json's value); a measured cost (latency) has no
analytic largest, so the largest measured in the run stands in, and the figure states the reference point it
used. The front after k evaluations is that of the first k candidates of the log (each at the highest rung it
had reached then), drawn at up to `POINTS` evenly spaced k.
"""

import math
from collections.abc import Sequence
from pathlib import Path

from nas.errors import UserError
from nas.evaluate.result import Result
from nas.genome.space import load_space
from nas.model.analytic_cost import analytic_cost
from nas.report import style
from nas.report.context import ReportContext
from nas.report.pareto import human_count
from nas.run.loop import architecture_of
from nas.run.pareto_file import front_of
from nas.strategies import pareto

NAME = "hypervolume.png"
POINTS = 200
ANALYTIC = ("params", "flops")


def largest_costs(ctx: ReportContext) -> tuple[list[float], list[str]]:
    """The largest value of each cost objective (the reference point), and a phrase per cost saying where it
    comes from."""
    snapshot = ctx.snapshot
    analytic: dict[str, float] = {}
    encoding = snapshot.config.encoding
    try:
        genome = load_space(encoding).largest_genome() if encoding is not None else None
    except (UserError, OSError):
        genome = None  # the search space file is gone: the largest measured value stands in
    if genome is not None:
        params, flops = analytic_cost(architecture_of(snapshot.base, genome.to_dict(), {}))
        analytic = {"params": float(params), "flops": float(flops)}
    largest, sources = [], []
    for name in ctx.objectives[1:]:
        if name in analytic:
            largest.append(analytic[name])
            sources.append(f"{name} {human_count(analytic[name])} (the space's largest network)")
            continue
        seen = [v for r in snapshot.results if r.ok and (v := pareto.cost_of(r, name)) is not None]
        value = max(seen, default=1.0) or 1.0
        largest.append(value)
        sources.append(f"{name} {human_count(value)} (the largest measured)")
    return largest, sources


def hypervolume_curve(results: Sequence[Result], objectives: Sequence[str], largest: Sequence[float],
                      points: int = POINTS) -> list[tuple[int, float]]:  # fmt: skip
    """(evaluations, normalised hypervolume of the front of the first that many candidates), at up to `points`
    evenly spaced counts of candidates, the last one included."""
    first: dict[str, int] = {}
    for index, r in enumerate(results):
        first.setdefault(r.key, index)
    ends = sorted(first.values())  # the line index at which each candidate is first seen
    total = len(ends)
    drawn = min(points, total)
    counts = sorted({math.ceil(total * (i + 1) / drawn) for i in range(drawn)})
    curve = []
    for count in counts:
        end = ends[count] if count < total else len(results)  # the lines before the (count+1)-th candidate's first
        front = front_of(results[:end], objectives)
        vectors = [pareto.objective_vector(r, objectives) for r in front]
        curve.append((count, pareto.normalised_hypervolume(vectors, largest)))
    return curve


def draw_hypervolume(ctx: ReportContext, folder: Path) -> Path:
    """Draw and save `hypervolume.png` into `folder`."""
    largest, sources = largest_costs(ctx)
    curve = hypervolume_curve(ctx.snapshot.results, ctx.objectives, largest)
    fig = style.new_figure(NAME)
    ax = fig.add_subplot()
    if curve:
        ax.step([c for c, _ in curve], [h for _, h in curve], where="post", color=style.FRONT, lw=2.5,
                label=f"front of the evaluations so far (final {curve[-1][1]:.4f})")  # fmt: skip
        ax.legend(loc="lower right", framealpha=0.9)
    ax.set_ylim(bottom=0)
    ax.set_title(f"Hypervolume of the front ({', '.join(ctx.objectives)}): {ctx.title}\n"
                 f"reference point: fitness 0, {', '.join(sources)}")  # fmt: skip
    ax.set_xlabel("evaluations (candidates)")
    ax.set_ylabel("normalised hypervolume (higher is better)")
    return style.save_figure(fig, folder, NAME)
