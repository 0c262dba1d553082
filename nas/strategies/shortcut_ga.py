"""The shortcut level: a GA over one architecture's shortcut bitstrings, built from DEAP's operators.

A GA individual is the concatenation of the block strings of one fixed architecture (block b has
L_b(L_b+1)/2 bits), so every individual of one GA has the same length and DEAP's two-point crossover and
bit-flip mutation keep it valid. One generation is DEAP's `eaSimple` step with elitism: the `elitism` best
individuals pass unchanged, the rest are chosen by `selTournament` and varied by `varAnd` (`cxTwoPoint` with
`crossover_prob` per pair, `mutFlipBit` with `mutation_prob` per individual and `bit_flip_prob` per bit). DEAP
draws from the global `random`, which `lend_to_global` points at the strategy's own generator.

Elites pass into the next generation with their score, so they are not asked again; neither is a seed whose
genome was already evaluated (`ShortcutGA.start` takes the scores its caller knows). Every member is scored
on its own (`with_score`), so a generation can be told in parts and in any order; it breeds once all its
members are scored (`complete`). Fitness compares by the project's ranking (fitness, then fewer parameters):
DEAP's fitness holds both, lexicographically. With several objectives (the scores carry costs) elites and
tournaments go by Pareto front rank, then crowding distance, within the generation (NSGA-II's crowded
comparison, `ranking.population_keys`): DEAP's fitness then holds (-rank, crowding). A member whose string
is a repeat is varied again (`revary`: one forced bit flip plus `bit_flip_prob` per bit) by the strategy that
asks it. The state is plain strings,
numbers and flags, so it checkpoints as JSON. The parameters are `GAConfig`, the section `search.ga`, which the
`ga` strategy declares (`hgapso` reads it too).
"""

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from deap import algorithms, base, tools

from nas.config import bounds
from nas.errors import UserError
from nas.genome import shortcuts
from nas.strategies.ranking import NO_PARAMS, Score, is_better, population_keys
from nas.strategies.rng import lend_to_global

SEED_ATTEMPTS = 20  # random draws per free slot before a duplicate is accepted (tiny spaces run out of strings)


@dataclass
class GAConfig:
    """`search.ga`: the shortcut level (DEAP tournament, two-point crossover, bit-flip mutation, elitism)."""

    population: int = bounds(3, 2, 10_000)
    # hgapso's GA generations per PSO move. 1 (measured best on every synthetic landscape, benchmarks/RESULTS.md):
    # each move scores the particle's new architecture with its best, the swarm's best and mutants of the latter.
    generations: int = bounds(1, 1, 10_000)
    tournament_size: int = bounds(3, 1, 100)
    crossover_prob: float = bounds(0.9, 0, 1)
    mutation_prob: float = bounds(0.3, 0, 1)
    bit_flip_prob: float = bounds(0.05, 0, 1, open_low=True)
    elitism: int = bounds(1, 0, 100)

    def check(self, key: str) -> None:
        """Rules across fields (`nas.config.check_section`): elites and a tournament must fit the population."""
        if self.elitism >= self.population:
            raise UserError(f"must be below {key}.population", key=f"{key}.elitism")
        if self.tournament_size > self.population:
            raise UserError(f"must be at most {key}.population", key=f"{key}.tournament_size")


class _Fitness(base.Fitness):
    weights = (1.0, -1.0)  # fitness up, parameters down: compared lexicographically, as the ranking rule


class _CrowdedFitness(base.Fitness):
    weights = (-1.0, 1.0)  # Pareto front rank down, crowding distance up: NSGA-II's crowded comparison


class _Individual(list):
    """A list of 0/1 ints with a DEAP fitness: what DEAP's operators expect. `crowded` (rank, crowding
    distance) replaces the score's (fitness, parameters) when there are several objectives."""

    def __init__(self, bits: str, score: Score | None = None, crowded: tuple[int, float] | None = None):
        super().__init__(int(c) for c in bits)
        if crowded is not None:
            self.fitness: base.Fitness = _CrowdedFitness(crowded)
            return
        fitness = score.fitness if score is not None and score.fitness is not None else -math.inf
        params = score.params if score is not None and score.params is not None else NO_PARAMS
        self.fitness = _Fitness((fitness, params))

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


def seed_population(layers: Sequence[int], size: int, rng: random.Random, known: Sequence[Known] = (),
                    dense: bool = True, mutate: GAConfig | None = None) -> list[str]:  # fmt: skip
    """The first generation (DESIGN.md section 3): the all-ones string (the DenseNet of this architecture;
    left out when `dense` is false), then each `known` string resized to `layers` (the particle's best so far,
    then the swarm's), then distinct random strings, or, with `mutate`, distinct variants (`revary`) of the
    last known string. Duplicates are only accepted once the space of strings is nearly exhausted."""
    population = [join([shortcuts.all_ones(n) for n in layers])] if dense else []
    for bits, old_layers in known:
        resized = join([shortcuts.resize(b, o, n, rng) for b, o, n in zip(bits, old_layers, layers, strict=True)])
        population.append(resized)
    population = list(dict.fromkeys(population))[:size]
    parent = population[-1] if mutate is not None and known else None
    attempts = 0
    while len(population) < size:
        candidate = random_string(layers, rng) if parent is None else revary(parent, mutate, rng)
        attempts += 1
        if candidate not in population or attempts > SEED_ATTEMPTS * size:
            population.append(candidate)
    return population


def _mate(a: _Individual, b: _Individual) -> tuple[_Individual, _Individual]:
    """Two-point crossover; a 1-bit string has no two cut points, so it passes unchanged."""
    return tools.cxTwoPoint(a, b) if min(len(a), len(b)) >= 2 else (a, b)


def breed(population: Sequence[str], scores: Sequence[Score | None], ga: GAConfig,
          rng: random.Random) -> list[tuple[str, Score | None]]:  # fmt: skip
    """The next generation: the `ga.elitism` best unchanged with their scores, then tournament + varAnd
    children (unscored)."""
    keys = population_keys(scores)
    order = sorted(range(len(population)), key=lambda i: keys[i])
    elites = [(population[i], scores[i]) for i in order[: ga.elitism]]
    several = any(s is not None and s.costs is not None for s in scores)
    individuals = [
        _Individual(b, s, (int(k[0]), -k[1]) if several else None)
        for b, s, k in zip(population, scores, keys, strict=True)
    ]
    toolbox = base.Toolbox()
    toolbox.register("mate", _mate)
    toolbox.register("mutate", tools.mutFlipBit, indpb=ga.bit_flip_prob)
    with lend_to_global(rng):
        chosen = tools.selTournament(individuals, len(population) - len(elites), ga.tournament_size)
        offspring = algorithms.varAnd(chosen, toolbox, ga.crossover_prob, ga.mutation_prob)
    return elites + [(child.bits(), None) for child in offspring]


def revary(bits: str, ga: GAConfig, rng: random.Random) -> str:
    """A variant of a repeated string: one uniformly chosen bit flips, and every other with `bit_flip_prob`."""
    flat = list(bits)
    forced = rng.randrange(len(flat))
    for i in range(len(flat)):
        if i == forced or rng.random() < ga.bit_flip_prob:
            flat[i] = "1" if flat[i] == "0" else "0"
    return "".join(flat)


@dataclass(frozen=True)
class ShortcutGA:
    """One GA run over the shortcuts of one architecture (`layers` per block).

    `scores[i]` is None until member i is scored, `asked[i]` whether it was handed out for evaluation;
    `best_*` is the best string this run has seen over all its generations (a particle's fitness in hgapso).
    """

    layers: tuple[int, ...]
    population: tuple[str, ...]
    scores: tuple[Score | None, ...]
    asked: tuple[bool, ...]
    best_bits: str | None = None
    best: Score | None = None
    generation: int = 0

    @classmethod
    def start(cls, layers: Sequence[int], size: int, rng: random.Random, known: Sequence[Known] = (),
              score: Callable[[str], Score | None] = lambda bits: None, dense: bool = True,
              mutate: GAConfig | None = None) -> "ShortcutGA":  # fmt: skip
        """The first generation (`seed_population`), each member scored already when `score` knows it."""
        population = tuple(seed_population(layers, size, rng, known, dense, mutate))
        run = cls(tuple(layers), population, (None,) * len(population), (False,) * len(population))
        for i, bits in enumerate(population):
            value = score(bits)
            if value is not None and run.scores[i] is None:
                run = run.with_score(i, value)
        return run

    @property
    def complete(self) -> bool:
        """Every member of this generation is scored: it can breed."""
        return all(s is not None for s in self.scores)

    def todo(self) -> list[int]:
        """Members neither scored nor asked, in population order."""
        return [i for i, (s, a) in enumerate(zip(self.scores, self.asked, strict=True)) if s is None and not a]

    def blocks(self, index: int) -> tuple[str, ...]:
        """Individual `index` as one bitstring per block (what `SearchSpace.genome` takes)."""
        return split(self.population[index], self.layers)

    def best_blocks(self) -> tuple[str, ...] | None:
        """The run's best string as one bitstring per block, or None while nothing has scored."""
        return None if self.best_bits is None else split(self.best_bits, self.layers)

    def with_score(self, index: int, score: Score) -> "ShortcutGA":
        """Member `index` scored; the run's best updated (the ranking rule decides ties)."""
        scores = list(self.scores)
        scores[index] = score
        best_bits, best = self.best_bits, self.best
        if is_better(score, best):
            best_bits, best = self.population[index], score
        return replace(self, scores=tuple(scores), best_bits=best_bits, best=best)

    def with_asked(self, index: int) -> "ShortcutGA":
        asked = list(self.asked)
        asked[index] = True
        return replace(self, asked=tuple(asked))

    def with_bits(self, index: int, bits: str) -> "ShortcutGA":
        population = list(self.population)
        population[index] = bits
        return replace(self, population=tuple(population))

    def record(self, scores: Sequence[Score | None]) -> "ShortcutGA":
        """Score the whole population at once (in population order); None entries stay unscored."""
        if len(scores) != len(self.population):
            raise ValueError(f"{len(scores)} scores for a population of {len(self.population)}")
        run = self
        for i, score in enumerate(scores):
            if score is not None:
                run = run.with_score(i, score)
        return run

    def evolve(self, ga: GAConfig, rng: random.Random) -> "ShortcutGA":
        """The next generation: elites keep their scores, children are unscored."""
        if not self.complete:
            raise ValueError("the population must be scored before it can breed")
        children = breed(self.population, self.scores, ga, rng)
        return replace(
            self,
            population=tuple(bits for bits, _ in children),
            scores=tuple(score for _, score in children),
            asked=(False,) * len(children),
            generation=self.generation + 1,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "population": list(self.population),
            "scores": [None if s is None else s.to_list() for s in self.scores],
            "asked": list(self.asked),
            "best_bits": self.best_bits,
            "best": None if self.best is None else self.best.to_list(),
            "generation": self.generation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShortcutGA":
        return cls(
            layers=tuple(data["layers"]),
            population=tuple(data["population"]),
            scores=tuple(Score.from_list(s) for s in data["scores"]),
            asked=tuple(data["asked"]),
            best_bits=data["best_bits"],
            best=Score.from_list(data["best"]),
            generation=data["generation"],
        )
