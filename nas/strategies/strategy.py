"""The ask/tell contract every search strategy keeps, the `STRATEGIES` registry and `build_strategy`.

A strategy knows genomes and fitness numbers only (no torch, no Ray, no files). It serves two drivers:

Synchronous (`search.mode: sync`), one batch at a time:

    while not strategy.done() and budget left:
        genomes = strategy.ask()          # the next batch
        results = evaluate(genomes)
        strategy.tell(results)            # same length, in ask order
        checkpoint(strategy.state_dict())

`ask()` is idempotent: the batch is drawn once, kept in flight (and in `state_dict`) until told, so a second
call, or a call on a strategy loaded from a checkpoint taken at any point, returns the same genomes.

Asynchronous (`search.mode: async`), every slot busy:

    resubmit(strategy.in_flight())        # after a restart: what was asked and not told
    while not strategy.done() and budget left:
        submit(strategy.ask(free_slots))  # up to n new genomes, maybe fewer, maybe none
        strategy.tell([next_finished()])  # any subset of the in-flight genomes, in any order
        checkpoint(strategy.state_dict())

`ask(n)` returns up to n genomes that are new and joins them to `in_flight()`; fewer (even none) when the
strategy must wait for results (a GA generation not complete yet). The same state gives the same answer: the
RNG is in the state. `tell` absorbs each result at once; a result for a genome not in flight is a ValueError.
A strategy is driven in one mode at a time: `ask()` while async asks are in flight, or `ask(n)` while a batch
is, is a ValueError.

`withdraw(genomes)` takes async asks back untrained (predictor screening, `search.screen`, asks more than the
free slots and trains only what its predictor picks): they leave `in_flight()`, are not evaluated (nothing is
learnt, no score is recorded), and may be proposed again by a later draw. A strategy learns from real results
alone, never from a prediction. Whatever a subclass keeps of an ask (a GA member marked asked, a particle
waiting for its genome) it gives back in `retract`, so a withdrawn genome leaves nothing behind that waits for
it. The RNG is not rewound: what was drawn stays drawn, so withdraw is as deterministic as ask.

Every ask is new work: no genome that is already evaluated (told, or passed to `known`), in flight, or earlier
in the same ask. A strategy that draws such a repeat draws again (bounded attempts) and, when nothing new can
be found, leaves the slot out. `repeats` counts what the last draw avoided (`avoided`: candidates drawn again
because they were repeats) and gave up (`unfilled`: slots left empty); `repeats_total` sums every draw of the
run. A sync draw that finds nothing at all, or an async one with nothing in flight either, marks the strategy
`exhausted`, and it is `done()`.

The evaluated genomes are part of the state (`evaluated`: key, fitness and parameters of every genome told),
so a draw depends on the state alone: a strategy restored from any checkpoint, even an older one, draws what
the uninterrupted run drew, and the log answers the genomes it already holds. The log stays the cache; the
strategy's record only keeps it from asking them. `known(results)` adds genomes evaluated outside its asks
(another run's log, a warm start): never asked, their scores available to `score_of`, nothing learnt from
them. The record grows with the run (about 100 bytes a genome in the checkpoint).

`tell` takes results; a failed or timed-out result (fitness None) ranks below every real fitness, and ties are
broken by fewer parameters, then the genome key (`nas.strategies.ranking`). With several objectives
(`search.objectives`) each score also carries the result's costs, and a strategy that ranks a population ranks
it by Pareto front and crowding first (`ranking.population_keys`); `best` stays the fittest result, the front
is what a population or an archive holds. Everything random comes from the
strategy's own `random.Random(seed)`, whose state is in `state_dict` (plain JSON: it survives json.dumps/loads
exactly).

Subclasses implement `propose` (draw new genomes, checking each with `claim`), `absorb` (learn from told
results), `state` / `load_state` (their own part of the checkpoint) and, if they have a schedule of their own,
`done`, and `retract` when an ask leaves state that waits for its result. A strategy module registers itself
with `@register(name)`, and may declare its own config section, `@register(name, config=MyConfig,
section="my_section")`: `search.my_section` is then validated like every other key, and the strategy reads it
with `self.config` (see `nas.config.register_search_section`).
"""

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas.config import STRATEGY_NAMES, SearchConfig, register_search_section
from nas.errors import UserError
from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.registry import Registry
from nas.strategies.ranking import Score, is_better
from nas.strategies.rng import rng_from_state, rng_state

STATE_FORMAT = "nas-strategy-state/2"


@dataclass(frozen=True)
class BestGenome:
    """The best genome told so far, its fitness and parameter count (only ok results count)."""

    genome: Genome
    fitness: float
    params: int | None = None

    @property
    def score(self) -> Score:
        return Score(self.fitness, self.params, self.genome.key)

    def to_dict(self) -> dict[str, Any]:
        return {"genome": self.genome.to_dict(), "fitness": self.fitness, "params": self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "BestGenome | None":
        if data is None:
            return None
        return cls(Genome.from_dict(data["genome"]), data["fitness"], data.get("params"))


@dataclass
class Repeats:
    """Repeats met while drawing: `avoided` candidates drawn again, `unfilled` slots left empty."""

    avoided: int = 0
    unfilled: int = 0

    def add(self, other: "Repeats") -> None:
        self.avoided += other.avoided
        self.unfilled += other.unfilled

    def to_dict(self) -> dict[str, int]:
        return {"avoided": self.avoided, "unfilled": self.unfilled}

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> "Repeats":
        return cls(data["avoided"], data["unfilled"])


@dataclass
class _Draw:
    """The keys one `propose` call may not use: evaluated ones, in-flight ones, and those it already took."""

    taken: set[str] = field(default_factory=set)


class Strategy(ABC):
    """Base of all strategies: in-flight genomes, evaluated keys, best so far, RNG and checkpoint plumbing."""

    name: str = ""
    config_section: str | None = None  # the `search.<section>` this strategy reads as `self.config`

    def __init__(self, search: SearchConfig, space: SearchSpace, seed: int):
        self.search = search
        self.space = space
        self.rng = random.Random(seed)
        self.told = 0  # results told so far
        self.exhausted = False  # a draw found nothing new and nothing was in flight to wait for
        self.repeats = Repeats()  # of the last draw
        self.repeats_total = Repeats()
        self._in_flight: list[Genome] = []
        self._batch = False  # the in-flight genomes are one sync batch: ask() returns them until told
        self._best: BestGenome | None = None
        self._scores: dict[str, Score] = {}  # evaluated genomes: told, or given by known()
        self._draw = _Draw()
        self.member_keys: dict[Any, str] = {}  # a memo of derived genome keys (`ga_asks.member_key`), not state
        self.costs = search.cost_objectives  # the objectives after fitness: none for a single objective

    @property
    def config(self) -> Any:
        """This strategy's own config section (`search.<config_section>`), defaults where the file has none."""
        if self.config_section is None:
            raise AttributeError(f"strategy {self.name!r} declares no config section")
        return self.search.section(self.config_section)

    # --- the contract -------------------------------------------------------------------------------------

    def ask(self, n: int | None = None) -> list[Genome]:
        """`ask()`: the next batch, the same until told. `ask(n)`: up to n new genomes, joined to in_flight()."""
        return self._ask_batch() if n is None else self._ask_some(n)

    def _ask_batch(self) -> list[Genome]:
        if self._batch:
            return list(self._in_flight)
        if self._in_flight:
            raise ValueError("ask() while asynchronous asks are in flight: use ask(n)")
        if self.done():
            return []
        genomes = self._drawn(None)
        if genomes:
            self._in_flight, self._batch = genomes, True
        return list(genomes)

    def _ask_some(self, n: int) -> list[Genome]:
        if n < 0:
            raise ValueError(f"ask(n) needs n >= 0, got {n}")
        if self._batch:
            raise ValueError("ask(n) while a batch asked by ask() is in flight: tell it first")
        if n == 0 or self.done():
            return []
        genomes = self._drawn(n)
        self._in_flight.extend(genomes)
        return list(genomes)

    def _drawn(self, limit: int | None) -> list[Genome]:
        """One `propose`, with the repeat bookkeeping around it."""
        self.repeats = Repeats()
        self._draw = _Draw({g.key for g in self._in_flight})
        genomes = self.propose(limit)
        keys = [g.key for g in genomes]
        if len(set(keys)) != len(keys) or any(k in self._scores for k in keys) or (limit and len(keys) > limit):
            raise AssertionError(f"{self.name} proposed a repeat or too many genomes")  # a strategy bug
        if not genomes and not self._in_flight:
            self.exhausted = True
        self.repeats_total.add(self.repeats)
        return genomes

    def claim(self, genome: Genome) -> bool:
        """Inside `propose`: True, and the genome is taken, when it is new; False (counted as avoided) when it
        is evaluated, in flight, or already taken by this draw."""
        key = genome.key
        if key in self._scores or key in self._draw.taken:
            self.repeats.avoided += 1
            return False
        self._draw.taken.add(key)
        return True

    def unfilled(self, slots: int = 1) -> None:
        """Inside `propose`: `slots` slots were left empty because nothing new was found."""
        self.repeats.unfilled += slots

    def score_of(self, genome: Genome) -> Score | None:
        """The known score of an evaluated genome, None when it has not been evaluated."""
        return self._scores.get(genome.key)

    def in_flight(self) -> list[Genome]:
        """Asked and not yet told, in ask order."""
        return list(self._in_flight)

    def withdraw(self, genomes: Sequence[Genome]) -> None:
        """Take async asks back untrained (module docstring); a genome not in flight, or a sync batch, is a
        ValueError."""
        if self._batch:
            raise ValueError("withdraw() of a batch asked by ask(): only asks of ask(n) can be withdrawn")
        flying = {g.key for g in self._in_flight}
        keys = [g.key for g in genomes]
        for key in keys:
            if key not in flying:
                raise ValueError(f"withdraw() of genome {key[:12]}, which is not in flight")
            flying.discard(key)  # a key given twice is not in flight the second time
        gone = set(keys)
        self._in_flight = [g for g in self._in_flight if g.key not in gone]
        if genomes:
            self.retract(list(genomes))

    def known(self, results: Iterable[Result]) -> None:
        """Genomes already evaluated (the run's log): never asked, and their scores available to `score_of`.
        Nothing is learnt from them; a genome in flight is left to its `tell`."""
        in_flight = {g.key for g in self._in_flight}
        for result in results:
            if result.key not in in_flight:
                self._scores[result.key] = Score.of(result, self.costs)

    def tell(self, results: Sequence[Result]) -> None:
        """Sync: one result per genome of the batch, in ask order. Async: results of any in-flight genomes, in
        any order. Raises ValueError when a result does not belong to what is in flight."""
        genomes = self._told_batch(results) if self._batch else self._told_some(results)
        told = []
        for genome, result in zip(genomes, results, strict=True):
            score = Score.of(result, self.costs)
            self._scores[genome.key] = score
            if is_better(score, self._best.score if self._best else None):
                assert score.fitness is not None
                self._best = BestGenome(genome, score.fitness, score.params)
            told.append((genome, score))
        self.told += len(told)
        self.absorb(told)

    def _told_batch(self, results: Sequence[Result]) -> list[Genome]:
        pending = self._in_flight
        if len(results) != len(pending):
            raise ValueError(f"told {len(results)} results for a batch of {len(pending)} genomes")
        for i, (genome, result) in enumerate(zip(pending, results, strict=True)):
            if result.key != genome.key:
                raise ValueError(f"result {i} has key {result.key[:12]}, the asked genome {genome.key[:12]}")
        self._in_flight, self._batch = [], False
        return pending

    def _told_some(self, results: Sequence[Result]) -> list[Genome]:
        if not self._in_flight and not results:
            raise ValueError("tell() without a pending ask()")
        flying = {g.key: g for g in self._in_flight}
        genomes = []
        for result in results:
            if result.key not in flying:
                raise ValueError(f"result for genome {result.key[:12]}, which is not in flight")
            genomes.append(flying.pop(result.key))
        self._in_flight = [g for g in self._in_flight if g.key in flying]
        return genomes

    def parallelism(self) -> int | None:
        """The most genomes this strategy can have in flight at once (asynchronously), None for no bound: an
        asynchronous driver with more slots than this leaves the rest idle, and says so."""
        return None

    def done(self) -> bool:
        """True when the strategy has run out of its own schedule or of new genomes; by default only the
        budget ends a search."""
        return self.exhausted

    @property
    def best(self) -> BestGenome | None:
        return self._best

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: plain JSON types only."""
        return {
            "format": STATE_FORMAT,
            "strategy": self.name,
            "rng": rng_state(self.rng),
            "told": self.told,
            "exhausted": self.exhausted,
            "in_flight": [g.to_dict() for g in self._in_flight],
            "batch": self._batch,
            "best": None if self._best is None else self._best.to_dict(),
            "repeats": self.repeats.to_dict(),
            "repeats_total": self.repeats_total.to_dict(),
            "evaluated": [
                [s.key, s.fitness, s.params, *([list(s.costs)] if s.costs is not None else [])]
                for s in self._scores.values()
            ],
            "state": self.state(),
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Continue from `state_dict()` output; a state of another strategy is a `UserError`."""
        if data.get("format") != STATE_FORMAT:
            raise UserError(f"unknown strategy state format {data.get('format')!r}", key="checkpoint.format")
        if data.get("strategy") != self.name:
            raise UserError(
                f"checkpoint holds a {data.get('strategy')!r} state, not {self.name!r}", key="search.strategy"
            )
        self.rng = rng_from_state(data["rng"])
        self.told = data["told"]
        self.exhausted = data["exhausted"]
        self._in_flight = [Genome.from_dict(g) for g in data["in_flight"]]
        self._batch = data["batch"]
        self._best = BestGenome.from_dict(data["best"])
        self.repeats = Repeats.from_dict(data["repeats"])
        self.repeats_total = Repeats.from_dict(data["repeats_total"])
        self._scores = {}
        for key, *rest in data["evaluated"]:  # [key, fitness, params] and, with several objectives, the costs
            self._scores[key] = Score(rest[0], rest[1], key, tuple(rest[2]) if len(rest) > 2 else None)
        self.load_state(data["state"])

    # --- what a strategy implements -----------------------------------------------------------------------

    @abstractmethod
    def propose(self, limit: int | None) -> list[Genome]:
        """Draw new genomes: the whole next batch when `limit` is None (sync), else at most `limit` (async;
        fewer or none when waiting for results). Each must pass `claim`. May consume the RNG."""

    @abstractmethod
    def absorb(self, told: list[tuple[Genome, Score]]) -> None:
        """Learn from told results (a whole batch in ask order, or async results in arrival order)."""

    def retract(self, withdrawn: list[Genome]) -> None:
        """Withdrawn genomes (`withdraw`): forget whatever this strategy keeps of their asks. Nothing by
        default: a strategy whose asks leave no trace of their own (random search) needs no override."""
        return None

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """This strategy's own part of the checkpoint (JSON types only)."""

    @abstractmethod
    def load_state(self, data: dict[str, Any]) -> None: ...


StrategyFactory = Callable[[SearchConfig, SearchSpace, int], Strategy]
STRATEGIES: Registry[StrategyFactory] = Registry("strategy")


def register(name: str, config: type | None = None,
             section: str | None = None) -> Callable[[type[Strategy]], type[Strategy]]:  # fmt: skip
    """Class decorator: register a strategy under `name` and stamp that name on it (it keys the checkpoint).

    `config` (a dataclass) declares the strategy's own config section, `search.<section>` (default: the name
    with dashes as underscores); a section is declared once, by the strategy that owns it (`pso` declares
    `search.pso`, `ga` `search.ga`). `section` alone makes another strategy's section this one's `self.config`;
    a strategy that reads several reads the others with `search.section(name)` (hgapso: `pso` and `ga`)."""

    def add(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        if config is not None:
            cls.config_section = section or name.replace("-", "_")
            register_search_section(cls.config_section, config)
        elif section is not None:
            cls.config_section = section
        STRATEGY_NAMES.register(name)(cls)
        return STRATEGIES.register(name)(cls)

    return add


def build_strategy(search: SearchConfig, space: SearchSpace, seed: int) -> Strategy:
    """The strategy `search.strategy` names, fresh, with its RNG seeded by `seed`."""
    return STRATEGIES.get(search.strategy, key="search.strategy")(search, space, seed)
