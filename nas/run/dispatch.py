"""Largest-first dispatch: among the genomes ready to run, the most expensive (analytic FLOPs) go first.

Candidate costs in the shipped spaces vary widely (`densenet_cifar` at 32x32: 0.04-1.4 GFLOPs). Started in
ask order, a batch whose largest candidate comes last keeps one slot busy long after the others have gone idle;
started largest first (the LPT rule of scheduling), the long trainings overlap the short ones. The order of
submission changes neither what is evaluated nor what the strategy is told (the sync driver tells in ask
order), only when the slots free up.
The cost is `analytic_cost` of the candidate's full architecture: pure arithmetic, microseconds a genome.
"""

from collections.abc import Sequence

from nas.evaluate.objective import Objective
from nas.genome.genome import Genome
from nas.model.analytic_cost import analytic_cost


def flops_of(objective: Objective, genome: Genome) -> int:
    """The candidate's forward FLOPs at the objective's input size; 0 when its architecture cannot be built
    (such a genome fails in its evaluation, which records why: its place in the queue does not matter)."""
    try:
        return analytic_cost(objective.architecture(genome))[1]
    except Exception:  # noqa: BLE001  (an ordering hint must never stop a search)
        return 0


def largest_first(genomes: Sequence[Genome], objective: Objective) -> list[Genome]:
    """`genomes` by decreasing FLOPs; equal costs keep their order (a stable sort, so the order is reproducible)."""
    costs = {g.key: flops_of(objective, g) for g in genomes}
    return sorted(genomes, key=lambda g: -costs[g.key])
