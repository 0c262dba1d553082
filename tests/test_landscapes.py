"""The family of synthetic landscapes (`fitness.landscape`): each deterministic, in [0, 1], with its own
optimum, selectable in the config; `bump` stays the default and unchanged."""

import random

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.config import parse_config
from nas.errors import UserError
from nas.evaluate.landscapes import LANDSCAPES, skip_bits
from nas.evaluate.objective import build_objective
from nas.genome import load_space
from nas.genome import shortcuts as sc
from nas.strategies.random_search import random_genome

SPACE = load_space(ROOT / "encodings" / "densenet_small.yaml")


def objective(landscape: str | None):
    fitness = {"objective": "synthetic"} | ({"landscape": landscape} if landscape else {})
    config = parse_config({"encoding": str(ROOT / "encodings/densenet_small.yaml"), "fitness": fitness})
    return build_objective(config, SPACE)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(LANDSCAPES), st.integers(0, 2**32))
def test_every_landscape_is_deterministic_and_in_the_unit_interval(name, seed):
    genome = random_genome(SPACE, random.Random(seed))
    first = objective(name)(genome)
    assert 0.0 <= first.fitness <= 1.0
    assert objective(name)(genome).fitness == first.fitness


def test_bump_is_the_default_and_the_landscapes_differ():
    genomes = [random_genome(SPACE, random.Random(s)) for s in range(30)]
    scores = {name: [objective(name)(g).fitness for g in genomes] for name in LANDSCAPES}
    assert [objective(None)(g).fitness for g in genomes] == scores["bump"]
    assert len({tuple(v) for v in scores.values()}) == len(LANDSCAPES)
    noise = [n - b for n, b in zip(scores["noisy"], scores["bump"], strict=True)]
    assert 0.01 < max(abs(x) for x in noise) < 0.2  # seed-like, not a different problem


def test_the_epistatic_optimum_is_shallow_and_wide_with_skip_links_and_scores_one():
    obj = objective("epistatic")
    goal = obj.landscape.epistatic_goal
    optimum = SPACE.genome(SPACE.encode(tuple(goal)), tuple(skip_bits(n) for n, _ in goal))
    assert obj(optimum).fitness == pytest.approx(1.0)
    assert obj(obj.optimum()).fitness < 0.8  # the bump's optimum is far from it
    one_flip = list(optimum.shortcut_level)
    one_flip[0] = ("0" if one_flip[0][0] == "1" else "1") + one_flip[0][1:]
    flipped = SPACE.genome(SPACE.encode(tuple(goal)), tuple(one_flip))
    assert obj(flipped).fitness < obj(optimum).fitness


def test_the_cost_landscape_rewards_fewer_parameters_and_its_optimum_is_not_the_largest_network():
    obj = objective("cost")
    largest = tuple((hi, ghi) for (_, hi), (_, ghi) in zip(SPACE.layers, SPACE.growth_rate, strict=True))
    big = SPACE.genome(SPACE.encode(largest), tuple(sc.all_ones(n) for n, _ in largest))
    medium = SPACE.genome(SPACE.encode(((3, 10), (3, 10))), tuple(sc.all_ones(3) for _ in range(2)))
    assert obj(medium).fitness > obj(big).fitness
    same_accuracy = obj.landscape.cost_fitness(medium, 1000) > obj.landscape.cost_fitness(medium, 5000)
    assert same_accuracy


def test_an_unknown_landscape_is_a_config_error_with_its_key():
    with pytest.raises(UserError, match=r"^fitness\.landscape: must be one of bump, epistatic, noisy, cost or"):
        objective("plateau")
