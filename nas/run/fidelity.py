"""Successive halving's bookkeeping (`search.fidelity`), as pure functions and one small state object.

Rungs. With `min_epochs` m, `eta` k and `fitness.epochs` E, the rungs are m, m k, m k^2, ... below E, then E:
(1, 3, E=9) gives 1, 3, 9; (1, 3, E=10) gives 1, 3, 9, 10; (2, 2, E=6) gives 2, 4, 6. Every candidate trains to
the first rung; each later rung continues a candidate from its saved state (`nas.evaluate.trainstate`) under the
schedule of the full E, so the top rung is an ordinary full-fidelity training.

Sync (`promote`): within a batch, the best `max(1, n // eta)` of the n candidates of a rung go on (ties broken
by ask order, failed candidates never), so every batch brings at least one candidate to full fidelity. Plain
floor(n / eta) would let a batch of fewer than eta candidates, or the last rungs of a small one, end with no
full-fidelity result at all, and the strategy would compare only low-rung numbers.

Async (`Asha`): ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020). When a
slot frees, the candidate to promote is the best of the highest rung below the top that has one in its top
floor(n / eta) not yet promoted; otherwise a new candidate starts at the bottom rung. Candidates are never
waited for, so a rung decides on what it has seen so far.

What strategies see (`told_fitness`): a candidate's accuracy at the highest rung it reached, ranked by rung,
then accuracy: (level + accuracy) / levels, which stays in [0, 1] and orders every candidate of a higher rung
above every one of a lower rung. Raw accuracies of different rungs are not comparable (after 1 of 9 epochs of a
one-cycle schedule the learning rate is still near its peak), so a strategy must not read a 1-epoch 40% as worse
than a 9-epoch 41% by one point.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


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
    ok = sorted((i for i, f in enumerate(fitness) if f is not None), key=lambda i: (-fitness[i], i))  # type: ignore[operator]
    return sorted(ok[: promotion_count(len(fitness), eta)])


RUNG_GAP = 1e-9  # keeps rungs strictly apart in `told_fitness`


def told_fitness(accuracy: float, level: int, levels: int) -> float:
    """The fitness a strategy is told for `accuracy` at rung `level` (0-based) of `levels`: rung, then accuracy.

    The accuracy is squeezed into [0, 1 - RUNG_GAP] of its rung's band, so that even an accuracy of 1 - 1e-16
    at one rung stays strictly below 0 at the next once divided by `levels` (floating point would tie them)."""
    return (level + accuracy * (1 - RUNG_GAP)) / levels


@dataclass
class Asha:
    """Asynchronous successive halving over rung levels 0..levels-1; JSON-safe state (`state_dict`).

    `members[level]` lists (key, fitness) in arrival order; `promoted[level]` the keys that left that level.
    """

    levels: int
    eta: int
    members: list[list[tuple[str, float]]] = field(default_factory=list)
    promoted: list[set[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.members = self.members or [[] for _ in range(self.levels)]
        self.promoted = self.promoted or [set() for _ in range(self.levels)]

    def record(self, key: str, level: int, fitness: float | None) -> None:
        """A candidate finished `level`. A failed one (None) is out: it can never be promoted."""
        if fitness is not None:
            self.members[level].append((key, fitness))

    def next_promotion(self, busy: frozenset[str] = frozenset()) -> tuple[str, int] | None:
        """(key, level to train next) for the best promotable candidate, or None: start a new one.

        `busy` are keys already training (never promoted twice at once). The caller reserves the promotion with
        `mark_promoted` when it submits it."""
        for level in range(self.levels - 2, -1, -1):
            ranked = sorted(enumerate(self.members[level]), key=lambda im: (-im[1][1], im[0]))
            for _, (key, _) in ranked[: len(ranked) // self.eta]:
                if key not in self.promoted[level] and key not in busy:
                    return key, level + 1
        return None

    def mark_promoted(self, key: str, level: int) -> None:
        """`key` leaves `level` - 1 for `level`."""
        self.promoted[level - 1].add(key)

    def promotable(self, key: str, level: int) -> bool:
        """Whether `key`, finished at `level`, may still be promoted later (it keeps its rung state until not).

        Below the top and not promoted yet it may, as long as the search goes on: later arrivals that rank
        below it raise floor(n / eta) until it is in the top. So ASHA keeps such states to the end of the search."""
        return level < self.levels - 1 and key not in self.promoted[level]

    def state_dict(self) -> dict[str, Any]:
        return {
            "members": [[[k, f] for k, f in level] for level in self.members],
            "promoted": [sorted(level) for level in self.promoted],
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.members = [[(str(k), float(f)) for k, f in level] for level in data["members"]]
        self.promoted = [set(level) for level in data["promoted"]]
