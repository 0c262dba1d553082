"""The ask/tell contract every search strategy keeps, the `STRATEGIES` registry and `build_strategy`.

A strategy knows genomes and fitness numbers only (no torch, no Ray). The driver loop is:

    while not strategy.done() and budget left:
        genomes = strategy.ask()          # the next batch
        results = evaluate(genomes)       # cache hits from the log, misses trained
        strategy.tell(results)            # same length, in ask order
        checkpoint(strategy.state_dict())

`ask()` is idempotent: the batch is drawn once, kept as pending (and in `state_dict`) until told, so a second
call, or a call on a strategy loaded from a checkpoint taken at any point, returns the same genomes. That is what
lets a resumed run re-ask exactly what a crashed one asked, and the log answer what was already finished.
`tell` takes one `Result` per asked genome, in ask order; a failed or timed-out result (fitness None) ranks
below every real fitness. Everything random comes from the strategy's own `random.Random(seed)`, whose state is
in `state_dict` (plain JSON: it survives json.dumps/loads exactly).

Subclasses implement `propose` (draw the next batch), `absorb` (learn from its fitness values), `state` /
`load_state` (their own part of the checkpoint) and, if they have a schedule of their own, `done`.
"""

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nas.config import SearchConfig
from nas.errors import UserError
from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.registry import Registry
from nas.strategies.ranking import fitness_of, is_better
from nas.strategies.rng import rng_from_state, rng_state

STATE_FORMAT = "nas-strategy-state/1"


@dataclass(frozen=True)
class BestGenome:
    """The best genome told so far and its fitness (only ok results count)."""

    genome: Genome
    fitness: float

    def to_dict(self) -> dict[str, Any]:
        return {"genome": self.genome.to_dict(), "fitness": self.fitness}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "BestGenome | None":
        return None if data is None else cls(Genome.from_dict(data["genome"]), data["fitness"])


class Strategy(ABC):
    """Base of all strategies: pending batch, best so far, RNG and checkpoint plumbing."""

    name: str = ""

    def __init__(self, search: SearchConfig, space: SearchSpace, seed: int):
        self.search = search
        self.space = space
        self.rng = random.Random(seed)
        self.told = 0  # results told so far
        self.batches = 0  # batches told so far
        self._pending: list[Genome] | None = None
        self._best: BestGenome | None = None

    # --- the contract -------------------------------------------------------------------------------------

    def ask(self) -> list[Genome]:
        """The next batch (empty once `done()`); the same batch until it is told."""
        if self.done():
            return []
        if self._pending is None:
            self._pending = self.propose()
        return list(self._pending)

    def tell(self, results: Sequence[Result]) -> None:
        """One result per asked genome, in ask order. Raises ValueError when they do not match the batch."""
        pending = self._pending
        if pending is None:
            raise ValueError("tell() without a pending ask()")
        if len(results) != len(pending):
            raise ValueError(f"told {len(results)} results for a batch of {len(pending)} genomes")
        for i, (genome, result) in enumerate(zip(pending, results, strict=True)):
            if result.key != genome.key:
                raise ValueError(f"result {i} has key {result.key[:12]}, the asked genome {genome.key[:12]}")
        fitness = [fitness_of(r) for r in results]
        for genome, value in zip(pending, fitness, strict=True):
            if is_better(value, self._best.fitness if self._best else None):
                assert value is not None
                self._best = BestGenome(genome, value)
        self._pending = None
        self.told += len(results)
        self.batches += 1
        self.absorb(pending, fitness)

    def done(self) -> bool:
        """True when the strategy has run out of its own schedule; by default only the budget ends a search."""
        return False

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
            "batches": self.batches,
            "pending": None if self._pending is None else [g.to_dict() for g in self._pending],
            "best": None if self._best is None else self._best.to_dict(),
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
        self.batches = data["batches"]
        pending = data["pending"]
        self._pending = None if pending is None else [Genome.from_dict(g) for g in pending]
        self._best = BestGenome.from_dict(data["best"])
        self.load_state(data["state"])

    # --- what a strategy implements -----------------------------------------------------------------------

    @abstractmethod
    def propose(self) -> list[Genome]:
        """Draw the next batch (called once per batch; may consume the RNG)."""

    @abstractmethod
    def absorb(self, genomes: list[Genome], fitness: list[float | None]) -> None:
        """Learn from the told batch: `fitness[i]` belongs to `genomes[i]`, None for a failure."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """This strategy's own part of the checkpoint (JSON types only)."""

    @abstractmethod
    def load_state(self, data: dict[str, Any]) -> None: ...


StrategyFactory = Callable[[SearchConfig, SearchSpace, int], Strategy]
STRATEGIES: Registry[StrategyFactory] = Registry("strategy")


def register(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: register a strategy under `name` and stamp that name on it (it keys the checkpoint)."""

    def add(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        return STRATEGIES.register(name)(cls)

    return add


def build_strategy(search: SearchConfig, space: SearchSpace, seed: int) -> Strategy:
    """The strategy `search.strategy` names, fresh, with its RNG seeded by `seed`."""
    return STRATEGIES.get(search.strategy, key="search.strategy")(search, space, seed)
