"""`nas report` through the real command line: a smoke search (synthetic objective) and a real digits search."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import pytest
from conftest import ROOT, run_nas

from nas.config import parse_config
from nas.evaluate.result import Result
from nas.export import Exported, describe
from nas.genome.genome import BlockGene, Genome
from nas.report.best import CHAIN, NOT_A_LINK, OFF, ON, link_matrix
from nas.report.context import ReportContext
from nas.report.pareto import pareto_front
from nas.report.progress import progress_of
from nas.report.style import SIZES
from nas.report.summary import best_section, pending_row
from nas.run.runlog import ranked, read_results
from nas.run.snapshot import RunSnapshot, load_snapshot
from nas.run.state import RunState
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
    """A real search with training (2 evaluations of the quickstart config, 1 epoch on a third of the images),
    paused by --max-evaluations."""
    cheap = ("--set", "fitness.epochs=1", "--set", "dataset.train_subset=0.3")
    run = search("digits_quick.yaml", tmp_path / "digits", "--max-evaluations", "2", *cheap)
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


def tensorboard_steps(run: Path) -> dict[str, list[int]]:
    """The steps each search scalar was written at, in order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_steps_are_numbered_from_0_in_the_log_tensorboard_and_the_report(smoke_run):
    """The smoke search's budget (200) cuts its last batch short: every place a person reads a step number
    numbers the steps from 0, as the log does, the cut-short one included."""
    snap = load_snapshot(smoke_run)
    logged = sorted({r.step for r in snap.results})
    assert logged == list(range(snap.step + 1))  # the told steps, then the one the budget cut short
    steps = tensorboard_steps(smoke_run)
    assert steps["search/best_fitness"] == logged  # the cut-short step's best too, at its own index
    for tag in ("search/mean_fitness", "search/failures", "search/repeats_avoided", "search/unfilled"):
        assert steps[tag] == list(range(snap.step)), tag  # the told steps only
    assert progress_of(snap.results).step_ids == logged
    best = snap.best_first[0]
    text = "\n".join(best_section(ReportContext(snap)))
    assert f"evaluated at step {best.step};" in text and best.step in logged


def snapshot_of(results: list[Result], checkpoint: dict, dataset: str = "digits") -> RunSnapshot:
    """A snapshot built by hand: a run directory only in name."""
    config = parse_config({"name": "x", "dataset": {"name": dataset}})
    run = SimpleNamespace(path=Path("runs/x"))
    full = {"strategy": {}, "architecture_base": {}, "config_sha256": "", **checkpoint}
    return RunSnapshot(run, config, results, RunState.from_dict(full), ranked(results))  # type: ignore[arg-type]


def test_cost_names_only_evaluations_that_finished_after_the_last_checkpoint():
    results = [result(k, 0.5, 1, 0) for k in "abc"] + [result(k, 0.6, 1, 1) for k in "de"]
    # a run that ended with a checkpoint counting every evaluation (finished, or paused at a checkpoint): no row,
    # whatever the steps its last lines carry (a step cut short by the budget is checkpointed, never told)
    assert pending_row(snapshot_of(results, {"step": 1, "evaluations": 5})) == []
    assert pending_row(snapshot_of(results, {"step": 2, "evaluations": 5})) == []
    # stopped between two checkpoints (a signal, a kill): the evaluations after the last one, whatever their step
    ((label, text),) = pending_row(snapshot_of(results, {"step": 1, "evaluations": 3}))
    assert label == "since the last checkpoint"
    assert text == "2 evaluations finished after it (their time is not in the wall time)"
    oom = Result(key="f", genome={}, status="oom", fitness=None, error="out of memory", step=1)
    assert "1 evaluation finished" in pending_row(snapshot_of([*results, oom], {"step": 1, "evaluations": 4}))[0][1]
    assert pending_row(snapshot_of(results, {"step": 1})) == []  # a checkpoint that counts nothing says nothing


def test_next_steps_include_the_evaluation_the_dataset_prescribes(tmp_path):
    """BBBC021's protocol is leave-one-compound-out: the report and `nas export` both suggest `--cv loco`
    beside the plain retraining; a dataset without a protocol gets the retraining alone."""
    results = [result("a", 0.5, 1, 0)]
    cells = "\n".join(best_section(ReportContext(snapshot_of(results, {"step": 1}, dataset="bbbc021"))))
    assert "--config runs/x/config.yaml --cv loco --save runs/x/loco`" in cells
    assert "--full --save runs/x/retrained`" in cells
    plain = "\n".join(best_section(ReportContext(snapshot_of(results, {"step": 1}))))
    assert "--cv" not in plain and "--full --save runs/x/retrained`" in plain

    provenance = {"rank": 1, "run": "x", "fitness": 0.5, "params": 10, "key": "a" * 64}
    exported = Exported(SimpleNamespace(provenance=provenance), {"architecture.yaml": tmp_path / "e/architecture.yaml"})
    for dataset, cv in (("bbbc021", "loco"), ("bbbc014", "cell-line"), ("digits", None)):
        (tmp_path / "config.yaml").write_text(json.dumps({"name": "x", "dataset": {"name": dataset}}))
        lines = describe(tmp_path, exported).splitlines()  # type: ignore[arg-type]
        evaluate = [line for line in lines if line.startswith("evaluate with")]
        train = f"nas train {tmp_path / 'e/architecture.yaml'} --config {tmp_path / 'config.yaml'}"
        assert evaluate == ([f"evaluate with {train} --cv {cv} --save {tmp_path / cv}"] if cv else []), dataset
        assert f"retrain with  {train} --full --save {tmp_path / 'retrained'}" in lines
