"""The shortcut GA: DEAP's operators keep bit lengths valid, elitism never loses the best, seeding is as designed."""

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from nas.genome import shortcuts
from nas.strategies.ranking import Score, score_order
from nas.strategies.shortcut_ga import GAConfig, ShortcutGA, breed, revary, seed_population, split

layers_st = st.lists(st.integers(1, 7), min_size=1, max_size=3)
fitness_st = st.one_of(st.none(), st.floats(0, 1))


def sc(fitness, params=None, key=""):
    return Score(fitness, params, key)


@st.composite
def ga_configs(draw, population):
    return GAConfig(
        population=population,
        tournament_size=draw(st.integers(1, population)),
        crossover_prob=draw(st.floats(0, 1)),
        mutation_prob=draw(st.floats(0, 1)),
        bit_flip_prob=draw(st.floats(0.01, 1)),
        elitism=draw(st.integers(0, population - 1)),
    )


@st.composite
def generations(draw):
    """Layers, a scored population of valid strings, a GA config and a seed."""
    layers = draw(layers_st)
    size = draw(st.integers(2, 8))
    n = sum(shortcuts.bit_length(x) for x in layers)
    population = [draw(st.text("01", min_size=n, max_size=n)) for _ in range(size)]
    fitness = [sc(draw(fitness_st), draw(st.integers(1, 3)), str(i)) for i in range(size)]
    return layers, population, fitness, draw(ga_configs(size)), draw(st.integers(0, 2**32))


def valid(bits: str, layers: list[int]) -> bool:
    blocks = split(bits, layers)
    return all(shortcuts.validate(b, n) == b for b, n in zip(blocks, layers, strict=True))


@given(generations())
def test_breeding_keeps_size_and_every_string_valid(case):
    layers, population, fitness, ga, seed = case
    children = breed(population, fitness, ga, random.Random(seed))
    assert len(children) == len(population)
    assert all(valid(child, layers) for child, _ in children)
    assert all(score is None for _, score in children[ga.elitism :])  # children are unscored


@given(generations())
def test_elitism_keeps_the_best_unchanged_at_the_front(case):
    layers, population, fitness, ga, seed = case
    children = breed(population, fitness, ga, random.Random(seed))
    ranked = sorted(range(len(population)), key=lambda i: score_order(fitness[i]))
    assert children[: ga.elitism] == [(population[i], fitness[i]) for i in ranked[: ga.elitism]]  # with scores


@given(generations())
def test_breeding_is_deterministic_for_a_seed_and_leaves_global_random_alone(case):
    layers, population, fitness, ga, seed = case
    random.seed(42)
    before = random.getstate()
    first = breed(population, fitness, ga, random.Random(seed))
    assert random.getstate() == before
    assert breed(population, fitness, ga, random.Random(seed)) == first


@settings(max_examples=30)
@given(layers_st, st.integers(1, 4), st.integers(0, 2**32))
def test_elitism_never_loses_the_best_over_a_run(layers, elitism, seed):
    rng = random.Random(seed)
    ga = GAConfig(population=6, elitism=elitism, mutation_prob=1.0, bit_flip_prob=0.5)

    def score(bits: str) -> float:  # rewards ones early in the string, so the optimum is not all-ones
        return sum(int(b) * (i % 3) for i, b in enumerate(bits)) / (1 + len(bits))

    run = ShortcutGA.start(layers, ga.population, rng)
    best_so_far = None
    for _ in range(6):
        run = run.record(
            [None if s is not None else sc(score(b)) for b, s in zip(run.population, run.scores, strict=True)]
        )
        best_now = max(score(b) for b in run.population)
        if best_so_far is not None:
            assert best_now >= best_so_far
        best_so_far = best_now
        assert run.best.fitness == best_now  # with elitism the run's best is always in the population
        run = run.evolve(ga, rng)


def test_first_generation_is_all_ones_then_the_resized_known_string_then_distinct_random_strings():
    rng = random.Random(0)
    known = ("101", "1")  # blocks of 2 and 1 layers
    population = seed_population([3, 1], 6, rng, known=[(known, [2, 1])])
    assert population[0] == shortcuts.all_ones(3) + shortcuts.all_ones(1)
    resized = split(population[1], [3, 1])
    # pairs that exist in both shapes keep their bit: (0,2)->1, (0,out)->0, (1,out)->1 and block 2 unchanged
    assert resized[0][shortcuts.bit_index(3, 0, 2)] == "1"
    assert resized[0][shortcuts.bit_index(3, 0, 4)] == "0"
    assert resized[0][shortcuts.bit_index(3, 1, 4)] == "1"
    assert resized[1] == "1"
    assert len(set(population)) == 6


def test_a_tiny_space_fills_the_population_with_duplicates_instead_of_looping():
    population = seed_population([1], 5, random.Random(0))  # one bit: only two strings exist
    assert len(population) == 5 and set(population) <= {"0", "1"}


def test_best_tracks_the_run_and_state_round_trips_through_json():
    rng = random.Random(2)
    run = ShortcutGA.start([2, 3], 4, rng).record([sc(0.1), sc(None), sc(0.9), sc(0.3)])
    assert run.best_bits == run.population[2] and run.best.fitness == 0.9
    assert run.best_blocks() == split(run.population[2], [2, 3])
    run = run.evolve(GAConfig(population=4), rng)
    assert run.scores[0] == sc(0.9) and run.todo() == [1, 2, 3]  # the elite keeps its score: not asked again
    run = run.with_asked(1)
    assert run.todo() == [2, 3] and not run.complete
    run = run.record([None, sc(None), sc(None), sc(None)])
    assert run.complete and run.best.fitness == 0.9  # failures never replace the best
    data = json.loads(json.dumps(run.to_dict()))
    assert data == run.to_dict() and ShortcutGA.from_dict(data) == run


def test_a_seed_already_evaluated_carries_its_score():
    run = ShortcutGA.start([2], 3, random.Random(0), score=lambda bits: sc(0.4) if bits == "111" else None)
    assert run.population[0] == "111" and run.scores[0] == sc(0.4) and run.todo() == [1, 2]


@given(st.text("01", min_size=1, max_size=40), st.floats(0.01, 1), st.integers(0, 2**32))
def test_revary_always_changes_the_string_and_keeps_its_length(bits, flip, seed):
    varied = revary(bits, GAConfig(bit_flip_prob=flip), random.Random(seed))
    assert len(varied) == len(bits) and set(varied) <= {"0", "1"}
    assert varied != bits  # the forced bit flips exactly once
