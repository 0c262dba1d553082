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
"""

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field


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
