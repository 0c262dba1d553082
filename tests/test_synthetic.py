"""The synthetic objective and the analytic cost it reports."""

import random

from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.config import parse_config
from nas.evaluate.objective import build_objective
from nas.genome import load_space
from nas.genome import shortcuts as sc
from nas.genome.architecture import Architecture
from nas.genome.channels import block_channels
from nas.genome.genome import BlockGene, Genome
from nas.model.analytic_cost import analytic_cost
from nas.model.cost import architecture_cost


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32))
def test_analytic_cost_equals_the_built_network(seed):
    rng = random.Random(seed)
    depths = [rng.randint(1, 5) for _ in range(rng.randint(1, 3))]
    genome = Genome(tuple(BlockGene(n, rng.randint(1, 9), sc.random_bits(n, rng)) for n in depths))
    arch = Architecture(
        rng.randint(1, 3), rng.randint(2, 12), rng.choice([8, 9, 16, 17]), rng.randint(2, 16), rng.randint(1, 4),
        rng.choice([0.5, 0.7, 1.0]), genome,
    )  # fmt: skip
    if any(c_in < 1 for c_in, _ in block_channels(arch)):
        return  # compression leaves no channels: not a valid architecture (rejected on load)
    assert analytic_cost(arch) == architecture_cost(arch)


def objective(extra=None):
    config = parse_config({"fitness": {"objective": "synthetic"}, **(extra or {})})
    space = load_space(ROOT / "encodings/densenet_small.yaml")
    return build_objective(config, space), space


def test_optimum_scores_one_and_neighbours_less():
    obj, space = objective()
    best = obj.optimum()
    assert obj(best).fitness == 1.0
    rng = random.Random(0)
    for _ in range(50):
        position = space.random_position(rng)
        blocks, _ = space.decode(position)
        other = space.genome(position, tuple(sc.random_bits(n, rng) for n, _ in blocks))
        if other != best:
            assert obj(other).fitness < 1.0


def test_dense_everywhere_is_not_optimal():
    obj, _ = objective()
    best = obj.optimum()
    dense = Genome(tuple(BlockGene(b.layers, b.growth_rate, sc.all_ones(b.layers)) for b in best.blocks))
    assert obj(dense).fitness < obj(best).fitness


def test_results_are_deterministic_and_carry_cost():
    obj, space = objective()
    genome = obj.optimum()
    a, b = obj(genome), obj(genome)
    assert a.fitness == b.fitness and a.key == genome.key and a.status == "ok"
    assert (a.params, a.flops) == analytic_cost(obj.architecture(genome))
