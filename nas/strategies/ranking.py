"""The one ranking rule of the project: higher fitness, then fewer parameters, then the smaller genome key.

A failed or timed-out candidate (out of memory, an exception, the trial timeout) carries no fitness; ranking it
below every real value lets a search step around it instead of stopping, and a non-finite value from a broken
objective is treated the same way rather than poisoning comparisons. Validation accuracy moves in steps of 1/N,
so ties are common: breaking them by parameters (the smaller network of two equally good ones) and then by key
(a total order that does not depend on which result arrived first) makes every "best" agree: a strategy's best,
a particle's and the swarm's bests, a GA's best, `best/`, `nas export` and `nas report` (`nas.run.runlog.ranked`
sorts with `order`).

With several objectives (`search.objectives`) a score also carries its costs, in the order the objectives name
them, and a population is ranked by Pareto front and crowding (`population_keys`, NSGA-II; `nas.strategies.pareto`)
before this rule breaks the remaining ties. A single-objective score carries no costs and is ranked by this rule
alone, exactly as before there were several objectives.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nas.evaluate.result import Result
from nas.strategies import pareto

NO_PARAMS = 1 << 62  # a result without a parameter count ranks after every counted one of equal fitness


@dataclass(frozen=True)
class Score:
    """What a strategy keeps of one result: its fitness (None: failed), parameter count and genome key, and,
    with several objectives, the costs it is judged on (None for a cost the result lacks)."""

    fitness: float | None
    params: int | None = None
    key: str = ""
    costs: tuple[float | None, ...] | None = None

    @classmethod
    def of(cls, result: Result, costs: Sequence[str] = ()) -> "Score":
        """The score of a result; `costs` names the objectives after fitness (none: a single objective)."""
        values = tuple(pareto.cost_of(result, name) for name in costs) if costs else None
        return cls(fitness_of(result), result.params, result.key, values)

    @property
    def vector(self) -> pareto.Vector:
        """The objective vector (minimisation form; `pareto.objective_vector`): all +inf when failed."""
        values = (None if self.fitness is None else -self.fitness, *(self.costs or ()))
        if any(v is None for v in values):
            return (math.inf,) * len(values)
        return tuple(float(v) for v in values if v is not None)

    def to_list(self) -> list[Any]:
        """[fitness, params, key], and the costs when there are several objectives."""
        return [self.fitness, self.params, self.key] + ([list(self.costs)] if self.costs is not None else [])

    @classmethod
    def from_list(cls, data: list[Any] | None) -> "Score | None":
        if data is None:
            return None
        return cls(data[0], data[1], data[2], tuple(data[3]) if len(data) > 3 else None)


def fitness_of(result: Result) -> float | None:
    """The fitness a strategy sees: the result's value when it is ok and finite, else None (worst)."""
    if not result.ok or result.fitness is None:
        return None
    value = float(result.fitness)
    return value if math.isfinite(value) else None


def order(fitness: float | None, params: int | None, key: str) -> tuple[float, int, str]:
    """Sort key, best first (ascending): higher fitness, fewer parameters, smaller key; failures last."""
    return (math.inf if fitness is None else -fitness, NO_PARAMS if params is None else params, key)


def score_order(score: Score | None) -> tuple[float, int, str]:
    """`order` of a score; None (not scored) sorts after everything."""
    if score is None:
        return (math.inf, NO_PARAMS + 1, "")
    return order(score.fitness, score.params, score.key)


def is_better(candidate: Score | None, incumbent: Score | None) -> bool:
    """True when `candidate` ranks strictly before `incumbent`; a failure never beats anything."""
    if candidate is None or candidate.fitness is None:
        return False
    return incumbent is None or score_order(candidate) < score_order(incumbent)


def population_keys(scores: Sequence[Score | None]) -> list[tuple[Any, ...]]:
    """Sort keys of a population's scores, best first (ascending), in their order. Single objective: `score_order`.
    Several (the scores carry costs): Pareto front rank, then larger crowding distance, then `score_order`; an
    unscored member (None) counts as failed."""
    width = next((1 + len(s.costs) for s in scores if s is not None and s.costs is not None), None)
    if width is None:
        return [score_order(s) for s in scores]
    failed = (math.inf,) * width
    selection = pareto.selection_keys([failed if s is None else s.vector for s in scores])
    return [(*sel, *score_order(s)) for sel, s in zip(selection, scores, strict=True)]
