"""How strategies order fitness values: higher is better, and a failed evaluation (None) is worst of all.

A failed or timed-out candidate (out of memory, an exception, the trial timeout) carries no fitness; ranking it
below every real value lets a search step around it instead of stopping, and a non-finite value from a broken
objective is treated the same way rather than poisoning comparisons.
"""

import math

from nas.evaluate.result import Result


def fitness_of(result: Result) -> float | None:
    """The fitness a strategy sees: the result's value when it is ok and finite, else None (worst)."""
    if not result.ok or result.fitness is None:
        return None
    value = float(result.fitness)
    return value if math.isfinite(value) else None


def rank_key(fitness: float | None) -> float:
    """A sort key where None sorts below every value (use with max, or sorted(..., reverse=True))."""
    return -math.inf if fitness is None else fitness


def is_better(candidate: float | None, incumbent: float | None) -> bool:
    """True when `candidate` strictly beats `incumbent`; ties keep the incumbent, and None never wins."""
    if candidate is None:
        return False
    return incumbent is None or candidate > incumbent
