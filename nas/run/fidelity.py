"""Successive halving's bookkeeping (`search.fidelity`), as pure functions and one small state object.

Rungs. With `min_epochs` m, `eta` k and `fitness.epochs` E, the rungs are m, m k, m k^2, ... below E, then E:
(1, 3, E=9) gives 1, 3, 9; (1, 3, E=10) gives 1, 3, 9, 10; (2, 2, E=6) gives 2, 4, 6. Every candidate trains to
the first rung; each later rung continues a candidate from its saved state (`nas.evaluate.trainstate`) under the
schedule of the full E, so the top rung is an ordinary full-fidelity training.

Sync (`promote`): within a batch, the best `max(1, n // eta)` of the n candidates of a rung go on (ties broken
by ask order, failed candidates never), so every batch brings at least one candidate to full fidelity. Plain
floor(n / eta) would let a batch of fewer than eta candidates, or the last rungs of a small one, end with no
full-fidelity result at all, and the strategy would compare only low-rung numbers.

Async (`Asha`): ASHA in its stopping form (Li et al., "A System for Massively Parallel Hyperparameter Tuning",
MLSys 2020; the form of Ray Tune's `AsyncHyperBandScheduler`). When a candidate finishes a rung below the top,
it is decided at once: it continues to the next rung when it is in the top 1/eta of every result that rung has
seen so far, itself included (fewer than ceil(n / eta) of the n strictly better), and stops otherwise. Nobody
waits for the slowest, and a candidate's highest rung is final the moment it stops, so the strategy can be told
it (as in sync), not a first rung whose promotion might still come. The promotion form (Li et al.'s Algorithm
2: a slot that frees promotes the best not-yet-promoted candidate of any rung, however long ago it arrived)
never settles a candidate, so its strategy had to steer by the noisiest rung; measured on the synthetic
objective it reached the full arm's best only at about the full compute, where sync halving did at half
(benchmarks/RESULTS.md). A rung's first arrivals go on easily (the first always does): early in a search the
rule cannot know better, which the promotion form also pays for, by promoting from small rungs.

What strategies see (`told_fitness`): a candidate's accuracy at the highest rung it reached, ranked by rung,
then accuracy: (level + accuracy) / levels, which stays in [0, 1] and orders every candidate of a higher rung
above every one of a lower rung. Raw accuracies of different rungs are not comparable (after 1 of 9 epochs of a
one-cycle schedule the learning rate is still near its peak), so a strategy must not read a 1-epoch 40% as worse
than a 9-epoch 41% by one point.

Several objectives (`search.objectives`): a rung ranks its results as NSGA-II ranks a population, by
non-dominated front, then crowding distance (`nas.strategies.pareto`), on the objective vector of each rung
result (its accuracy at that rung, and its costs: params and FLOPs are known at every rung, a measured latency is
in its metrics). Sync (`promote_pareto`): the first `max(1, n // eta)` of that order go on (ties by ask order).
Async (`ParetoAsha`): a result continues when fewer than ceil(n / eta) of the rung's n results so far, itself
included, come strictly before it in that order. A cheap candidate of fair accuracy can then go on where the
accuracy alone would stop it, which is what a search for a front needs of its early stopping. With one
objective both rules are exactly `promote` and `Asha`.

Signals (`search.fidelity.signal`): what a rung result is ranked by when promotion is decided (`rank_value`),
in sync and async alike; with several objectives it takes the place of the accuracy in the vector
(`rank_vector`). What strategies are told stays the accuracy (`told_fitness`) whatever the signal.
- `accuracy`: the validation accuracy at epoch e of the full E-epoch schedule ("truncated schedule"). After 1 of
  9 epochs of a one-cycle schedule the network is read mid warm-up, at a high learning rate: a weak signal.
- `loss`: SoTL-E with E = 1 (Ru et al., "Speedy Performance Estimation for Neural Architecture Search",
  NeurIPS 2021): the negated mean training loss of the rung's last epoch, so the lowest loss ranks first. The
  training is the truncated one; the loss is in each rung line's metrics (`train_loss`), so a resumed run ranks
  from its log exactly as the first run did. A rung line without a finite training loss is never promoted.
- `restart`: each rung trains from scratch under a complete schedule of its own epochs (a 1-epoch rung is a
  whole 1-epoch one-cycle, annealed to its end), ranked by its validation accuracy. No state is carried from
  rung to rung, so the top rung is an ordinary full training; the price is that a promoted candidate trains
  every rung again from epoch 0: with rungs 1, 3, 9 a candidate reaching the top costs 13 epochs, not 9.
"""

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from nas.evaluate.result import Result
from nas.strategies import pareto

Signal = Literal["accuracy", "loss", "restart"]


def rung_epochs(min_epochs: int, eta: int, epochs: int) -> list[int]:
    """The epochs of every rung, ascending, ending at `epochs` (see the module docstring)."""
    if not 1 <= min_epochs < epochs or eta < 2:
        raise ValueError(f"need 1 <= min_epochs < epochs and eta >= 2, got {min_epochs}, {epochs}, {eta}")
    rungs = []
    e = min_epochs
    while e < epochs:
        rungs.append(e)
        e *= eta
    return [*rungs, epochs]


def promotion_count(n: int, eta: int) -> int:
    """How many of a batch rung's n candidates go on: max(1, n // eta), 0 for an empty rung."""
    return max(1, n // eta) if n else 0


def promote(fitness: Sequence[float | None], eta: int) -> list[int]:
    """Indices (ascending) of the candidates of one batch rung that go on; None is a failed candidate."""
    ok = sorted((-f, i) for i, f in enumerate(fitness) if f is not None)  # best first, ties by ask order
    return sorted(i for _, i in ok[: promotion_count(len(fitness), eta)])


def promote_pareto(vectors: Sequence[pareto.Vector | None], eta: int) -> list[int]:
    """Indices (ascending) of the candidates of one batch rung that go on, by front rank then crowding (ties by
    ask order); None, or a vector with no finite value (failed, or lacking a cost), never goes on."""
    ok = [(i, v) for i, v in enumerate(vectors) if v is not None and all(math.isfinite(x) for x in v)]
    keys = pareto.selection_keys([v for _, v in ok])
    order = sorted(range(len(ok)), key=lambda k: (keys[k], ok[k][0]))
    return sorted(ok[k][0] for k in order[: promotion_count(len(vectors), eta)])


def carries_state(signal: Signal) -> bool:
    """Whether a rung continues from the state of the rung below (every signal but `restart`)."""
    return signal != "restart"


def rank_value(result: Result | None, signal: Signal) -> float | None:
    """What a rung result is ranked by under `signal`, higher better (module docstring, Signals); None for a
    missing or failed result, and under `loss` for one without a finite training loss: it never goes on."""
    if result is None or not result.ok or result.fitness is None:
        return None
    if signal != "loss":
        return result.fitness
    loss = result.metrics.get("train_loss")
    if isinstance(loss, bool) or not isinstance(loss, int | float) or not math.isfinite(loss):
        return None
    return -float(loss)


def rank_vector(result: Result | None, objectives: Sequence[str], signal: Signal) -> pareto.Vector | None:
    """A rung result's objective vector (minimisation form) with `rank_value` in place of the accuracy; None for
    a result that cannot go on."""
    value = rank_value(result, signal)
    if result is None or value is None:
        return None
    vector = pareto.objective_vector(result, objectives)
    return tuple(-value if name == pareto.FITNESS else v for name, v in zip(objectives, vector, strict=True))


RUNG_GAP = 1e-9  # keeps rungs strictly apart in `told_fitness`


def told_fitness(accuracy: float, level: int, levels: int) -> float:
    """The fitness a strategy is told for `accuracy` at rung `level` (0-based) of `levels`: rung, then accuracy.

    The accuracy is squeezed into [0, 1 - RUNG_GAP] of its rung's band, so that even an accuracy of 1 - 1e-16
    at one rung stays strictly below 0 at the next once divided by `levels` (floating point would tie them)."""
    return (level + accuracy * (1 - RUNG_GAP)) / levels


@dataclass
class Asha:
    """The stopping rule of asynchronous successive halving over rung levels 0..levels-1 (module docstring).

    `seen[level]` holds the fitness of every result decided at that level, sorted, so a decision costs
    O(log n) comparisons. It is rebuilt from the log's lines in order on every start, never checkpointed."""

    levels: int
    eta: int
    seen: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.seen = self.seen or [[] for _ in range(self.levels)]

    def decide(self, level: int, fitness: float | None) -> bool:
        """Record a result at `level` and say whether its candidate continues to `level + 1`. A failure (None)
        and a result at the top rung never continue; a failure is not recorded (it ranks no one)."""
        if fitness is None:
            return False
        rung = self.seen[level]
        better = len(rung) - bisect.bisect_right(rung, fitness)
        bisect.insort(rung, fitness)
        return level < self.levels - 1 and better < math.ceil(len(rung) / self.eta)


class ParetoRung:
    """The objective vectors one rung has seen, with the front rank of each kept as they arrive.

    A point's front rank (as `pareto.non_dominated_sort` numbers fronts) is the length of the longest chain of
    points dominating it: 0 when none does, else one more than the largest rank of those that do. A newcomer's
    rank therefore needs one pass over the rung, and only the points below it in a chain of dominance can rise,
    so a rung of n results costs about O(n) a result instead of a whole sort of the rung each time."""

    def __init__(self) -> None:
        self.points: list[pareto.Vector] = []
        self.ranks: list[int] = []

    def rank_of(self, i: int) -> int:
        above = [self.ranks[j] for j, p in enumerate(self.points) if j != i and pareto.dominates(p, self.points[i])]
        return 1 + max(above) if above else 0

    def add(self, vector: pareto.Vector) -> int:
        """Record `vector`; returns how many earlier points now come strictly before it (rank, then crowding)."""
        self.points.append(vector)
        self.ranks.append(0)
        new = len(self.points) - 1
        self.ranks[new] = self.rank_of(new)
        raised = [new]
        for i in sorted(range(new), key=lambda k: self.points[k]):  # a dominating point sorts before its dominated
            if any(pareto.dominates(self.points[j], self.points[i]) for j in raised):
                rank = self.rank_of(i)
                if rank != self.ranks[i]:
                    self.ranks[i] = rank
                    raised.append(i)
        return self.before(new)

    def before(self, i: int) -> int:
        """How many points come strictly before point `i`: a lower front, or its front and less crowded."""
        rank = self.ranks[i]
        front = [j for j, r in enumerate(self.ranks) if r == rank]
        distance = dict(zip(front, pareto.crowding_distance(self.points, front), strict=True))
        return sum(r < rank for r in self.ranks) + sum(distance[j] > distance[i] for j in front)


@dataclass
class ParetoAsha:
    """`Asha`'s stopping rule with several objectives (module docstring): `decide` takes the rung result's
    objective vector (minimisation form) instead of its fitness. Rebuilt from the log on every start, like
    `Asha`."""

    levels: int
    eta: int
    seen: list[ParetoRung] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.seen = self.seen or [ParetoRung() for _ in range(self.levels)]

    def decide(self, level: int, vector: pareto.Vector | None) -> bool:
        """Record a result at `level` and say whether its candidate continues to `level + 1`. A failure (None, or
        a vector without a finite value) and a result at the top rung never continue; a failure is not recorded."""
        if vector is None or not all(math.isfinite(x) for x in vector):
            return False
        rung = self.seen[level]
        better = rung.add(vector)
        return level < self.levels - 1 and better < math.ceil(len(rung.points) / self.eta)
