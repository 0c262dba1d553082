"""`summary.md`: the search in words and tables, for a README, a wiki page or a pull request.

Sections: what ran (config, strategy, seed, objective, dataset); its cost (evaluations by status, steps, wall
hours over all sessions up to the last checkpoint, and summed training hours, which exceed the wall time when
workers run in parallel; a run stopped between checkpoints, by a signal or a kill, also says how many
evaluations finished after its last one, since their time is not in the wall time); the best network, with
the commands that export it, evaluate it by the dataset's protocol (`--cv loco` on BBBC021) and retrain it;
the top 10 (ranked as `nas export --rank` counts, so row K is what `--rank K` exports); the Pareto front; the
failures with their errors; the arms side by side when there is something to compare with (the transfer arm
run in the same run directory by `nas baseline --run-dir`, or the best network retrained into
`RUN_DIR/retrained`); and the figures. Numbers are printed so that they can be read
back: fitness with 4 decimals, params and FLOPs as plain integers with thousands separators.
"""

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from nas.data.folds import cv_protocol
from nas.evaluate.result import Result
from nas.report.arms import ArmRow, arm_rows
from nas.report.context import ReportContext
from nas.report.pareto import pareto_front
from nas.run.runlog import per_candidate
from nas.run.snapshot import RunSnapshot

TOP = 10
MAX_FAILURES = 20
ERROR_CHARS = 160
FIGURES = (
    ("progress.png", "Search progress"),
    ("pareto.png", "Accuracy against size"),
    ("best.png", "Best architecture"),
)


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def integer(value: int | None) -> str:
    return f"{value:,}" if value is not None else "-"


def fitness(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def shape(result: Result) -> str:
    """Blocks as `layers x growth [shortcuts on/bits]`, e.g. `4x12 [7/10] · 3x8 [2/6]`."""
    blocks = result.genome.get("blocks", [])
    return " · ".join(
        f"{b['layers']}x{b['growth_rate']} [{b['shortcuts'].count('1')}/{len(b['shortcuts'])}]" for b in blocks
    )


def header(ctx: ReportContext) -> list[str]:
    config, snap = ctx.snapshot.config, ctx.snapshot
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    encoding = Path(config.encoding).name if config.encoding else "-"
    return [
        f"# Search report: {config.name}",
        "",
        f"Run directory `{snap.run.path.resolve().name}`, strategy **{ctx.strategy}**, seed {snap.seed}, "
        f"{config.fitness.objective} objective on the `{config.dataset.name}` dataset, search space `{encoding}`. "
        f"Generated {now} by `nas report`.",
    ]


def cost(ctx: ReportContext) -> list[str]:
    snap = ctx.snapshot
    candidates = per_candidate(snap.results)  # under search.fidelity the log has a line a rung
    status = Counter(r.status for r in candidates)
    trained = sum(r.seconds for r in snap.results)
    budget = snap.config.search.budget
    limits = [
        f"{budget.evaluations:,} evaluations" if budget.evaluations is not None else "",
        f"{budget.hours:g} hours" if budget.hours is not None else "",
    ]
    rows = [
        [
            "evaluations",
            f"{len(candidates):,} ({status['ok']:,} ok, {status['failed']:,} failed, "
            f"{status['timeout']:,} timed out)",
        ],
        *rung_row(snap),
        ["steps", f"{snap.step:,} completed"],
        *pending_row(snap),
        ["wall time", f"{snap.elapsed_seconds / 3600:.3f} h (all sessions, up to the last checkpoint)"],
        ["training time", f"{trained / 3600:.3f} h (summed over evaluations)"],
        ["budget", " and ".join(x for x in limits if x)],
    ]
    return ["## Cost", "", *table(["", ""], rows)]


def rung_row(snap: RunSnapshot) -> list[list[str]]:
    """Under `search.fidelity`: the promotions, each a line of its own in the log beside a first rung."""
    fidelity = snap.config.search.fidelity
    if fidelity is None:
        return []
    promoted = sum(1 for r in snap.results if (r.epochs or 0) > fidelity.min_epochs and not r.transient)
    return [["promotions", f"{promoted:,} rungs trained beyond the first ({len(snap.results):,} log lines)"]]


def pending_row(snap: RunSnapshot) -> list[list[str]]:
    """Evaluations that finished after the last checkpoint, whose time its wall time does not hold.

    The checkpoint counts the log's finished evaluations when it is written (`evaluations`), so the difference
    is exactly what came after it: none for a run that ended with a checkpoint, some for one stopped between
    two (a signal, a kill, a crash). A step number cannot tell them apart: a step cut short by a budget is
    checkpointed without being told, so its evaluations carry the checkpoint's own step though their time is
    in the wall time.
    """
    finished = sum(1 for r in per_candidate(snap.results) if not r.transient)
    counted = snap.state.evaluations
    pending = finished - counted if counted is not None else 0
    if pending <= 0:
        return []
    noun = "evaluation" if pending == 1 else "evaluations"
    return [["since the last checkpoint", f"{pending:,} {noun} finished after it (their time is not in the wall time)"]]


def best_section(ctx: ReportContext) -> list[str]:
    snap = ctx.snapshot
    if not snap.best_first:
        return ["## Best architecture", "", "No evaluation succeeded, so there is no best architecture yet."]
    best = snap.best_first[0]
    run = snap.run.path
    train = f"nas train {run}/export/architecture.yaml --config {run}/config.yaml"
    cv = cv_protocol(snap.config.dataset.name)
    evaluate = f"evaluate it by the dataset's protocol with `{train} --cv {cv} --save {run}/{cv}`, " if cv else ""
    return [
        "## Best architecture",
        "",
        f"Validation accuracy **{fitness(best.fitness)}** with {integer(best.params)} parameters and "
        f"{integer(best.flops)} FLOPs, evaluated at step {best.step}; blocks {shape(best)}; genome `{best.key}`.",
        "",
        f"Export it with `nas export {run}` (TorchScript and `architecture.yaml`), then {evaluate}"
        f"retrain it with `{train} --full --save {run}/retrained`.",
    ]


def top_section(ctx: ReportContext) -> list[str]:
    ranked = ctx.snapshot.best_first
    header_row = ["rank", "fitness", "params", "FLOPs", "seconds", "step", "blocks (layers x growth [on/bits])", "key"]
    rows = [
        [
            str(i),
            fitness(r.fitness),
            integer(r.params),
            integer(r.flops),
            f"{r.seconds:.1f}",
            str(r.step),
            shape(r),
            f"`{r.key[:12]}`",
        ]
        for i, r in enumerate(ranked[:TOP], start=1)
    ]
    title = f"## Top {min(TOP, len(ranked))} of {len(ranked)} ok evaluations"
    return [title, "", *table(header_row, rows)] if rows else [title, "", "None."]


def front_section(ctx: ReportContext) -> list[str]:
    front = pareto_front(ctx.snapshot.results)
    if not front:
        return []
    rows = [[integer(r.params), fitness(r.fitness), integer(r.flops), shape(r), f"`{r.key[:12]}`"] for r in front]
    intro = "Each is the most accurate network the run evaluated at its size or smaller (smallest first)."
    return ["## Pareto front", "", intro, "", *table(["params", "fitness", "FLOPs", "blocks", "key"], rows)]


def failures_section(ctx: ReportContext) -> list[str]:
    failed = ctx.snapshot.failures
    lines = ["## Failures", ""]
    if not failed:
        return lines + ["None: every evaluation finished."]
    lines.append(f"{len(failed)} of {len(ctx.snapshot.results)} evaluations failed or timed out.")
    kinds = Counter(first_line(r.error) for r in failed)
    lines += ["", *table(["count", "error"], [[str(n), error] for error, n in kinds.most_common()])]
    rows = [
        [str(r.step), r.status, str(r.attempts), r.worker or "-", f"`{r.key[:12]}`", first_line(r.error)]
        for r in failed[:MAX_FAILURES]
    ]
    lines += ["", *table(["step", "status", "attempts", "worker", "key", "error"], rows)]
    if len(failed) > MAX_FAILURES:
        lines.append(f"\n... and {len(failed) - MAX_FAILURES} more (see evaluations.jsonl).")
    return lines


def first_line(error: str | None) -> str:
    text = (error or "no error recorded").strip().splitlines()[0] if (error or "").strip() else "no error recorded"
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def arms_section(ctx: ReportContext) -> list[str]:
    rows = arm_rows(ctx.snapshot)
    if len(rows) < 2:  # the search's own validation figure alone compares with nothing
        return []
    body = [[r.arm, r.model, integer(r.params), fitness(r.accuracy), r.metric, paper(r)] for r in rows]
    header_row = ["arm", "model", "params", "accuracy", "metric", "paper (Kensert et al. 2019)"]
    return ["## Arms side by side", "", *table(header_row, body)]


def paper(row: ArmRow) -> str:
    return fitness(row.paper) if row.paper is not None else "-"


def figures(ctx: ReportContext) -> list[str]:
    lines = ["## Figures", ""]
    for name, title in FIGURES:
        lines += [f"![{title}]({name})", ""]
    if ctx.several_objectives:
        lines += ["![Hypervolume of the front](hypervolume.png)", ""]
    return lines


def render_summary(ctx: ReportContext) -> str:
    """The whole `summary.md`."""
    parts = [
        header(ctx),
        cost(ctx),
        best_section(ctx),
        top_section(ctx),
        front_section(ctx),
        failures_section(ctx),
        arms_section(ctx),
        figures(ctx),
    ]
    return "\n\n".join("\n".join(p) for p in parts if p).rstrip() + "\n"


def write_summary(ctx: ReportContext, folder: Path) -> Path:
    path = folder / "summary.md"
    path.write_text(render_summary(ctx), encoding="utf-8")
    return path
