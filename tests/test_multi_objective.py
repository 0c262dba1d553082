"""Several objectives (`search.objectives`, `search.constraints`): the config's rules, ranking by front and
crowding where a strategy ranks a population, the swarms' archive of leaders, exact resume, caps that keep a
genome from training, and search quality on the synthetic objective (params and FLOPs exact) against random
search at equal evaluations. A config without objectives is the single-objective search, to the last bit
(tests/test_golden_runs.py)."""

import dataclasses
import json
import random
import statistics

import pytest
from conftest import ROOT
from jsonschema import Draft202012Validator

from nas.config import parse_config
from nas.config_schema import config_schema
from nas.errors import UserError
from nas.evaluate.constraints import INFEASIBLE, infeasible, over_cap, violates
from nas.evaluate.result import Result
from nas.evaluate.synthetic import SyntheticObjective
from nas.genome import load_space
from nas.strategies import archive, pareto, shortcut_ga
from nas.strategies.random_search import random_genome
from nas.strategies.ranking import Score, population_keys
from nas.strategies.strategy import build_strategy
from nas.strategies.swarm import BestPoint

SMALL = load_space(ROOT / "encodings" / "densenet_small.yaml")
OBJECTIVE = SyntheticObjective(SMALL, (1, 10, 8), 0.0)  # digits' shape: params and FLOPs by formula
LARGEST = [float(OBJECTIVE.largest_params())]
SEARCH = {
    "batch_size": 8,
    "pso": {"swarm_size": 4},
    "ga": {"population": 4, "generations": 2, "tournament_size": 2, "elitism": 1},
    "regularized_evolution": {"population": 16, "sample_size": 4},
}
TWO = ["fitness", "params"]


def search_config(strategy: str, objectives: list[str] | None = TWO, budget: int = 200):
    extra = {} if objectives is None else {"objectives": objectives}
    return parse_config({"search": {**SEARCH, "strategy": strategy, "budget": {"evaluations": budget}, **extra}}).search


def drive(strategy, budget: int) -> list[Result]:
    """Ask, evaluate on the synthetic objective, tell in ask order, until `budget` results or more are told: all
    of them (a batch is told whole)."""
    told: list[Result] = []
    while len(told) < budget and not strategy.done():
        genomes = strategy.ask()
        if not genomes:
            break
        results = [OBJECTIVE(g) for g in genomes]
        strategy.tell(results)
        told += results
    return told


def front_hypervolume(results: list[Result]) -> float:
    vectors = [pareto.objective_vector(r, TWO) for r in results]
    return pareto.normalised_hypervolume([vectors[i] for i in pareto.pareto_front(vectors)], LARGEST)


# --- config ---------------------------------------------------------------------------------------------------


def refusal(search: dict) -> UserError:
    with pytest.raises(UserError) as caught:
        parse_config({"search": search})
    return caught.value


def test_objectives_absent_is_fitness_alone_and_a_list_is_kept_in_order():
    assert parse_config({}).search.objectives is None and parse_config({}).search.cost_objectives == ()
    search = parse_config({"search": {"objectives": ["fitness", "flops", "params"], "constraints": {"params": 500000}}})
    assert search.search.cost_objectives == ("flops", "params")
    assert search.search.constraints.params == 500000 and search.search.constraints.flops is None


@pytest.mark.parametrize(
    ("search", "key", "words"),
    [
        ({"objectives": ["params", "fitness"]}, "search.objectives", "start with fitness"),
        ({"objectives": []}, "search.objectives", "start with fitness"),
        ({"objectives": ["fitness", "params", "params"]}, "search.objectives[2]", "listed twice"),
        ({"objectives": ["fitness", "accuracy"]}, "search.objectives[1]", "one of"),
        ({"constraints": {"fitness": 0.9}}, "search.constraints.fitness", "cannot be capped"),
        ({"constraints": {"params": 0}}, "search.constraints.params", "> 0"),
        ({"constraints": {"latency_ms": -1.0}}, "search.constraints.latency_ms", "> 0"),
    ],
)
def test_bad_objectives_and_caps_are_refused_with_their_key_path(search, key, words):
    error = refusal(search)
    assert error.key == key and words in str(error), str(error)


def test_the_schema_refuses_what_the_config_refuses_and_takes_what_it_takes():
    validator = Draft202012Validator(config_schema())
    good = {"search": {"objectives": ["fitness", "params", "latency_ms"], "constraints": {"flops": 10**9}}}
    assert validator.is_valid(good)
    for search in ({"objectives": ["params", "fitness"]}, {"objectives": ["fitness", "fitness"]},
                   {"constraints": {"fitness": 0.5}}, {"constraints": {"params": 0}}):  # fmt: skip
        assert not validator.is_valid({"search": search}), search
        with pytest.raises(UserError):
            parse_config({"search": search})


# --- ranking by front and crowding ----------------------------------------------------------------------------

# A: fittest and mid-sized; B: small and poor, on the front; C: dominated by A (less fit, bigger).
A, B, C = Score(0.9, 1000, "a", (1000.0,)), Score(0.1, 10, "b", (10.0,)), Score(0.5, 2000, "c", (2000.0,))


def test_a_population_ranks_by_front_then_crowding_and_a_single_objective_one_by_fitness():
    keys = population_keys([C, B, A])
    assert sorted(range(3), key=keys.__getitem__) == [2, 1, 0], "A and B (front 0) before the dominated C"
    single = [Score(s.fitness, s.params, s.key) for s in (C, B, A)]
    assert sorted(range(3), key=population_keys(single).__getitem__) == [2, 0, 1], "by fitness: A, C, B"
    failed = Score(None, 5, "f", (5.0,))
    assert max(range(4), key=population_keys([A, failed, B, C]).__getitem__) == 1, "a failure ranks last"


def test_ga_elites_come_from_the_front_with_several_objectives():
    population = ["00", "01", "10", "11"]
    worst = Score(0.05, 3000, "d", (3000.0,))
    ga = parse_config({"search": {"ga": {"population": 4, "elitism": 2, "tournament_size": 2}}}).search.section("ga")
    elites = shortcut_ga.breed(population, [C, B, A, worst], ga, random.Random(0))[:2]
    assert {score.key for _, score in elites} == {"a", "b"}
    single = [Score(s.fitness, s.params, s.key) for s in (C, B, A, worst)]
    assert {score.key for _, score in shortcut_ga.breed(population, single, ga, random.Random(0))[:2]} == {"a", "c"}


def point(fitness: float | None, params: float, key: str) -> BestPoint:
    return BestPoint((0.0,), ("1",), Score(fitness, int(params), key, (params,)))


def test_the_archive_keeps_the_non_dominated_and_prunes_the_most_crowded():
    members = archive.add((), [point(0.5, 100, "m"), point(0.4, 200, "dominated"), point(None, 1, "failed")])
    assert [p.score.key for p in members] == ["m"]
    members = archive.add(members, [point(0.9, 1000, "fit"), point(0.1, 10, "small"), point(0.6, 100, "better")])
    assert {p.score.key for p in members} == {"fit", "small", "better"}, "'better' dominates 'm', which leaves"
    crowded = archive.add(members, [point(0.61, 110, "near")], limit=3)
    assert len(crowded) == 3 and {"fit", "small"} <= {p.score.key for p in crowded}, "extremes are least crowded"


def test_leaders_favour_the_archives_least_crowded_members():
    members = archive.add((), [point(0.9, 1000, "fit"), point(0.1, 10, "small"), point(0.5, 100, "mid"),
                               point(0.52, 110, "mid2"), point(0.54, 120, "mid3")])  # fmt: skip
    rng = random.Random(0)
    drawn = [archive.leader(members, rng).score.key for _ in range(2000)]
    extremes = sum(k in ("fit", "small") for k in drawn) / len(drawn)
    assert extremes > 0.55, f"two of five members, drawn {extremes:.0%} of the time: the tournament prefers them"
    assert archive.leader((), rng) is None


# --- the strategies -------------------------------------------------------------------------------------------

STRATEGIES = ["hgapso", "pso", "ga", "random", "regularized-evolution"]


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_multi_objective_search_resumes_exactly_from_its_state(name):
    first = build_strategy(search_config(name), SMALL, 3)
    drive(first, 40)
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    second = build_strategy(search_config(name), SMALL, 99)
    second.load_state_dict(state)
    assert [g.key for g in second.ask()] == [g.key for g in first.ask()]
    assert all(len(entry) == 4 for entry in state["evaluated"]), "each evaluated genome keeps its costs"


def test_a_single_objective_state_holds_no_costs_and_no_archive():
    for name in ("hgapso", "pso"):
        strategy = build_strategy(search_config(name, None), SMALL, 3)
        drive(strategy, 40)
        state = strategy.state_dict()
        assert all(len(entry) == 3 for entry in state["evaluated"]) and "archive" not in state["state"]


@pytest.mark.parametrize("name", ["hgapso", "pso"])
def test_a_swarms_archive_is_the_front_of_what_it_was_told(name):
    strategy = build_strategy(search_config(name), SMALL, 5)
    told = drive(strategy, 80)
    vectors = [pareto.objective_vector(r, TWO) for r in told]
    front = {tuple(vectors[i]) for i in pareto.pareto_front(vectors)}
    assert {p.score.vector for p in strategy.archive} == front
    assert len(strategy.archive) > 1


@pytest.mark.parametrize(("name", "budget"), [("regularized-evolution", 200), ("pso", 200), ("hgapso", 600)])
def test_a_multi_objective_front_beats_random_search_at_equal_evaluations(name, budget):
    """Mean normalised hypervolume over 3 seeds (benchmarks/pareto_quality.py: 0.80, 0.79 and 0.91 against
    random's 0.70 and 0.74 over 5 seeds)."""
    ours = [front_hypervolume(drive(build_strategy(search_config(name, budget=budget), SMALL, s), budget)[:budget])
            for s in range(3)]  # fmt: skip
    rand = [front_hypervolume(drive(build_strategy(search_config("random", budget=budget), SMALL, s), budget)[:budget])
            for s in range(3)]  # fmt: skip
    assert statistics.mean(ours) > statistics.mean(rand) + 0.03, (ours, rand)


def test_the_fixed_architecture_ga_grows_a_front_of_several_members():
    strategy = build_strategy(search_config("ga"), SMALL, 0)
    told = drive(strategy, 160)
    early, late = front_hypervolume(told[:8]), front_hypervolume(told)
    vectors = [pareto.objective_vector(r, TWO) for r in told]
    assert len(pareto.pareto_front(vectors)) > 1 and late > early


# --- caps -----------------------------------------------------------------------------------------------------


def test_a_genome_over_a_cap_is_answered_without_training_and_one_under_it_is_not():
    rng = random.Random(0)
    genomes = [random_genome(SMALL, rng) for _ in range(30)]
    params = {g.key: OBJECTIVE(g).params for g in genomes}
    cap = sorted(params.values())[15]
    caps = parse_config({"search": {"constraints": {"params": cap}}}).search.constraints
    for genome in genomes:
        answer = infeasible(OBJECTIVE, genome, caps)
        if params[genome.key] > cap:
            assert answer is not None and answer.status == "failed" and answer.fitness is None
            assert answer.error.startswith(INFEASIBLE) and "params" in answer.error
            assert answer.params == params[genome.key]
        else:
            assert answer is None
    assert infeasible(OBJECTIVE, genomes[0], None) is None


def test_a_measured_cost_over_its_cap_turns_the_result_infeasible():
    genome = random_genome(SMALL, random.Random(1))
    result = OBJECTIVE(genome)
    result.metrics["latency_ms"] = 12.5
    assert over_cap(result, {"latency_ms": 20.0}) is result
    capped = over_cap(result, {"latency_ms": 10.0})
    assert capped.status == "failed" and "latency_ms 12.5 > 10" in capped.error and capped.metrics["latency_ms"] == 12.5
    assert violates({"params": 10, "latency_ms": None}, {"params": 5, "latency_ms": 1.0}) == ["params 10 > 5"]


# --- the run's front file -------------------------------------------------------------------------------------


def test_pareto_json_holds_the_front_fittest_first_and_nothing_for_one_objective(tmp_path):
    from nas.run.pareto_file import NAME, write_pareto

    told = drive(build_strategy(search_config("regularized-evolution"), SMALL, 0), 64)
    told.append(Result.failure("x" * 64, {}, "infeasible: params 9 > 1", params=1))
    write_pareto(tmp_path, told, TWO, LARGEST)
    document = json.loads((tmp_path / NAME).read_text())
    vectors = [pareto.objective_vector(r, TWO) for r in told]
    front = {told[i].key for i in pareto.pareto_front(vectors)}
    assert [m["key"] for m in document["front"]] and {m["key"] for m in document["front"]} == front
    fitness = [m["fitness"] for m in document["front"]]
    assert fitness == sorted(fitness, reverse=True) and len(fitness) > 1
    assert document["hypervolume"] == pytest.approx(front_hypervolume(told))
    write_pareto(tmp_path / "single", told, ["fitness"])
    assert not (tmp_path / "single").exists()


def test_pareto_json_is_rewritten_only_when_its_front_changes(tmp_path):
    from nas.run.pareto_file import NAME, write_pareto

    told = drive(build_strategy(search_config("regularized-evolution"), SMALL, 0), 32)
    written = write_pareto(tmp_path, told, TWO, LARGEST)
    (tmp_path / NAME).unlink()
    dominated = told + [Result.failure("y" * 64, {}, "failed", params=1)]
    assert write_pareto(tmp_path, dominated, TWO, LARGEST, written) == written
    assert not (tmp_path / NAME).exists(), "an unchanged front was written again"
    better = told + [dataclasses.replace(told[0], key="z" * 64, fitness=1.0, params=1)]
    assert write_pareto(tmp_path, better, TWO, LARGEST, written) != written
    assert "z" * 64 in (tmp_path / NAME).read_text()


# --- through the search loop ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_search_with_two_objectives_and_a_cap_trains_nothing_over_it_and_keeps_its_front(tmp_path, mode):
    """`nas search` itself: every genome over the params cap is logged as infeasible without training (no
    seconds spent), no trained one is over it, and pareto.json is the front of the log's feasible results."""
    import contextlib
    import io

    import yaml

    from nas.cli import main

    rng = random.Random(3)
    cap = sorted(OBJECTIVE(random_genome(SMALL, rng)).params for _ in range(40))[20]
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["search"].update({"mode": mode, "budget": {"evaluations": 40}, "objectives": TWO,
                           "constraints": {"params": cap}})  # fmt: skip
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["search", str(cfg), "--run-dir", str(run), "--workers", "0"]) == 0
    lines = [Result.from_dict(json.loads(line)) for line in (run / "evaluations.jsonl").read_text().splitlines()]
    capped = [r for r in lines if r.error and r.error.startswith(INFEASIBLE)]
    trained = [r for r in lines if r.ok]
    assert capped and trained, "a cap at the median leaves both kinds"
    assert all(r.params > cap and r.seconds == 0 for r in capped)
    assert all(r.params <= cap for r in trained)
    document = json.loads((run / "pareto.json").read_text())
    front = {trained[i].key for i in pareto.pareto_front([pareto.objective_vector(r, TWO) for r in trained])}
    assert {m["key"] for m in document["front"]} == front and len(front) > 1
