"""What a search with several objectives leaves for its user: `nas export --pareto` (a folder per member of the
front), `nas report` (the front over the run's objectives and the hypervolume against evaluations), the
TensorBoard scalar `search/hypervolume`, and `nas.Run.front()`."""

import json
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from conftest import ROOT
from test_fidelity_search import cli

from nas.api import Run
from nas.report.context import ReportContext
from nas.report.hypervolume import hypervolume_curve, largest_costs
from nas.report.style import SIZES, SOME_RUNS_SIZES
from nas.run.snapshot import load_snapshot


def synthetic_config(folder: Path, objectives: list[str] | None, name: str) -> Path:
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["search"]["budget"] = {"evaluations": 48}
    if objectives is not None:
        data["search"]["objectives"] = objectives
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A two-objective run (fitness, params), a three-objective one with latency, and a single-objective one."""
    folder = tmp_path_factory.mktemp("pareto-outputs")
    out = {}
    for name, objectives in (("two", ["fitness", "params"]), ("latency", ["fitness", "flops", "latency_ms"]),
                             ("single", None)):  # fmt: skip
        run = folder / name
        outcome = cli("search", str(synthetic_config(folder, objectives, f"{name}.yaml")), "--run-dir", str(run),
                      "--workers", "0")  # fmt: skip
        assert outcome.code == 0 and outcome.exception is None, (outcome.stderr[-2000:], outcome.exception)
        out[name] = run
    return out


def front_file(run: Path) -> dict:
    return json.loads((run / "pareto.json").read_text())


def test_run_front_is_pareto_json_and_empty_for_one_objective(runs):
    assert Run(runs["two"]).front() == front_file(runs["two"])["front"] and len(Run(runs["two"]).front()) > 1
    assert Run(runs["latency"]).front()[0]["latency_ms"] > 0
    assert Run(runs["single"]).front() == []


def test_the_hypervolume_scalar_follows_pareto_json_and_is_written_when_it_changes(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(runs["two"] / "tensorboard"))
    events.Reload()
    points = events.Scalars("search/hypervolume")
    assert points[-1].value == pytest.approx(front_file(runs["two"])["hypervolume"], rel=1e-6)
    assert all(a.value != b.value for a, b in zip(points, points[1:], strict=False)), "only when it changes"
    assert points[-1].step <= 48 and [p.step for p in points] == sorted(p.step for p in points)
    for name in ("single", "latency"):  # one objective; a measured cost has no analytic reference
        scalars = EventAccumulator(str(runs[name] / "tensorboard"))
        scalars.Reload()
        assert "search/hypervolume" not in scalars.Tags()["scalars"]


def test_export_pareto_writes_a_folder_per_member_by_rank_and_key(runs, tmp_path):
    run = runs["two"]
    out = tmp_path / "front"
    outcome = cli("export", str(run), "--pareto", "--out", str(out))
    assert outcome.code == 0, outcome.stderr[-2000:]
    members = front_file(run)["front"]
    assert sorted(p.name for p in out.iterdir()) == [f"{i:02d}-{m['key'][:12]}" for i, m in enumerate(members, 1)]
    for i, member in enumerate(members, 1):
        folder = out / f"{i:02d}-{member['key'][:12]}"
        assert sorted(p.name for p in folder.iterdir()) == ["architecture.yaml"], "synthetic: architecture only"
        provenance = yaml.safe_load((folder / "architecture.yaml").read_text())["provenance"]
        assert (provenance["key"], provenance["front_rank"], provenance["params"]) == (member["key"], i,
                                                                                        member["params"])  # fmt: skip
    assert cli("export", str(run), "--pareto").code == 0
    assert cli("export", str(run), "--pareto").code == 0, "the default folder is refreshed"
    assert len(list((run / "export").iterdir())) == len(members)
    single = cli("export", str(runs["single"]), "--pareto")
    assert single.code == 2 and "one objective" in single.stderr


@pytest.mark.full
def test_report_draws_the_front_and_the_hypervolume_against_evaluations(runs):
    for name in ("two", "latency"):
        run = runs[name]
        assert cli("report", str(run)).code == 0
        for figure, (width, height) in {**SIZES, **SOME_RUNS_SIZES}.items():
            pixels = matplotlib.image.imread(run / "report" / figure)
            assert pixels.shape[:2] == (height, width) and pixels.std() > 0.05, figure
        assert "hypervolume.png" in (run / "report" / "summary.md").read_text()
    ctx = ReportContext(load_snapshot(runs["two"]))
    largest, sources = largest_costs(ctx)
    curve = hypervolume_curve(ctx.snapshot.results, ctx.objectives, largest)
    assert curve[-1] == (48, pytest.approx(front_file(runs["two"])["hypervolume"]))
    assert "the space's largest network" in sources[0]
    assert [c for c, _ in curve] == list(range(1, 49))
    three = ReportContext(load_snapshot(runs["latency"]))
    assert "the largest measured" in largest_costs(three)[1][1]
    assert cli("report", str(runs["single"])).code == 0
    assert not (runs["single"] / "report" / "hypervolume.png").exists()


@pytest.mark.full
def test_export_pareto_gives_the_member_with_kept_weights_a_model_and_the_others_their_architecture(tmp_path):
    """A real (tiny) digits search with two objectives: the best member, whose weights the run kept, exports a
    model; every other member of the front its architecture alone."""
    data = yaml.safe_load((ROOT / "search_configs/digits_quick.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["dataset"].update({"train_subset": 0.2, "validation_fraction": 0.2})
    data["fitness"].update({"epochs": 1, "device": "cpu"})
    data["search"].update({"objectives": ["fitness", "params"], "budget": {"evaluations": 8},
                           "pso": {"swarm_size": 2}, "ga": {"population": 4, "generations": 2, "tournament_size": 2,
                                                            "elitism": 1}})  # fmt: skip
    cfg = tmp_path / "digits.yaml"
    cfg.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    outcome = cli("search", str(cfg), "--run-dir", str(run), "--workers", "0")
    assert outcome.code == 0 and outcome.exception is None, (outcome.stderr[-2000:], outcome.exception)
    assert cli("export", str(run), "--pareto").code == 0
    best = yaml.safe_load((run / "best/architecture.yaml").read_text())["provenance"]["key"]
    members = front_file(run)["front"]
    assert members[0]["key"] == best
    for i, member in enumerate(members, 1):
        files = sorted(p.name for p in (run / "export" / f"{i:02d}-{member['key'][:12]}").iterdir())
        expected = ["architecture.yaml", "model.pt2", "preprocess.json"] if member["key"] == best else [
            "architecture.yaml"]  # fmt: skip
        assert files == expected, (i, files)
