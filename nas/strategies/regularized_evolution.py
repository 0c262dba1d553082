"""`regularized-evolution`: aging evolution (Real, Aggarwal, Huang, Le, AAAI 2019), batched for a cluster.

The population is a queue, oldest first. It starts with `regularized_evolution.population` random genomes
(sampled as in `random`), asked in batches of `search.batch_size` (the last one smaller when the population is
not a multiple of it). After that each ask is `batch_size` children: for each, `sample_size` distinct members
are drawn uniformly, the fittest (failures worst, ties to the earlier drawn) is the parent, and the child is the
parent mutated once. When the batch is told the children join the queue in ask order and, for each, the oldest
member leaves. All parents of one batch are drawn from the population as it stood before the batch, which is
what makes the batch independent of the order in which its trainings finish.

A mutation (each kind with probability 1/2) is either
- architecture: one coordinate of the architecture level (a block's layers or growth rate, or the log10
  learning rate) moves by one step (1 for integers, a tenth of the range for the learning rate) up or down,
  inward at a bound; when a block's layers change its bits are resized (`shortcuts.resize`); or
- shortcuts: one uniformly chosen bit flips, and every other bit with probability 1/n (n bits in all),
so the child always differs from its parent. A space whose architecture is a single point always flips bits.
"""

import random
from typing import Any

from nas.config import SearchConfig
from nas.genome import shortcuts
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.strategies.random_search import random_genome
from nas.strategies.ranking import rank_key
from nas.strategies.shortcut_ga import join, split
from nas.strategies.strategy import Strategy, register

LEARNING_RATE_STEPS = 10  # the log learning-rate range is crossed in this many mutation steps


def flip_bits(bits: tuple[str, ...], layers: list[int], rng: random.Random) -> tuple[str, ...]:
    """Flip one uniformly chosen bit and each other with probability 1/n."""
    flat = list(join(bits))
    n = len(flat)
    forced = rng.randrange(n)
    for i in range(n):
        if i == forced or rng.random() < 1 / n:
            flat[i] = "1" if flat[i] == "0" else "0"
    return split("".join(flat), layers)


def move_coordinate(genome: Genome, space: SearchSpace, rng: random.Random) -> Genome | None:
    """Move one architecture coordinate by one step (resizing that block's bits); None if nothing can move."""
    dims = space.dimensions
    movable = [i for i, d in enumerate(dims) if d.width > 0]
    if not movable:
        return None
    position = space.encode(genome.architecture_level, genome.learning_rate)
    i = rng.choice(movable)
    dim = dims[i]
    step = (1.0 if dim.integer else dim.width / LEARNING_RATE_STEPS) * rng.choice((-1, 1))
    if not dim.low <= position[i] + step <= dim.high:
        step = -step
    position[i] += step
    bits = list(genome.shortcut_level)
    if dim.integer and i % 2 == 0:  # blocks[b].layers sits at 2b, growth_rate at 2b + 1
        b = i // 2
        bits[b] = shortcuts.resize(bits[b], genome.blocks[b].layers, int(round(position[i])), rng)
    return space.genome(position, tuple(bits))


def mutate(genome: Genome, space: SearchSpace, rng: random.Random) -> Genome:
    """One mutation: an architecture step or bit flips, with equal odds (see the module docstring)."""
    if rng.random() < 0.5:
        child = move_coordinate(genome, space, rng)
        if child is not None:
            return child
    layers = [b.layers for b in genome.blocks]
    position = space.encode(genome.architecture_level, genome.learning_rate)
    return space.genome(position, flip_bits(genome.shortcut_level, layers, rng))


@register("regularized-evolution")
class RegularizedEvolution(Strategy):
    def __init__(self, search: SearchConfig, space: SearchSpace, seed: int):
        super().__init__(search, space, seed)
        self.population: list[tuple[Genome, float | None]] = []  # oldest first

    def propose(self) -> list[Genome]:
        size = self.search.regularized_evolution.population
        if len(self.population) < size:
            return [
                random_genome(self.space, self.rng)
                for _ in range(min(self.search.batch_size, size - len(self.population)))
            ]
        return [mutate(self.tournament(), self.space, self.rng) for _ in range(self.search.batch_size)]

    def tournament(self) -> Genome:
        """The fittest of `sample_size` distinct members drawn uniformly."""
        drawn = self.rng.sample(range(len(self.population)), self.search.regularized_evolution.sample_size)
        winner = max(drawn, key=lambda i: rank_key(self.population[i][1]))
        return self.population[winner][0]

    def absorb(self, genomes: list[Genome], fitness: list[float | None]) -> None:
        size = self.search.regularized_evolution.population
        for member in zip(genomes, fitness, strict=True):
            self.population.append(member)
            if len(self.population) > size:
                self.population.pop(0)

    def state(self) -> dict[str, Any]:
        return {"population": [{"genome": g.to_dict(), "fitness": f} for g, f in self.population]}

    def load_state(self, data: dict[str, Any]) -> None:
        self.population = [(Genome.from_dict(m["genome"]), m["fitness"]) for m in data["population"]]
