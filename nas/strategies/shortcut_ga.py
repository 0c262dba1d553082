"""The shortcut level: a GA over one architecture's shortcut bitstrings, built from DEAP's operators.

A GA individual is the concatenation of the block strings of one fixed architecture (block b has
L_b(L_b+1)/2 bits), so every individual of one GA has the same length and DEAP's two-point crossover and
bit-flip mutation keep it valid. One generation is DEAP's `eaSimple` step with elitism: the `elitism` best
individuals pass unchanged, the rest are chosen by `selTournament` and varied by `varAnd` (`cxTwoPoint` with
`crossover_prob` per pair, `mutFlipBit` with `mutation_prob` per individual and `bit_flip_prob` per bit). DEAP
draws from the global `random`, which `lend_to_global` points at the strategy's own generator.

Elites are kept in the population and so are asked again the next generation: the ask size stays constant
(one batch keeps a cluster busy) and the driver answers a genome it has already evaluated from its log for free.
The state is plain strings and floats, so it checkpoints as JSON.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from deap import algorithms, base, tools

from nas.config import GAConfig
from nas.genome import shortcuts
from nas.strategies.ranking import is_better, rank_key
from nas.strategies.rng import lend_to_global

SEED_ATTEMPTS = 20  # random draws per free slot before a duplicate is accepted (tiny spaces run out of strings)


class _Fitness(base.Fitness):
    weights = (1.0,)


class _Individual(list):
    """A list of 0/1 ints with a DEAP fitness: what DEAP's operators expect."""

    def __init__(self, bits: str, fitness: float | None = None):
        super().__init__(int(c) for c in bits)
        self.fitness = _Fitness((rank_key(fitness),))

    def bits(self) -> str:
        return "".join(str(b) for b in self)


def join(blocks: Sequence[str]) -> str:
    return "".join(blocks)


def split(bits: str, layers: Sequence[int]) -> tuple[str, ...]:
    """Cut a concatenated bitstring back into one string per block."""
    if len(bits) != sum(shortcuts.bit_length(n) for n in layers):
        raise ValueError(f"{len(bits)} bits do not fit blocks of {list(layers)} layers")
    out, start = [], 0
    for n in layers:
        out.append(bits[start : start + shortcuts.bit_length(n)])
        start += shortcuts.bit_length(n)
    return tuple(out)


def random_string(layers: Sequence[int], rng: random.Random) -> str:
    return join([shortcuts.random_bits(n, rng) for n in layers])


Known = tuple[Sequence[str], Sequence[int]]  # (bits per block, the layers they were laid out for)


def seed_population(layers: Sequence[int], size: int, rng: random.Random,
                    known: Sequence[Known] = ()) -> list[str]:  # fmt: skip
    """The first generation (DESIGN.md section 3): the all-ones string (the DenseNet of this architecture),
    then each `known` string resized to `layers` (the particle's best so far, then the swarm's), then
    distinct random strings. Duplicates are only accepted once the space of strings is nearly exhausted."""
    population = [join([shortcuts.all_ones(n) for n in layers])]
    for bits, old_layers in known:
        resized = join([shortcuts.resize(b, o, n, rng) for b, o, n in zip(bits, old_layers, layers, strict=True)])
        population.append(resized)
    population = list(dict.fromkeys(population))[:size]
    attempts = 0
    while len(population) < size:
        candidate = random_string(layers, rng)
        attempts += 1
        if candidate not in population or attempts > SEED_ATTEMPTS * size:
            population.append(candidate)
    return population


def _mate(a: _Individual, b: _Individual) -> tuple[_Individual, _Individual]:
    """Two-point crossover; a 1-bit string has no two cut points, so it passes unchanged."""
    return tools.cxTwoPoint(a, b) if min(len(a), len(b)) >= 2 else (a, b)


def breed(population: Sequence[str], fitness: Sequence[float | None], ga: GAConfig,
          rng: random.Random) -> list[str]:  # fmt: skip
    """The next generation: the `ga.elitism` best unchanged (ties: earlier first), then tournament + varAnd."""
    order = sorted(range(len(population)), key=lambda i: rank_key(fitness[i]), reverse=True)
    elites = [population[i] for i in order[: ga.elitism]]
    individuals = [_Individual(b, f) for b, f in zip(population, fitness, strict=True)]
    toolbox = base.Toolbox()
    toolbox.register("mate", _mate)
    toolbox.register("mutate", tools.mutFlipBit, indpb=ga.bit_flip_prob)
    with lend_to_global(rng):
        chosen = tools.selTournament(individuals, len(population) - len(elites), ga.tournament_size)
        offspring = algorithms.varAnd(chosen, toolbox, ga.crossover_prob, ga.mutation_prob)
    return elites + [child.bits() for child in offspring]


@dataclass(frozen=True)
class ShortcutGA:
    """One GA run over the shortcuts of one architecture (`layers` per block).

    `fitness` is None until the current population has been scored; `best_*` is the best string this run has
    seen over all its generations (what a particle's fitness is in hgapso).
    """

    layers: tuple[int, ...]
    population: tuple[str, ...]
    fitness: tuple[float | None, ...] | None = None
    best_bits: str | None = None
    best_fitness: float | None = None
    generation: int = 0

    @classmethod
    def start(cls, layers: Sequence[int], size: int, rng: random.Random,
              known: Sequence[Known] = ()) -> "ShortcutGA":  # fmt: skip
        return cls(tuple(layers), tuple(seed_population(layers, size, rng, known)))

    def blocks(self, index: int) -> tuple[str, ...]:
        """Individual `index` as one bitstring per block (what `SearchSpace.genome` takes)."""
        return split(self.population[index], self.layers)

    def best_blocks(self) -> tuple[str, ...] | None:
        """The run's best string as one bitstring per block, or None while nothing has scored."""
        return None if self.best_bits is None else split(self.best_bits, self.layers)

    def record(self, fitness: Sequence[float | None]) -> "ShortcutGA":
        """Score the current population (in population order) and update the run's best."""
        if len(fitness) != len(self.population):
            raise ValueError(f"{len(fitness)} fitness values for a population of {len(self.population)}")
        best_bits, best_fitness = self.best_bits, self.best_fitness
        for bits, value in zip(self.population, fitness, strict=True):
            if is_better(value, best_fitness):
                best_bits, best_fitness = bits, value
        return replace(self, fitness=tuple(fitness), best_bits=best_bits, best_fitness=best_fitness)

    def evolve(self, ga: GAConfig, rng: random.Random) -> "ShortcutGA":
        """The next generation, unscored."""
        if self.fitness is None:
            raise ValueError("the population must be scored before it can breed")
        children = breed(self.population, self.fitness, ga, rng)
        return replace(self, population=tuple(children), fitness=None, generation=self.generation + 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "population": list(self.population),
            "fitness": None if self.fitness is None else list(self.fitness),
            "best_bits": self.best_bits,
            "best_fitness": self.best_fitness,
            "generation": self.generation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShortcutGA":
        fitness = data["fitness"]
        return cls(
            layers=tuple(data["layers"]),
            population=tuple(data["population"]),
            fitness=None if fitness is None else tuple(fitness),
            best_bits=data["best_bits"],
            best_fitness=data["best_fitness"],
            generation=data["generation"],
        )
