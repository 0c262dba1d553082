"""`nas report RUN_DIR`: plots and a Markdown summary of a search, under `RUN_DIR/report/`.

Works on a finished, paused or still-running search (it reads a snapshot and never touches the log or the
checkpoint). The folder is written whole and then published in one rename (`nas.stagedir`), so a report is
never half old and half new; running the command again refreshes it, unless someone put other files into
it, which are never deleted (the command refuses instead). `report_command` takes the run directory as a typed
parameter (`nas.cli` passes the parsed one), so Python code calls it directly, without the command line's parser.
"""

from pathlib import Path

from nas.report.best import draw_best
from nas.report.context import ReportContext
from nas.report.hypervolume import draw_hypervolume
from nas.report.pareto import draw_pareto
from nas.report.progress import draw_progress
from nas.report.style import SIZES, SOME_RUNS_SIZES, figure_style
from nas.report.summary import write_summary
from nas.run.snapshot import load_snapshot
from nas.stagedir import staged_directory

REPORT_DIR = "report"
SUMMARY = "summary.md"
REPORT_FILES = (*SIZES, *SOME_RUNS_SIZES, SUMMARY)


def write_report(run_dir: Path) -> dict[str, Path]:
    """Write the whole report of `run_dir`; returns each file's final path by name (`hypervolume.png` for a
    search with several objectives only)."""
    ctx = ReportContext(load_snapshot(run_dir))
    target = run_dir / REPORT_DIR
    draws = [draw_progress, draw_pareto, draw_best] + ([draw_hypervolume] if ctx.several_objectives else [])
    with staged_directory(target, refreshable=True, owned=REPORT_FILES) as staging, figure_style():
        written = {draw(ctx, staging).name for draw in draws}
        write_summary(ctx, staging)
    return {name: target / name for name in REPORT_FILES if name in written or name == SUMMARY}


def report_command(run_dir: str | Path) -> int:
    """`nas report RUN_DIR`: write the report and print where each file is; returns 0."""
    files = write_report(Path(run_dir))
    lines = [f"report of {run_dir}"] + [f"  {name:<13} {path}" for name, path in files.items()]
    print("\n".join(lines), flush=True)
    return 0
