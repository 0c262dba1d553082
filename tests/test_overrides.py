"""`--set KEY.PATH=VALUE` on the commands that take a config, and `nas resume --budget N` extending a search."""

import json
import string

import pytest
import yaml
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st

from nas.cli import main
from nas.config import apply_overrides, load_config
from nas.errors import UserError
from nas.run import driver
from nas.run.driver import resume_command
from nas.run.rundir import RunDir
from nas.run.runlog import read_results
from nas.strategies.strategy import build_strategy as strategy_builder

SMOKE = ROOT / "search_configs" / "smoke.yaml"


def error_line(capsys) -> str:
    """The one line a refused command wrote on stderr."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def log_keys(run) -> list[str]:
    return [r.key for r in read_results(run / "evaluations.jsonl")]


def search(run, *extra: str) -> int:
    return main(["search", str(SMOKE), "--workers", "0", "--run-dir", str(run), *extra])


# --set: the parse and the merge


NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.text(alphabet=string.ascii_letters + string.digits + " _-.,:/", max_size=12),
)
VALUE = st.one_of(SCALAR, st.lists(st.integers(-1000, 1000), max_size=4))


@given(parts=st.lists(NAME, min_size=1, max_size=4), value=VALUE)
def test_set_puts_the_yaml_value_at_the_key_path(parts, value):
    data = {"keep": {"x": 1}}
    merged = apply_overrides(data, [f"{'.'.join(parts)}={json.dumps(value)}"])
    node = merged
    for part in parts:
        node = node[part]
    assert node == value
    assert data == {"keep": {"x": 1}}  # the caller's mapping is left as it was


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("0.1", 0.1), ("true", True), ("[1, 2]", [1, 2]), ("null", None), ("", None), ("abc", "abc"),
     ("0x1F", "0x1F"), ("'3'", "3"), ("a=b", "a=b")],
)  # fmt: skip
def test_set_values_are_read_as_yaml(text, value):
    assert apply_overrides({}, [f"a.b={text}"]) == {"a": {"b": value}}


def test_a_later_set_wins_and_a_null_section_becomes_a_mapping():
    merged = apply_overrides({"search": None, "seed": 1}, ["seed=2", "search.budget.evaluations=5", "seed=3"])
    assert merged == {"search": {"budget": {"evaluations": 5}}, "seed": 3}


@given(text=st.text(max_size=30).filter(lambda t: "=" not in t))
def test_a_set_without_equals_is_refused_naming_the_flag(text):
    with pytest.raises(UserError, match=r"^--set .*must be KEY\.PATH=VALUE"):
        apply_overrides({}, [text])


@given(parts=st.lists(NAME, min_size=1, max_size=3), hole=st.integers(0, 3), value=st.integers())
def test_a_key_path_with_an_empty_part_is_refused(parts, hole, value):
    parts.insert(min(hole, len(parts)), "")
    with pytest.raises(UserError, match=r"^--set .*the key path must be dot-separated names"):
        apply_overrides({}, [f"{'.'.join(parts)}={value}"])


def test_a_path_through_a_value_is_refused_naming_it():
    with pytest.raises(UserError, match=r"^--set 'seed\.x=1': seed is 0, not a mapping$"):
        apply_overrides({"seed": 0}, ["seed.x=1"])
    with pytest.raises(UserError, match=r"^--set 'a=\[1': the value is not valid YAML"):
        apply_overrides({}, ["a=[1"])
    with pytest.raises(UserError, match=r"duplicate key"):
        apply_overrides({}, ["a={b: 1, b: 2}"])


def test_load_config_applies_overrides_before_validation():
    config = load_config(SMOKE, ["search.budget.evaluations=12", "fitness.seconds_per_evaluation=0.5"])
    assert config.search.budget.evaluations == 12 and config.fitness.seconds_per_evaluation == 0.5
    with pytest.raises(UserError, match=r"search\.budget\.evaluations: must be >= 1, got 0 \(given by --set\)$"):
        load_config(SMOKE, ["search.budget.evaluations=0"])


# --set on the commands


def test_set_on_search_is_the_config_the_run_keeps_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    assert search(run, "--set", "search.budget.evaluations=12") == 0
    assert "search finished: 12 evaluations" in capsys.readouterr().out
    assert len(set(log_keys(run))) == len(log_keys(run)) == 12
    assert yaml.safe_load((run / "config.yaml").read_text())["search"]["budget"]["evaluations"] == 12
    assert main(["resume", str(run), "--workers", "0"]) == 0
    assert "search finished: 12 evaluations (0 new)" in capsys.readouterr().out
    assert len(log_keys(run)) == 12


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["search.budget.evaluations=0"], "search.budget.evaluations: must be >= 1, got 0"),
        (["search.budget.evals=3"], "search.budget.evals: unknown key (known: evaluations, hours)"),
        (["search.pso.c1=fast"], "search.pso.c1: must be a finite number, not 'fast'"),
        (["seed=1", "search.budget=[1]"], "search.budget: must be a mapping, not [1]"),
        (["seed.x=1"], "--set 'seed.x=1': seed is 0, not a mapping"),
        (["budget"], "--set 'budget': must be KEY.PATH=VALUE"),
        (["=3"], "--set '=3': the key path must be dot-separated names"),
        (["search..budget=3"], "--set 'search..budget=3': the key path must be dot-separated names"),
    ],
)
def test_a_bad_set_on_search_is_one_line_and_exit_2(tmp_path, capsys, sets, message):
    run = tmp_path / "run"
    flags = [arg for item in sets for arg in ("--set", item)]
    assert search(run, *flags) == 2
    line = error_line(capsys)
    assert line.startswith("nas search: error: ") and message in line, line
    assert not run.exists()  # nothing started


def test_set_on_data_summary(capsys):
    assert main(["data", "summary", str(SMOKE), "--json", "--set", "dataset.validation_fraction=0.5"]) == 0
    splits = json.loads(capsys.readouterr().out)["splits"]
    assert splits["train"] == splits["val"]
    assert main(["data", "summary", str(SMOKE), "--set", "dataset.validation_fraction=1"]) == 2
    assert "dataset.validation_fraction: must be < 1, got 1" in error_line(capsys)


def test_set_on_train_and_baseline_is_checked_before_anything_loads(tmp_path, capsys):
    missing = str(tmp_path / "no-such-architecture.yaml")
    assert main(["train", missing, "--config", str(SMOKE), "--set", "fitness.epochs=0"]) == 2
    assert "fitness.epochs: must be >= 1, got 0 (given by --set)" in error_line(capsys)
    assert main(["train", missing, "--config", str(SMOKE), "--set", "fitness"]) == 2
    assert "--set 'fitness': must be KEY.PATH=VALUE" in error_line(capsys)
    assert main(["baseline", str(SMOKE), "--set", "baseline.epochs=-1"]) == 2
    assert "baseline.epochs: must be >= 1, got -1" in error_line(capsys)


# resume --budget


def test_resume_budget_extends_a_finished_search(tmp_path, capsys, monkeypatch):
    seen = []  # the evaluation budget each strategy is built with (hgapso's exploitation phase depends on it)

    def build_strategy(search_config, *args):
        seen.append(search_config.budget.evaluations)
        return strategy_builder(search_config, *args)

    monkeypatch.setattr(driver, "build_strategy", build_strategy)
    run = tmp_path / "run"
    assert search(run, "--set", "search.budget.evaluations=20") == 0
    config_bytes = (run / "config.yaml").read_bytes()
    assert len(log_keys(run)) == 20
    capsys.readouterr()

    assert main(["resume", str(run), "--workers", "0", "--budget", "30"]) == 0
    assert "search finished: 30 evaluations (10 new)" in capsys.readouterr().out
    assert seen == [20, 30]
    keys = log_keys(run)
    assert len(keys) == len(set(keys)) == 30
    assert (run / "config.yaml").read_bytes() == config_bytes  # the edit check still holds
    assert json.loads((run / "budget.json").read_text())["evaluations"] == 30
    assert RunDir(run).load_config().search.budget.evaluations == 30
    assert json.loads((run / "checkpoint.json").read_text())["evaluations"] == 30

    assert resume_command(run, workers=0) == 0  # no --budget: the raised one stays
    assert "search finished: 30 evaluations (0 new)" in capsys.readouterr().out
    assert log_keys(run) == keys

    assert main(["resume", str(run), "--workers", "0", "--budget", "10"]) == 2
    line = error_line(capsys)
    assert line.startswith("nas resume: error: --budget 10:") and "current budget of 30" in line, line
    assert main(["resume", str(run), "--workers", "0", "--budget", "30"]) == 0  # the same budget: nothing to do
    assert log_keys(run) == keys


def test_resume_budget_on_a_run_without_an_evaluation_budget_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    hours = ["--set", "search.budget.evaluations=null", "--set", "search.budget.hours=1", "--max-evaluations", "3"]
    assert search(run, *hours) == 0
    capsys.readouterr()
    assert main(["resume", str(run), "--workers", "0", "--budget", "10"]) == 2
    assert "--budget 10: this run has no evaluation budget" in error_line(capsys)
    assert not (run / "budget.json").exists()


def test_a_garbled_budget_file_is_refused_by_name(tmp_path, capsys):
    run = tmp_path / "run"
    assert search(run, "--set", "search.budget.evaluations=5") == 0
    for text in (
        "{",
        '{"format": "nas-budget/1", "evaluations": "many"}',
        '{"format": "nas-budget/1", "evaluations": 2}',
    ):
        (run / "budget.json").write_text(text)
        capsys.readouterr()
        assert main(["resume", str(run), "--workers", "0"]) == 2
        assert str(run / "budget.json") in error_line(capsys)
