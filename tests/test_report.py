"""`nas report` through the real command line: a smoke search (synthetic objective) and a real digits search."""

import json
import shutil
from pathlib import Path

import matplotlib.image
import pytest
from conftest import ROOT, run_nas

from nas.evaluate.result import Result
from nas.genome.genome import BlockGene, Genome
from nas.report.best import CHAIN, NOT_A_LINK, OFF, ON, link_matrix
from nas.report.pareto import pareto_front
from nas.report.progress import progress_of
from nas.report.style import SIZES
from nas.run.runlog import ranked, read_results
from nas.transfer.results import write_metrics

FILES = ("progress.png", "pareto.png", "best.png", "summary.md")


def search(config: str, run: Path, *extra: str) -> Path:
    out = run_nas("search", str(ROOT / "search_configs" / config), "--run-dir", str(run), "--workers", "0", *extra)
    assert out.returncode == 0, out.stderr
    return run


def report(run: Path) -> Path:
    out = run_nas("report", str(run))
    assert out.returncode == 0, out.stderr
    for name in FILES:
        assert str(run / "report" / name) in out.stdout
    return run / "report"


def summary_best_row(summary: str) -> list[str]:
    """The cells of the top-10 table's rank-1 row."""
    table = summary.split("## Top ", 1)[1]
    row = next(line for line in table.splitlines() if line.startswith("| 1 |"))
    return [c.strip() for c in row.strip("|").split("|")]


def check_report(run: Path, folder: Path) -> None:
    """Every file exists, every PNG decodes at its fixed size, the summary's best row is the log's best."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    for name, (width, height) in SIZES.items():
        pixels = matplotlib.image.imread(folder / name)
        assert pixels.shape[:2] == (height, width), name
        assert pixels.std() > 0.05, f"{name} is blank"
    best = ranked(read_results(run / "evaluations.jsonl"))[0]
    summary = (folder / "summary.md").read_text()
    rank, fitness, params, flops, seconds, step, blocks, key = summary_best_row(summary)
    assert (rank, fitness, params) == ("1", f"{best.fitness:.4f}", f"{best.params:,}")
    assert flops == f"{best.flops:,}" and step == str(best.step)
    assert key.strip("`") == best.key[:12]
    assert f"{len(read_results(run / 'evaluations.jsonl')):,} (" in summary


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    return search("smoke.yaml", tmp_path_factory.mktemp("report") / "smoke")


def test_smoke_report(smoke_run):
    folder = report(smoke_run)
    check_report(smoke_run, folder)
    assert "## Arms side by side" not in (folder / "summary.md").read_text()  # nothing to compare with


def test_report_lists_failures_and_arms_and_refuses_foreign_files(smoke_run, tmp_path):
    copy = Path(shutil.copytree(smoke_run, tmp_path / "run", ignore=shutil.ignore_patterns("report")))
    genome = Genome((BlockGene(2, 4, "000"), BlockGene(1, 4, "0")))
    failure = Result.failure(genome.key, genome.to_dict(), "RuntimeError: CUDA out of memory | tried 2 GiB", step=0)
    with open(copy / "evaluations.jsonl", "a") as log:
        log.write(failure.to_json() + "\n")
    transfer = {
        "arm": "transfer",
        "model": "resnet50",
        "label": "ResNet50 (from-scratch)",
        "params": 23_528_522,
        "accuracy": 0.9123,
        "metric": "accuracy",
        "dataset": "digits",
        "paper_accuracy": None,
    }
    write_metrics(copy, transfer)
    (copy / "retrained").mkdir()
    (copy / "retrained/metrics.json").write_text(json.dumps({"test_accuracy": 0.9567, "full": True}))
    folder = report(copy)
    summary = (folder / "summary.md").read_text()
    failures = summary.split("## Failures", 1)[1].split("\n## ", 1)[0]
    assert "RuntimeError: CUDA out of memory \\| tried 2 GiB" in failures
    assert f"`{genome.key[:12]}`" in failures

    best = ranked(read_results(smoke_run / "evaluations.jsonl"))[0]
    arms = summary.split("## Arms side by side", 1)[1].split("\n## ", 1)[0]
    assert f"| NAS (hgapso) | best found ({best.key[:12]}) | {best.params:,} | {best.fitness:.4f} |" in arms
    assert f"| NAS (hgapso) | best found, retrained | {best.params:,} | 0.9567 | test accuracy |" in arms
    assert "| transfer | ResNet50 (from-scratch) | 23,528,522 | 0.9123 |" in arms

    (folder / "notes.md").write_text("mine")
    out = run_nas("report", str(copy))
    assert out.returncode == 2 and "notes.md" in out.stderr and out.stderr.count("\n") == 1
    assert (folder / "notes.md").read_text() == "mine" and (folder / "summary.md").read_text() == summary


def test_report_of_a_folder_that_is_not_a_run_exits_2(tmp_path):
    out = run_nas("report", str(tmp_path))
    assert out.returncode == 2 and "not a run directory" in out.stderr
    assert not (tmp_path / "report").exists()


@pytest.mark.slow
def test_digits_report(tmp_path):
    """A real search with training (2 evaluations of the quickstart config), paused by --max-evaluations."""
    run = search("digits_quick.yaml", tmp_path / "digits", "--max-evaluations", "2")
    folder = report(run)
    check_report(run, folder)
    assert "train objective on the `digits` dataset" in (folder / "summary.md").read_text()


def result(key: str, fitness: float | None, params: int, step: int) -> Result:
    status = "ok" if fitness is not None else "failed"
    return Result(key=key, genome={}, status=status, fitness=fitness, params=params, step=step)


def test_pareto_front_keeps_only_undominated_networks():
    results = [
        result("a", 0.5, 100, 0),
        result("b", 0.4, 200, 0),
        result("c", 0.7, 300, 1),
        result("d", None, 50, 1),
        result("e", 0.7, 400, 1),
        result("f", 0.9, 1000, 2),
    ]
    assert [r.key for r in pareto_front(results)] == ["a", "c", "f"]


def test_progress_tracks_best_so_far_step_means_and_failures():
    results = [result("a", 0.5, 1, 0), result("b", None, 1, 0), result("c", 0.3, 1, 1), result("d", 0.8, 1, 1)]
    p = progress_of(results)
    assert p.best_fitness == [0.5, 0.5, 0.8] and p.best_x == [1, 3, 4]
    assert p.failed_x == [2]
    assert (p.step_ids, p.step_x) == ([0, 1], [2, 4])
    assert p.step_mean == pytest.approx([0.5, 0.55])


def test_link_matrix_marks_the_chain_apart_from_evolved_bits():
    # 2 layers: bits for (0 -> 2), (0 -> out), (1 -> out) = "101"
    grid = link_matrix(BlockGene(2, 4, "101"))
    assert grid.tolist() == [[CHAIN, ON, OFF], [NOT_A_LINK, CHAIN, ON], [NOT_A_LINK, NOT_A_LINK, CHAIN]]
