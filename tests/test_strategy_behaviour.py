"""The search operators pinned by behaviour: the PSO update against a hand-computed example, selection that
favours the fitter, elitism, crossover and mutation that do vary, aging that drops the oldest.

Each of these was a planted bug the rest of the suite let through (tests/MUTATION.md): the cognitive term
zeroed, tournaments that pick the worst, a GA that only copies its parents.
"""

import random
from collections import Counter

from conftest import ROOT

from nas.config import parse_config
from nas.genome import Genome, load_space
from nas.genome.space import Dimension
from nas.strategies import shortcut_ga, swarm
from nas.strategies.ranking import Score
from nas.strategies.regularized_evolution import RegularizedEvolution
from nas.strategies.shortcut_ga import GAConfig
from nas.strategies.swarm import PSOConfig

SMALL = load_space(ROOT / "encodings" / "densenet_small.yaml")


class FixedDraws(random.Random):
    """A generator whose `random()` returns the given values in turn (r1, r2 of each dimension)."""

    def __init__(self, values: list[float]):
        super().__init__(0)
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


DIMS = [Dimension("a", 0, 10), Dimension("b", 0, 10)]


def test_pso_velocity_update_worked_out_by_hand():
    # w 0.5, c1 1, c2 2, clamp 0.5 of the span [-0.5, 10.5] (a step of at most 5.5). Dimension a: x 2, v 0.4,
    # personal 3, global 1, r1 0.5, r2 0.25: v = 0.5 * 0.4 + 1 * 0.5 * (3 - 2) + 2 * 0.25 * (1 - 2) = 0.2, x 2.2.
    # Dimension b: x 5, v -1, personal 9, global 8, r1 1, r2 0.5: v = -0.5 + 4 + 3 = 6.5, clamped to 5.5: x 10.5.
    pso = PSOConfig(w=0.5, c1=1.0, c2=2.0, velocity_clamp=0.5)
    particle = swarm.Particle((2.0, 5.0), (0.4, -1.0), swarm.BestPoint((3.0, 9.0), ("1",), 0.5))
    guide = swarm.BestPoint((1.0, 8.0), ("1",), 0.9)
    moved = swarm.fly(particle, guide, DIMS, pso, FixedDraws([0.5, 0.25, 1.0, 0.5]))
    assert [round(v, 12) for v in moved.velocity] == [0.2, 5.5]
    assert [round(x, 12) for x in moved.position] == [2.2, 10.5]
    assert moved.best == particle.best, "flying does not change the personal best"


def test_pso_cognitive_and_social_pulls_alone():
    # Only the personal best pulls (c2 0): x 2 -> 2 + 1.5 * 0.5 * (6 - 2) = 5; only the global best: 2 + 2 * 1 * 1.
    particle = swarm.Particle((2.0, 2.0), (0.0, 0.0), swarm.BestPoint((6.0, 6.0), ("1",), 0.5))
    guide = swarm.BestPoint((3.0, 3.0), ("1",), 0.9)
    cognitive = swarm.fly(particle, guide, DIMS, PSOConfig(w=0.0, c1=1.5, c2=1e-9, velocity_clamp=1.0),
                          FixedDraws([0.5, 0.0, 0.5, 0.0]))  # fmt: skip
    assert [round(x, 6) for x in cognitive.position] == [5.0, 5.0]
    social = swarm.fly(particle, guide, DIMS, PSOConfig(w=0.0, c1=1e-9, c2=2.0, velocity_clamp=1.0),
                       FixedDraws([0.0, 1.0, 0.0, 1.0]))  # fmt: skip
    assert [round(x, 6) for x in social.position] == [4.0, 4.0]


def test_pso_wall_absorbs_the_velocity():
    # x 9.8, v 2, w 1, no pulls: x would reach 11.8, past the span's end 10.5, so it stops there with v 0. The
    # second coordinate lands exactly on the span's other end, -0.5, which is inside: it keeps its velocity.
    particle = swarm.Particle((9.8, 1.0), (2.0, -1.5), None)
    moved = swarm.fly(particle, None, DIMS, PSOConfig(w=1.0, c1=1.0, c2=1.0, velocity_clamp=1.0),
                      FixedDraws([0.3, 0.3, 0.3, 0.3]))  # fmt: skip
    assert moved.position == (10.5, -0.5) and moved.velocity == (0.0, -1.5)


POPULATION = ["000000", "000011", "001100", "110000", "010101", "101010"]
SCORES = [Score(f, 1000, k) for f, k in zip((0.1, 0.2, 0.3, 0.4, 0.5, 0.6), "abcdef", strict=True)]


def children(ga: GAConfig, seeds: range) -> list[str]:
    out = []
    for seed in seeds:
        out += [bits for bits, _ in shortcut_ga.breed(POPULATION, SCORES, ga, random.Random(seed))]
    return out


def test_ga_tournament_picks_the_fitter_more_often():
    """Without crossover and mutation a child is a tournament winner: the fitter a string, the more copies."""
    ga = GAConfig(population=6, tournament_size=3, crossover_prob=0.0, mutation_prob=0.0, elitism=0)
    counts = Counter(children(ga, range(60)))
    assert set(counts) <= set(POPULATION), "no variation: every child is a copy of a member"
    seen = [counts[b] for b in POPULATION]  # worst to best
    assert all(a <= b for a, b in zip(seen, seen[1:], strict=False)), seen
    assert seen[-1] > 3 * seen[2], seen


def test_ga_elites_pass_unchanged_with_their_scores():
    ga = GAConfig(population=6, tournament_size=2, crossover_prob=1.0, mutation_prob=1.0, bit_flip_prob=0.5,
                  elitism=2)  # fmt: skip
    for seed in range(10):
        out = shortcut_ga.breed(POPULATION, SCORES, ga, random.Random(seed))
        assert out[:2] == [("101010", SCORES[5]), ("010101", SCORES[4])]
        assert len(out) == 6 and all(score is None for _, score in out[2:])
    none = shortcut_ga.breed(POPULATION, SCORES, GAConfig(population=6, elitism=0), random.Random(0))
    assert all(score is None for _, score in none)


def test_ga_crossover_and_mutation_each_make_new_strings():
    only_crossover = GAConfig(population=6, tournament_size=2, crossover_prob=1.0, mutation_prob=0.0, elitism=0)
    crossed = children(only_crossover, range(20))
    assert sum(bits not in POPULATION for bits in crossed) > len(crossed) / 4
    only_mutation = GAConfig(population=6, tournament_size=2, crossover_prob=0.0, mutation_prob=1.0,
                             bit_flip_prob=0.3, elitism=0)  # fmt: skip
    mutated = children(only_mutation, range(20))
    assert sum(bits not in POPULATION for bits in mutated) > len(mutated) / 2
    flips = [min(sum(a != b for a, b in zip(bits, p, strict=True)) for p in POPULATION) for bits in mutated]
    assert max(flips) >= 2, "bit_flip_prob flips several bits"


def evolution(population: int = 5, sample_size: int = 2) -> RegularizedEvolution:
    search = parse_config(
        {"search": {"strategy": "regularized-evolution", "batch_size": 1,
                    "regularized_evolution": {"population": population, "sample_size": sample_size}}}
    ).search  # fmt: skip
    return RegularizedEvolution(search, SMALL, seed=0)


def member(i: int, fitness: float) -> tuple[Genome, Score]:
    genome = SMALL.genome([1.0, 4.0 + i, 1.0, 4.0], ("1", "1"))
    return genome, Score(fitness, 100, genome.key)


def test_aging_drops_the_oldest_whatever_its_fitness():
    strategy = evolution(population=3)
    strategy.absorb([member(0, 0.9), member(1, 0.1), member(2, 0.5)])
    strategy.absorb([member(3, 0.2)])
    assert [g.blocks[0].growth_rate for g, _ in strategy.population] == [5, 6, 7], "the best but oldest left"
    strategy.absorb([member(4, 0.3), member(5, 0.4)])
    assert [g.blocks[0].growth_rate for g, _ in strategy.population] == [7, 8, 9]


def test_aging_tournament_picks_the_fitter_more_often():
    strategy = evolution(population=5, sample_size=2)
    strategy.absorb([member(i, f) for i, f in enumerate((0.5, 0.1, 0.9, 0.3, 0.7))])
    wins = Counter(strategy.tournament().blocks[0].growth_rate for _ in range(2000))
    by_fitness = [wins[4 + i] for i in (1, 3, 0, 4, 2)]  # members from the worst (0.1) to the best (0.9)
    assert all(a < b for a, b in zip(by_fitness, by_fitness[1:], strict=False)), by_fitness
    assert by_fitness[-1] > 600, "the best of 5 wins 1 - (4/5)**2 = 36% of two-member tournaments"


def test_aging_evolution_architecture_step_moves_one_coordinate_by_one_step_either_way_within_its_range():
    """`move_coordinate`, aging evolution's architecture mutation: one coordinate moves by one step (1 for an
    integer, a 1/LEARNING_RATE_STEPS of the range for the learning rate), up as often as down, never out of its
    range, the range's ends reached; a block whose depth moved has bits for its new depth."""
    from nas.strategies.regularized_evolution import LEARNING_RATE_STEPS, move_coordinate

    space = load_space(ROOT / "encodings" / "densenet_small.yaml")
    dims, rng = space.dimensions, random.Random(0)
    steps, ends = Counter(), Counter()
    for _ in range(600):
        blocks, rate = space.decode(space.random_position(rng))
        bits = tuple("".join(rng.choice("01") for _ in range(n * (n + 1) // 2)) for n, _ in blocks)
        genome = space.genome(space.encode(blocks, rate), bits)
        moved = move_coordinate(genome, space, rng)
        before = space.encode(genome.architecture_level, genome.learning_rate)
        after = space.encode(moved.architecture_level, moved.learning_rate)
        changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        assert len(changed) == 1, (before, after)
        (i,) = changed
        step = after[i] - before[i]
        assert abs(step) == (1.0 if dims[i].integer else dims[i].width / LEARNING_RATE_STEPS)
        assert dims[i].low <= after[i] <= dims[i].high
        steps[step > 0] += 1
        ends[after[i] in (dims[i].low, dims[i].high)] += 1
        for block in moved.blocks:
            assert len(block.shortcuts) == block.layers * (block.layers + 1) // 2
    assert min(steps.values()) > 200, steps  # up and down about equally often
    assert ends[True] > 50, ends  # a step may land on either end of a range


def hgapso_after(iterations: int, **hgapso) -> object:
    """hgapso told a falling landscape (every genome of iteration t scores 1 / (t + 2): nothing improves on what
    came before) for `iterations` synchronous iterations."""
    from nas.evaluate.result import Result
    from nas.strategies import build_strategy

    section = {"strategy": "hgapso", "hgapso": hgapso, "budget": {"evaluations": 10_000}}
    search = parse_config({"search": section}).search
    strategy = build_strategy(search, SMALL, 3)
    for t in range(iterations):
        asked = strategy.ask()
        fitness = 1 / (t + 2)
        strategy.tell([Result(key=g.key, genome=g.to_dict(), status="ok", fitness=fitness, params=None) for g in asked])
    return strategy


def test_hgapso_respawns_a_particle_whose_personal_best_stalled_and_forgets_that_best():
    plain, restarting = hgapso_after(2), hgapso_after(2, restart_after=1)
    assert all(p.best is not None for p in plain.swarm.particles)
    # the first iteration set each best, the second improved none: every particle respawned with no best
    assert all(p.best is None for p in restarting.swarm.particles)
    assert restarting.swarm.best is not None, "the swarm's best survives restarts"
    assert restarting.particle_stalls == [0] * len(restarting.swarm.particles)
    kept = restarting.state_dict()
    again = hgapso_after(0, restart_after=1)
    again.load_state_dict(kept)
    assert again.particle_stalls == restarting.particle_stalls
