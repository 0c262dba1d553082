"""The progress a log can follow (nas.run.monitor): a step line per step at INFO, a candidate line per finished
candidate with `-v`, on stderr that is not a terminal, with the best the summary and the best file give."""

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import run_nas

from nas.cli import build_parser
from nas.evaluate.result import Result
from nas.run.monitor import candidate_line

STEP = re.compile(
    r"INFO step (\d+): evaluations (\d+)/(\d+), step best (\S+), best so far (\S+?)(, cut short)?$", re.MULTILINE
)
CANDIDATE = re.compile(r"DEBUG candidate ([0-9a-f]{12}): fitness (\S+), params (\d+), seconds (\S+)$", re.MULTILINE)
SUMMARY_BEST = re.compile(r"^best fitness (\S+)  params \d+  key ([0-9a-f]{12})$", re.MULTILINE)


def search(run: Path, budget: int, *flags: str, mode: str = "sync", verbose: str = ""):
    """The smoke search with batches of 12 (`search.pso.swarm_size=4` times 3 particles' GA population);
    `verbose` is where `-v` goes: before the subcommand, after it, or nowhere."""
    sets = [f"search.budget.evaluations={budget}", "search.pso.swarm_size=4", f"search.mode={mode}"]
    args = [*(["-v"] if verbose == "before" else []), "search", *(["-v"] if verbose == "after" else [])]
    args += ["search_configs/smoke.yaml", "--run-dir", str(run), "--workers", "0"]
    for item in sets:
        args += ["--set", item]
    proc = run_nas(*args, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def logged(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines() if line.strip()]


def best_of(lines: list[dict]) -> str:
    return f"{max(r['fitness'] for r in lines if r['status'] == 'ok'):.4f}"


def check_best_agrees(run: Path, stdout: str, last_best: str) -> None:
    """The last step line's best so far is the log's best, the summary's and the best file's."""
    summary = SUMMARY_BEST.search(stdout)
    assert summary is not None, stdout
    provenance = yaml.safe_load((run / "best" / "architecture.yaml").read_text())["provenance"]
    assert last_best == best_of(logged(run)) == summary.group(1) == f"{provenance['fitness']:.4f}"
    assert summary.group(2) == provenance["key"][:12]


@pytest.mark.parametrize("budget", [12, 30])  # one whole batch; a last batch cut short
def test_one_step_line_per_step_counting_up_to_the_budget_with_the_runs_best(tmp_path, budget):
    run = tmp_path / "run"
    proc = search(run, budget)
    steps = STEP.findall(proc.stderr)
    assert steps, proc.stderr
    assert [int(s[0]) for s in steps] == list(range(len(steps)))  # numbered from 0, one line each
    done = [int(s[1]) for s in steps]
    assert done == sorted(done) and done[-1] == budget and {int(s[2]) for s in steps} == {budget}
    completed = int(re.search(r"(\d+) steps completed", proc.stdout).group(1))
    cut_short = [bool(s[5]) for s in steps]
    assert cut_short == [False] * completed + [True] * (len(steps) - completed)  # only a last step is cut short
    assert (budget == 30) == cut_short[-1]
    lines = logged(run)
    for step_best, best_so_far, evaluations in zip((s[3] for s in steps), (s[4] for s in steps), done, strict=True):
        assert best_so_far == best_of(lines[:evaluations])  # the best of the log up to then
        assert float(step_best) <= float(best_so_far)
    check_best_agrees(run, proc.stdout, steps[-1][4])
    assert "step " not in proc.stdout and "candidate " not in proc.stderr  # stdout is the summary; no -v


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_adds_one_line_per_finished_candidate(tmp_path, where):
    run = tmp_path / "run"
    proc = search(run, 24, verbose=where)
    candidates = CANDIDATE.findall(proc.stderr)
    lines = logged(run)
    assert len(candidates) == 24
    assert [c[0] for c in candidates] == [r["key"][:12] for r in lines]  # in the log's order
    assert [c[1] for c in candidates] == [f"{r['fitness']:.4f}" for r in lines]
    assert [int(c[2]) for c in candidates] == [r["params"] for r in lines]
    assert int(STEP.findall(proc.stderr)[-1][1]) == 24  # the step lines stay


def test_async_step_lines_show_the_same_best(tmp_path):
    run = tmp_path / "run"
    proc = search(run, 24, mode="async")
    steps = STEP.findall(proc.stderr)
    assert steps, proc.stderr
    assert int(steps[-1][1]) == 24
    check_best_agrees(run, proc.stdout, steps[-1][4])


def test_json_stdout_is_untouched_by_verbose():
    """`--json` still prints one JSON object on stdout; log lines go to stderr."""
    proc = run_nas("-v", "inspect", "encodings/densenet_small.yaml", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kind"] == "search-space"


def test_a_failed_candidate_line_has_its_status_and_the_first_line_of_its_error():
    result = Result.failure("ab" * 32, {}, "RuntimeError: boom\n  at somewhere\n", status="oom")
    assert candidate_line(result) == "candidate abababababab: oom, params None, seconds 0.00, error RuntimeError: boom"
    ok = Result(key="cd" * 32, genome={}, status="ok", fitness=0.5, params=10, seconds=1.234, epochs=3)
    assert candidate_line(ok) == "candidate cdcdcdcdcdcd: fitness 0.5000, params 10, seconds 1.23, epochs 3"


@pytest.mark.parametrize(
    "argv",
    [["-v", "search", "c"], ["search", "-v", "c"], ["search", "c", "--verbose"], ["data", "summary", "c", "-v"]],
)
def test_verbose_before_or_after_the_subcommand(argv):
    assert build_parser().parse_args(argv).verbose is True


def test_not_verbose_by_default():
    assert build_parser().parse_args(["search", "c"]).verbose is False
