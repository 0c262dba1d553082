"""The Python API (`nas.search`, `nas.resume`, `nas.Run`): real searches on the synthetic objective, in process,
read back against the run directory's own files."""

import json
import sys

import hypothesis.strategies as st
import pytest
import yaml
from conftest import ROOT
from hypothesis import given

import nas
from nas.api import key_path
from nas.config import apply_overrides, set_at
from nas.errors import UserError
from nas.run.driver import search_command

SMOKE = ROOT / "search_configs" / "smoke.yaml"


def log_lines(run_dir):
    return [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A search of 8 evaluations through the API, by the shipped config's name."""
    return nas.search("smoke", run_dir=tmp_path_factory.mktemp("api") / "run", workers=0,
                      search__budget__evaluations=8)  # fmt: skip


def test_a_search_by_name_runs_its_budget_and_results_are_the_log(small_run):
    assert isinstance(small_run, nas.Run)
    assert small_run.config.search.budget.evaluations == 8
    assert small_run.results() == log_lines(small_run.path)
    assert len(small_run.results()) == 8


def test_best_is_the_top_ok_line_with_the_architecture_the_run_kept(small_run):
    best = small_run.best()
    lines = [line for line in log_lines(small_run.path) if line["status"] == "ok"]
    top = max(lines, key=lambda line: (line["fitness"], -line["params"]))
    assert {k: v for k, v in best.items() if k != "architecture"} == top
    architecture = yaml.safe_load(open(best["architecture"]).read())
    assert best["architecture"] == str(small_run.path / "best" / "architecture.yaml")
    assert architecture["provenance"]["key"] == top["key"]


def test_results_as_a_frame_hold_the_same_records(small_run):
    frame = small_run.results(as_frame=True)
    assert frame.to_dict("records") == small_run.results()


def test_results_as_a_frame_without_pandas_say_so(small_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # what `import pandas` meets where it is not installed
    with pytest.raises(ModuleNotFoundError, match=r"needs pandas.*results\(\) gives the same records as dicts"):
        small_run.results(as_frame=True)


def test_resume_with_a_raised_budget_adds_evaluations(tmp_path):
    run = nas.search(SMOKE, run_dir=tmp_path / "run", workers=0, overrides=["search.budget.evaluations=6"])
    first = log_lines(run.path)
    assert len(first) == 6
    resumed = nas.resume(run.path, budget=10, workers=0)
    assert resumed.config.search.budget.evaluations == 10
    assert len(resumed.results()) == 10 and resumed.results()[:6] == first


def test_a_config_mapping_runs_like_its_file_and_the_caller_keeps_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = yaml.safe_load(SMOKE.read_text())
    kept = json.dumps(data)
    by_mapping = nas.search(data, run_dir="by_mapping", workers=0, search__budget__evaluations=5, seed=3)
    assert json.dumps(data) == kept
    assert search_command(SMOKE, run_dir="by_file", workers=0, seed=3,
                          overrides=["search.budget.evaluations=5"]) == 0  # fmt: skip
    assert (tmp_path / "by_mapping/config.yaml").read_text() == (tmp_path / "by_file/config.yaml").read_text()
    timeless = [{k: v for k, v in line.items() if k != "seconds"} for line in log_lines(tmp_path / "by_file")]
    assert [{k: v for k, v in line.items() if k != "seconds"} for line in by_mapping.results()] == timeless


def test_a_bad_override_key_is_a_user_error_with_its_key_path_and_starts_nothing(tmp_path):
    with pytest.raises(UserError) as err:
        nas.search("smoke", run_dir=tmp_path / "run", workers=0, search__budget__evaluationz=8)
    assert err.value.key == "search.budget.evaluationz"
    assert "search.budget.evaluationz: unknown key (known: evaluations, hours)" in str(err.value)
    assert "(given by keyword search__budget__evaluationz)" in str(err.value)
    with pytest.raises(UserError, match=r"search\.pso\.c1: must be > 0, got 0\.0 \(given by overrides\)"):
        nas.search("smoke", run_dir=tmp_path / "run", workers=0, overrides=["search.pso.c1=0"])
    with pytest.raises(UserError, match="the config mapping: seed: must be an integer"):
        nas.search({"seed": "x"}, run_dir=tmp_path / "run", workers=0)
    with pytest.raises(UserError, match="keyword search____budget: must be KEY__PATH names"):
        nas.search("smoke", run_dir=tmp_path / "run", search____budget=3)
    assert not (tmp_path / "run").exists()


def test_an_unknown_config_name_or_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no shipped config named 'smokey' .*smoke"):
        nas.search("smokey", run_dir=tmp_path / "run")
    with pytest.raises(UserError, match="is not a run directory"):
        nas.Run(tmp_path / "absent")
    with pytest.raises(UserError, match="is not a run directory"):
        nas.resume(tmp_path / "absent")


def test_the_model_functions_are_exposed_and_the_predict_package_still_imports():
    import nas.predict.api as api
    import nas.predict.inputs as inputs

    assert nas.load_model is api.load_model
    assert callable(nas.predict) and nas.predict.inputs is inputs
    with pytest.raises(AttributeError, match="no attribute 'absent'"):
        nas.absent  # noqa: B018


# key names as configs spell them (a single `_` inside), some of them keys the mapping below holds
NAMES = st.sampled_from(["seed", "search", "budget", "evaluations", "batch_size", "x", "a_b_c"])


def outcome(change):
    """The mapping a change gives, or the words of the `UserError` it raises after the flag's or keyword's name."""
    data = apply_overrides({"seed": 1, "search": {"budget": {"evaluations": 3}}}, [])
    try:
        change(data)
    except UserError as exc:
        return str(exc).split(": ", 1)[1]
    return data


@given(st.lists(NAMES, min_size=1, max_size=4), st.integers(-(10**6), 10**6))
def test_a_keyword_override_sets_what_the_same_set_flag_sets(parts, value):
    name = "__".join(parts)
    assert key_path(name) == parts
    by_flag = outcome(lambda data: data.update(apply_overrides(data, [f"{'.'.join(parts)}={value}"])))
    assert outcome(lambda data: set_at(data, parts, value, f"keyword {name}")) == by_flag
