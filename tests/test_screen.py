"""Predictor screening (`search.screen`, `nas.run.screen`): the features, a real forest picking the predicted best,
and whole synthetic async searches that screen: only `budget` candidates trained, no untrained genome told, the
picks rebuilt from the log (a replay and a stopped-and-resumed run equal the uninterrupted run), and the config's
one-line refusals."""

import json
import math
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, nas_ok
from golden_runs import synthetic
from hypothesis import given
from hypothesis import strategies as st
from test_fidelity_search import env, log_lines
from test_strategies import SMALL, WITH_LR

from nas.config import ScreenConfig, load_config
from nas.errors import UserError
from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.genome.space import load_space
from nas.run.budget import Budget
from nas.run.replay import replay
from nas.run.runlog import read_results
from nas.run.screen import REFIT_FRACTION, Screen, features, fit_point
from nas.strategies import build_strategy
from nas.strategies.random_search import random_genome


def ok(genome: Genome, fitness: float) -> Result:
    return Result(genome.key, genome.to_dict(), "ok", fitness)


def growth(genome: Genome) -> float:
    """A fitness the forest can learn: the first block's growth rate, scaled."""
    return genome.blocks[0].growth_rate / 100


# --- features ---------------------------------------------------------------------------------------------------


@given(st.integers(0, 2**32), st.booleans(), st.booleans())
def test_features_are_four_per_block_then_learning_rate_and_costs(seed, with_lr, with_cost):
    space = WITH_LR if with_lr else SMALL
    genome = random_genome(space, random.Random(seed))
    cost = (lambda g: (1000, 10**6)) if with_cost else None
    row = features(genome, cost)
    assert len(row) == 4 * len(genome.blocks) + with_lr + 2 * with_cost
    for b, block in enumerate(genome.blocks):
        layers, rate, on, density = row[4 * b : 4 * b + 4]
        assert (layers, rate, on) == (block.layers, block.growth_rate, block.shortcuts.count("1"))
        assert 0 <= density <= 1 and density == on / len(block.shortcuts)
    if with_cost:
        assert row[-2:] == pytest.approx([3.0004, 6.0000004], abs=1e-3)


# --- picks of a real forest ---------------------------------------------------------------------------------------


def trained_screen(count: int = 60, after: int = 20, seed: int = 0) -> Screen:
    screen = Screen(ScreenConfig(factor=3, after=after), seed)
    rng = random.Random(1)
    screen.learn_all(ok(g, growth(g)) for g in (random_genome(SMALL, rng) for _ in range(count)))
    return screen


def candidates() -> list[Genome]:
    """Twelve genomes with distinct first-block growth rates 4..15, shuffled."""
    rng = random.Random(2)
    found: dict[int, Genome] = {}
    while len(found) < 12:
        g = random_genome(SMALL, rng)
        if g.blocks[0].growth_rate <= 15:
            found.setdefault(g.blocks[0].growth_rate, g)
    out = list(found.values())
    random.Random(3).shuffle(out)
    return out


def test_a_fitted_forest_picks_the_genomes_of_highest_true_fitness_in_ask_order():
    screen = trained_screen()
    pool = candidates()
    picked = screen.pick(pool, 3)
    best = sorted(pool, key=growth)[-3:]
    assert {g.key for g in picked} == {g.key for g in best}
    assert picked == [g for g in pool if g in picked], "in ask order"
    assert screen.pick(pool[:3], 3) == pool[:3], "no more than asked for: all of them, unpredicted"


def test_the_screen_asks_factor_times_the_slots_only_once_enough_results_are_known():
    screen = trained_screen(count=19)
    assert not screen.ready() and screen.ask_size(4) == 4
    g = random_genome(SMALL, random.Random(99))
    screen.learn(Result.failure(g.key, g.to_dict(), "boom"))
    assert not screen.ready(), "a failure is no sample"
    screen.learn(ok(g, 0.5))
    assert screen.ready() and screen.ask_size(4) == 12


def test_a_fit_depends_on_the_set_of_results_and_the_seed_not_their_order():
    rng = random.Random(4)
    told = [ok(g, growth(g) + rng.random() / 10) for g in (random_genome(SMALL, rng) for _ in range(41))]
    pool = [random_genome(SMALL, random.Random(s)) for s in range(100, 120)]
    forward, backward = Screen(ScreenConfig(), 0), Screen(ScreenConfig(), 0)
    forward.learn_all(told)
    backward.learn_all(reversed(told))
    assert fit_point(41) == 41
    assert forward.predict(pool) == backward.predict(pool)
    other_seed = Screen(ScreenConfig(), 1)
    other_seed.learn_all(told)
    assert other_seed.predict(pool) != forward.predict(pool)


def test_the_forest_is_refitted_as_the_tells_grow_by_a_tenth_and_a_resumed_screen_fits_the_same():
    rng = random.Random(5)
    told = [ok(g, growth(g) + rng.random() / 10) for g in (random_genome(SMALL, rng) for _ in range(46))]
    pool = [random_genome(SMALL, random.Random(s)) for s in range(100, 120)]
    live = Screen(ScreenConfig(), 0)
    live.learn_all(told[:41])
    before = live.predict(pool)
    for n in range(42, 46):  # fit_point stays 41: the forest fitted on the first 41 still serves
        live.learn(told[n - 1])
        assert fit_point(n) == 41 and live.predict(pool) == before, f"refitted at {n} tells"
    live.learn(told[45])
    assert fit_point(46) == 46 and live.predict(pool) != before, "46 tells refit the forest"
    resumed = Screen(ScreenConfig(), 0)
    resumed.learn_all(told[:44])
    live_at_44 = Screen(ScreenConfig(), 0)
    live_at_44.learn_all(told[:41])
    live_at_44.predict(pool)
    live_at_44.learn_all(told[41:44])
    assert resumed.predict(pool) == live_at_44.predict(pool) == before


@given(st.integers(0, 5000))
def test_fit_point_is_at_most_n_and_grows_by_at_most_a_tenth(n):
    point = fit_point(n)
    assert point <= n and (n == 0) == (point == 0)
    assert n - point < max(1, math.ceil(REFIT_FRACTION * point)) or n == 0


# --- whole searches -----------------------------------------------------------------------------------------------


AFTER = 10  # search.screen.after of the searches below


def write_config(folder: Path, strategy: str = "regularized-evolution", evaluations: int = 36, seconds: float = 0.0,
                 name: str = "") -> Path:  # fmt: skip
    data = synthetic(strategy, "async", False)
    data["fitness"]["seconds_per_evaluation"] = seconds
    data["search"]["budget"] = {"evaluations": evaluations}
    data["search"]["screen"] = {"factor": 3, "after": AFTER}
    data["search"]["regularized_evolution"] = {"population": 8, "sample_size": 3}
    path = folder / f"{name or strategy}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def checkpoint(run: Path) -> dict:
    return json.loads((run / "checkpoint.json").read_text())


def replayed(cfg: Path, run: Path) -> dict:
    """A fresh strategy and a fresh screen told the whole log in order, topped up as the run was."""
    config = load_config(cfg)
    space = load_space(config.encoding)
    strategy = build_strategy(config.search, space, config.seed)
    screen = Screen(config.search.screen, config.seed, screen_cost(config, space))
    target = checkpoint(run)["async_target"]
    replay(strategy, {}, read_results(run / "evaluations.jsonl"), target, Budget(config.search.budget.evaluations),
           screen)  # fmt: skip
    return json.loads(json.dumps(strategy.state_dict())) | {"screened": screen.screened}


def screen_cost(config, space):
    from nas.evaluate.constraints import genome_cost
    from nas.evaluate.objective import build_objective

    objective = build_objective(config, space)
    return lambda g: tuple(int(v) for v in genome_cost(objective, g).values())


@pytest.mark.full
@pytest.mark.parametrize("strategy", ["regularized-evolution", "hgapso"])
def test_a_screened_search_trains_its_budget_tells_only_trained_genomes_and_replays_from_its_log(tmp_path, strategy):
    cfg = write_config(tmp_path, strategy)
    run = tmp_path / "run"
    nas_ok("search", str(cfg), "--run-dir", str(run), "--workers", "0")
    logged = read_results(run / "evaluations.jsonl")
    keys = [r.key for r in logged]
    assert len(keys) == len(set(keys)) == 36, "exactly the budget trained, each once"
    state = checkpoint(run)
    assert state["screened"] > 36, "the predictor left most proposals untrained"
    assert {row[0] for row in state["strategy"]["evaluated"]} == set(keys), "the strategy heard trained ones only"
    assert state["strategy"]["in_flight"] == []
    assert json.loads(json.dumps(state["strategy"])) | {"screened": state["screened"]} == replayed(cfg, run)


@pytest.mark.full
def test_a_screened_search_stopped_and_resumed_makes_the_picks_of_the_uninterrupted_run(tmp_path):
    cfg = write_config(tmp_path)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    nas_ok("search", str(cfg), "--run-dir", str(whole), "--workers", "0")
    nas_ok("search", str(cfg), "--run-dir", str(parts), "--workers", "0", "--max-evaluations", "17")
    assert len(read_results(parts / "evaluations.jsonl")) == 17
    nas_ok("resume", str(parts), "--workers", "0")
    assert [r.key for r in read_results(parts / "evaluations.jsonl")] == [
        r.key for r in read_results(whole / "evaluations.jsonl")
    ]
    assert checkpoint(parts)["strategy"] == checkpoint(whole)["strategy"]
    assert checkpoint(parts)["screened"] == checkpoint(whole)["screened"] > 0


def kill_once_screening(cfg: Path, run: Path, lines: int) -> None:
    """`nas search cfg` in a subprocess, SIGKILLed as soon as its log holds `lines` lines."""
    proc = subprocess.Popen([sys.executable, "-m", "nas", "search", str(cfg), "--run-dir", str(run), "--workers",
                             "0"], env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(log_lines(run)) < lines:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


@pytest.mark.full
def test_a_screened_search_sigkilled_once_the_screen_picks_then_resumed_is_the_uninterrupted_run(tmp_path):
    """A SIGKILL once the predictor screens (more than `after` results logged), then `nas resume`: the resumed
    screen relearns what was told before the kill and makes the same picks, so the log, the strategy and the
    count of screened genomes are those of the uninterrupted run, and no genome is trained twice."""
    whole, run = tmp_path / "whole", tmp_path / "run"
    nas_ok("search", str(write_config(tmp_path)), "--run-dir", str(whole), "--workers", "0")
    kill_once_screening(write_config(tmp_path, seconds=0.1, name="slow"), run, AFTER + 6)
    before = log_lines(run)
    assert AFTER + 6 <= len(before) < 36, "killed while the screen picked, before the end"
    assert checkpoint(run).get("screened", 0) > 0, "the screen had withdrawn genomes before the kill"
    nas_ok("resume", str(run), "--workers", "0")
    after = log_lines(run)
    assert after[: len(before)] == before, "nothing logged before the kill is lost"
    keys = [r["key"] for r in after]
    assert len(keys) == len(set(keys)) == 36, "each genome trained once, the budget exactly"
    assert [(r["key"], r["fitness"]) for r in after] == [(r["key"], r["fitness"]) for r in log_lines(whole)]
    assert checkpoint(run)["strategy"] == checkpoint(whole)["strategy"]
    assert checkpoint(run)["screened"] == checkpoint(whole)["screened"]


# --- config -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("search.screen.factor=0", r"search\.screen\.factor: must be >= 2, got 0"),
        ("search.screen.factor=2.5", r"search\.screen\.factor: must be an integer, not 2\.5"),
        ("search.screen.factor=three", r"search\.screen\.factor: must be an integer, not 'three'"),
        ("search.screen.after=1", r"search\.screen\.after: must be >= 2, got 1"),
        ("search.mode=sync", r"search\.screen: needs search\.mode: async"),
        ("search.objectives=[fitness, params]", r"search\.screen: predicts fitness alone"),
    ],
)
def test_a_bad_screen_is_refused_by_its_key_path(tmp_path, override, message):
    cfg = write_config(tmp_path)
    with pytest.raises(UserError, match=message):
        load_config(cfg, [override])


def test_a_bad_screen_factor_is_one_line_on_the_command_line(tmp_path, nas):
    cfg = write_config(tmp_path)
    out = nas("search", str(cfg), "--run-dir", str(tmp_path / "run"), "--set", "search.screen.factor=0")
    assert_one_line_refusal(out, "search.screen.factor: must be >= 2, got 0", tmp_path / "run")


def assert_one_line_refusal(out, message: str, run: Path) -> None:
    """A refused `nas search`: exit 2, one stderr line holding `message`, no traceback, no run directory."""
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not run.exists()
