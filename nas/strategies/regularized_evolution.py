"""`regularized-evolution`: aging evolution (Real, Aggarwal, Huang, Le, AAAI 2019), batched or steady-state.

The population is a queue, oldest first. It starts with `regularized_evolution.population` random genomes
(sampled as in `random`), asked in batches of `search.batch_size` (the last one smaller when the population is
not a multiple of it). After that each ask is `batch_size` children: for each, `sample_size` members are drawn
uniformly with replacement (as in the paper), the best of them (the project's ranking: fitness, then fewer
parameters, then key; failures worst) is the parent, and the child is the parent mutated once. A child that is
already evaluated, in flight or earlier in the batch is bred again (a new tournament and mutation, up to
`BREED_ATTEMPTS` times); a slot with nothing new is left empty. So a repeat never rejoins the queue and never
resets a genome's age without a training. When a result is told the child joins the queue and the oldest member
leaves. In a sync batch all parents are drawn from the population as it stood before the batch, which makes the
batch independent of the order in which its trainings finish. With several objectives (`search.objectives`) the
tournament's best is the member of lowest Pareto front rank, then largest crowding distance, over the whole
population (NSGA-II's crowded comparison; `ranking.population_keys`), then the ranking rule.

Asynchronously the algorithm is the paper's steady state: `ask(n)` breeds n children from the population as it
stands (once any member is told; before that, and once the initial random genomes are all asked, it waits),
and each told result joins the queue at once.

A mutation (each kind with probability 1/2) is either
- architecture: one coordinate of the architecture level (a block's layers or growth rate, or the log10
  learning rate) moves by one step (1 for integers, a tenth of the range for the learning rate) up or down,
  inward at a bound; when a block's layers change its bits are resized (`shortcuts.resize`); or
- shortcuts: one uniformly chosen bit flips, and every other bit with probability 1/n (n bits in all),
so the child always differs from its parent. A space whose architecture is a single point always flips bits.
"""

import random
from dataclasses import dataclass
from typing import Any

from nas.config import SearchConfig, bounds
from nas.errors import UserError
from nas.genome import shortcuts
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.strategies.random_search import new_random_genomes
from nas.strategies.ranking import Score, population_keys
from nas.strategies.shortcut_ga import join, split
from nas.strategies.strategy import Strategy, register

LEARNING_RATE_STEPS = 10  # the log learning-rate range is crossed in this many mutation steps
BREED_ATTEMPTS = 20  # tournaments + mutations per child slot before it is left empty


@dataclass
class EvolutionConfig:
    """`search.regularized_evolution`: aging evolution (Real et al. 2019)."""

    population: int = bounds(16, 2, 100_000)
    sample_size: int = bounds(4, 1, 100_000)

    def check(self, key: str) -> None:
        """Rules across fields (`nas.config.check_section`): a tournament is no larger than the population."""
        if self.sample_size > self.population:
            raise UserError("must be at most the population", key=f"{key}.sample_size")


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


@register("regularized-evolution", config=EvolutionConfig)
class RegularizedEvolution(Strategy):
    def __init__(self, search: SearchConfig, space: SearchSpace, seed: int):
        super().__init__(search, space, seed)
        self.population: list[tuple[Genome, Score]] = []  # oldest first
        self.initial_asked = 0  # slots of the initial random population drawn so far
        self.initial_flying: list[str] = []  # keys of initial random genomes asked and not told yet

    def propose(self, limit: int | None) -> list[Genome]:
        size = self.config.population
        count = self.search.batch_size if limit is None else limit
        if self.initial_asked < size:
            slots = min(count, size - self.initial_asked)
            self.initial_asked += slots
            drawn = new_random_genomes(self, slots)
            self.initial_flying += [g.key for g in drawn]
            return drawn
        if not self.population:
            return []  # async: wait for the first initial results
        keys = population_keys([score for _, score in self.population])
        return [child for child in (self.child(keys) for _ in range(count)) if child is not None]

    def child(self, keys: list[tuple[Any, ...]]) -> Genome | None:
        """A new child of a tournament winner (`keys`: the population's sort keys), or None (slot left empty)
        when none is new."""
        for _ in range(BREED_ATTEMPTS):
            child = mutate(self.tournament(keys), self.space, self.rng)
            if self.claim(child):
                return child
        self.unfilled()
        return None

    def tournament(self, keys: list[tuple[Any, ...]] | None = None) -> Genome:
        """The best (smallest key; `keys` default to the population's) of `sample_size` members drawn uniformly
        with replacement."""
        keys = keys if keys is not None else population_keys([score for _, score in self.population])
        drawn = [self.rng.randrange(len(self.population)) for _ in range(self.config.sample_size)]
        return self.population[min(drawn, key=lambda i: keys[i])][0]

    def retract(self, withdrawn: list[Genome]) -> None:
        """A withdrawn initial genome gives its slot back (the population starts from `population` trained
        random genomes all the same); a withdrawn child leaves nothing: the queue changes only on a tell."""
        keys = {g.key for g in withdrawn}
        self.initial_asked -= sum(key in keys for key in self.initial_flying)
        self.initial_flying = [key for key in self.initial_flying if key not in keys]

    def absorb(self, told: list[tuple[Genome, Score]]) -> None:
        size = self.config.population
        if self.initial_flying:
            keys = {g.key for g, _ in told}
            self.initial_flying = [key for key in self.initial_flying if key not in keys]
        for member in told:
            self.population.append(member)
            if len(self.population) > size:
                self.population.pop(0)

    def state(self) -> dict[str, Any]:
        return {
            "population": [{"genome": g.to_dict(), "score": s.to_list()} for g, s in self.population],
            "initial_asked": self.initial_asked,
        } | ({"initial_flying": list(self.initial_flying)} if self.initial_flying else {})

    def load_state(self, data: dict[str, Any]) -> None:
        self.population = [(Genome.from_dict(m["genome"]), Score.from_list(m["score"])) for m in data["population"]]
        self.initial_asked = data["initial_asked"]
        self.initial_flying = list(data.get("initial_flying", []))  # absent: a state from before withdraw
