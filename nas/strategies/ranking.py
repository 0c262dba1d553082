"""The one ranking rule of the project: higher fitness, then fewer parameters, then the smaller genome key.

A failed or timed-out candidate (out of memory, an exception, the trial timeout) carries no fitness; ranking it
below every real value lets a search step around it instead of stopping, and a non-finite value from a broken
objective is treated the same way rather than poisoning comparisons. Validation accuracy moves in steps of 1/N,
so ties are common: breaking them by parameters (the smaller network of two equally good ones) and then by key
(a total order that does not depend on which result arrived first) makes every "best" agree: a strategy's best,
a particle's and the swarm's bests, a GA's best, `best/`, `nas export` and `nas report` (`nas.run.runlog.ranked`
sorts with `order`).
"""

import math
from dataclasses import dataclass
from typing import Any

from nas.evaluate.result import Result

NO_PARAMS = 1 << 62  # a result without a parameter count ranks after every counted one of equal fitness


@dataclass(frozen=True)
class Score:
    """What a strategy keeps of one result: its fitness (None: failed), parameter count and genome key."""

    fitness: float | None
    params: int | None = None
    key: str = ""

    @classmethod
    def of(cls, result: Result) -> "Score":
        return cls(fitness_of(result), result.params, result.key)

    def to_list(self) -> list[Any]:
        return [self.fitness, self.params, self.key]

    @classmethod
    def from_list(cls, data: list[Any] | None) -> "Score | None":
        return None if data is None else cls(data[0], data[1], data[2])


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
