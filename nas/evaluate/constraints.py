"""Caps on a candidate's costs (`search.constraints`): a genome over a cap is never trained.

Parameters and FLOPs are analytic (`analytic_cost`, microseconds a genome), so a candidate over their caps is
known before any training: the search loop asks `infeasible(objective, genome, constraints)` first and, when it
answers a result, logs and tells that result instead of submitting the genome. A measured cost (`latency_ms`)
is known only after training; `over_cap(result, constraints)` turns a result over it into the same kind of answer.

An infeasible candidate is a `failed` result (fitness None, so every strategy ranks it below every real result,
and a Pareto ranking puts it behind every front) whose `error` starts with `INFEASIBLE` and names the cap it
broke, with its params and FLOPs recorded. It is a finished evaluation: the log answers it on resume and the
strategy never asks it again, so a cap costs no training at all.
"""

import math
from collections.abc import Mapping
from typing import Any

from nas.config import ConstraintsConfig
from nas.evaluate.objective import Objective
from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.model.analytic_cost import analytic_cost

INFEASIBLE = "infeasible"
CAPPED = ("params", "flops", "latency_ms")


def caps(constraints: "Caps") -> dict[str, float]:
    """The caps that are set, by cost name."""
    if constraints is None:
        return {}
    if isinstance(constraints, ConstraintsConfig):
        constraints = {name: getattr(constraints, name) for name in CAPPED}
    return {name: float(cap) for name, cap in constraints.items() if cap is not None}


Caps = ConstraintsConfig | Mapping[str, float] | None


def violates(genome_cost: Mapping[str, float | None], constraints: Caps) -> list[str]:
    """The caps `genome_cost` breaks, as 'params 612,345 > 500,000'; a cost that is not known (absent or None)
    breaks none, so a cap on a measured cost waits for the measurement."""
    broken = []
    for name, cap in caps(constraints).items():
        value = genome_cost.get(name)
        if value is not None and math.isfinite(float(value)) and float(value) > cap:
            broken.append(f"{name} {value:,} > {cap:,g}")
    return broken


def genome_cost(objective: Objective, genome: Genome) -> dict[str, float]:
    """The analytic costs of a candidate as the objective builds it: params and FLOPs at its input size."""
    params, flops = analytic_cost(objective.architecture(genome))
    return {"params": params, "flops": flops}


def infeasible_result(key: str, genome: dict[str, Any], broken: list[str], cost: Mapping[str, Any]) -> Result:
    """The answer for a candidate over a cap: failed, its fitness never measured, the broken caps in its error."""
    return Result.failure(key, genome, f"{INFEASIBLE}: {'; '.join(broken)}",
                          params=cost.get("params"), flops=cost.get("flops"))  # fmt: skip


def infeasible(objective: Objective, genome: Genome, constraints: Caps) -> Result | None:
    """Before training: the infeasible result of a genome over a params or FLOPs cap, None when it may train."""
    if not caps(constraints):
        return None
    cost = genome_cost(objective, genome)
    broken = violates(cost, constraints)
    return infeasible_result(genome.key, genome.to_dict(), broken, cost) if broken else None


def over_cap(result: Result, constraints: Caps) -> Result:
    """After training: the result itself, or, when an ok result's costs (its measured latency included) break a
    cap, the infeasible answer in its place (its measurements kept in `metrics`)."""
    if not result.ok:
        return result
    cost = {"params": result.params, "flops": result.flops, "latency_ms": result.metrics.get("latency_ms")}
    broken = violates(cost, constraints)
    if not broken:
        return result
    answer = infeasible_result(result.key, result.genome, broken, cost)
    answer.seconds, answer.metrics, answer.epochs = result.seconds, dict(result.metrics), result.epochs
    return answer
