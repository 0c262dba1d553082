"""Early stopping with several objectives (`search.objectives` with `search.fidelity`): a rung ranks its results
by front and crowding, in sync successive halving (`promote_pareto`) and in ASHA (`ParetoAsha`); a cheap
candidate of fair accuracy goes on where accuracy alone would stop it; a search cut by --max-evaluations and
resumed is the uninterrupted one. One objective keeps `promote` and `Asha` (tests/test_golden_runs.py)."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fidelity_search import RUNGS, cli, log_lines, synthetic_fidelity

from nas.evaluate.result import Result
from nas.run.fidelity import Asha, ParetoAsha, ParetoRung, promote, promote_pareto
from nas.strategies import pareto

vectors = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(vectors)
def test_a_rungs_kept_ranks_are_the_non_dominated_sorts_and_its_order_nsga_iis(points):
    rung = ParetoRung()
    for n, p in enumerate(points, start=1):
        before = rung.add(tuple(float(x) for x in p))
        expected = pareto.rank_crowding(rung.points)
        assert rung.ranks == [r for r, _ in expected]
        keys = pareto.selection_keys(rung.points)
        assert before == sum(k < keys[n - 1] for k in keys), "strictly before it: lower front, or less crowded"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40, unique=True), st.integers(2, 4))
def test_with_one_objective_the_pareto_rules_are_the_accuracy_rules(fitness, eta):
    assert promote_pareto([(-f,) for f in fitness], eta) == promote(fitness, eta)
    single, several = Asha(3, eta), ParetoAsha(3, eta)
    for i, f in enumerate(fitness):
        assert several.decide(i % 3, (-f,)) == single.decide(i % 3, f)


def test_a_cheap_candidate_of_fair_accuracy_goes_on_where_accuracy_alone_stops_it():
    fitness = [0.9, 0.8, 0.5, 0.4, 0.3, 0.2]
    params = [1000, 900, 10, 800, 700, 600]
    assert promote(fitness, 3) == [0, 1]
    assert promote_pareto([(-f, p) for f, p in zip(fitness, params, strict=True)], 3) == [0, 2], "front's extremes"
    assert promote_pareto([None, (math.inf, math.inf), (-0.1, 5.0)], 3) == [2], "failures never go on"
    asha, accuracy = ParetoAsha(2, 3), Asha(2, 3)
    assert [asha.decide(0, (-f, p)) for f, p in zip(fitness, params, strict=True)] == [True] * 3 + [False] * 3
    assert [accuracy.decide(0, f) for f in fitness] == [True] + [False] * 5, "accuracy stops the cheap third"
    assert not asha.decide(0, None) and not asha.decide(1, (-1.0, 1.0)), "a failure, the top rung"


# --- through the search loop ----------------------------------------------------------------------------------

OBJECTIVES = {"sync": ["fitness", "params"], "async": ["fitness", "latency_ms"]}


def multi_objective_fidelity(folder, mode: str, evaluations: int = 40):
    import yaml

    path = synthetic_fidelity(folder, evaluations, mode=mode, name=f"{mode}-{evaluations}.yaml")
    data = yaml.safe_load(path.read_text())
    data["search"]["objectives"] = OBJECTIVES[mode]
    path.write_text(yaml.safe_dump(data))
    return path


def vector(line: dict, mode: str) -> pareto.Vector:
    return pareto.objective_vector(Result.from_dict(line), OBJECTIVES[mode])


def sync_promotions(lines: list[dict]) -> tuple[int, int]:
    """Check every rung of every told batch promoted by front and crowding; returns (promotions that accuracy
    alone would have made differently, rungs checked)."""
    differ = checked = 0
    steps = sorted({r["step"] for r in lines})
    for step in steps[:-1]:  # the last batch may be cut by the budget
        for low, high in zip(RUNGS, RUNGS[1:], strict=False):
            below = [r for r in lines if r["step"] == step and r["epochs"] == low]
            chosen = {below[i]["key"] for i in promote_pareto([vector(r, "sync") for r in below], 3)}
            assert {r["key"] for r in lines if r["step"] == step and r["epochs"] == high} == chosen, (step, low)
            by_fitness = {below[i]["key"] for i in promote([r["fitness"] for r in below], 3)}
            extra = [r for r in below if r["key"] in chosen - by_fitness]
            dropped = [r for r in below if r["key"] in by_fitness - chosen]
            differ += bool(extra) and all(r["params"] < min(d["params"] for d in dropped) for r in extra)
            checked += 1
    return differ, checked


def asha_decisions(lines: list[dict]) -> int:
    """Check ASHA's rule by front and crowding off the log (a full NSGA-II ranking of the rung so far for each
    line); returns how many lines went on that accuracy alone would have stopped."""
    seen: dict[int, list[pareto.Vector]] = {e: [] for e in RUNGS}
    fitness: dict[int, list[float]] = {e: [] for e in RUNGS}
    reached = {(r["key"], r["epochs"]) for r in lines}
    differ = 0
    for r in lines:
        seen[r["epochs"]].append(vector(r, "async"))
        fitness[r["epochs"]].append(r["fitness"])
        if r["epochs"] == RUNGS[-1]:
            continue
        keys = pareto.selection_keys(seen[r["epochs"]])
        n = len(keys)
        went_on = (r["key"], RUNGS[RUNGS.index(r["epochs"]) + 1]) in reached
        assert went_on == (sum(k < keys[-1] for k in keys) < math.ceil(n / 3)), (r["key"][:12], r["epochs"])
        differ += went_on and sum(f > r["fitness"] for f in fitness[r["epochs"]]) >= math.ceil(n / 3)
    return differ


@pytest.mark.full
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_multi_objective_fidelity_search_promotes_by_front_and_crowding(tmp_path, mode):
    """`nas search` with two objectives and `search.fidelity`: every promotion (sync) and every decision (async)
    read off the log follows the rank-and-crowding rule, and some cheap candidate went on that accuracy alone
    would have stopped."""
    run = tmp_path / "run"
    out = cli("search", str(multi_objective_fidelity(tmp_path, mode)), "--run-dir", str(run), "--workers", "0")
    assert out.code == 0 and out.exception is None, (out.stderr[-2000:], out.exception)
    lines = log_lines(run)
    assert len({r["key"] for r in lines}) == 40 and {r["epochs"] for r in lines} == set(RUNGS)
    if mode == "sync":
        differ, checked = sync_promotions(lines)
        assert checked > 0 and differ > 0, "a cheaper candidate took the place of one accuracy alone would promote"
    else:
        assert all(r["metrics"]["latency_ms"] > 0 for r in lines), "the synthetic stand-in of a measured latency"
        assert asha_decisions(lines) > 0, "a candidate continued that accuracy alone would have stopped"


@pytest.mark.full
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_multi_objective_fidelity_search_cut_and_resumed_is_the_uninterrupted_one(tmp_path, mode):
    cfg = multi_objective_fidelity(tmp_path, mode, 24)
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert cli("search", str(cfg), "--run-dir", str(reference), "--workers", "0").code == 0
    assert cli("search", str(cfg), "--run-dir", str(run), "--workers", "0", "--max-evaluations", "10").code == 0
    assert len({r["key"] for r in log_lines(run)}) < 24
    out = cli("resume", str(run), "--workers", "0")
    assert out.code == 0 and out.exception is None, (out.stderr[-2000:], out.exception)
    outcome = lambda lines: {(r["key"], r["epochs"], r["fitness"]) for r in lines}  # noqa: E731
    assert outcome(log_lines(run)) == outcome(log_lines(reference))
    assert not list((run / "rungs").glob("*")), "the finished search removed its states"
    fronts = [[m["key"] for m in json.loads((r / "pareto.json").read_text())["front"]] for r in (run, reference)]
    assert fronts[0] == fronts[1]
