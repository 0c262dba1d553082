"""`random`: the baseline every search must beat. Batches of `search.batch_size` independent random genomes.

A genome is a uniform random particle position (sampled as PSO's particles are: every integer value of a range,
the two ends included, equally likely; see `SearchSpace.random_position`) with uniform random shortcut bits for
its decoded layers. The learning rate, when the space searches it, comes with the position (log-uniform).
A draw that is already evaluated or in flight is drawn again (`DRAW_ATTEMPTS` times per slot), so every ask
is new work; asynchronously, `ask(n)` is n such genomes.
"""

import random
from typing import Any

from nas.genome import shortcuts
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.strategies.ranking import Score
from nas.strategies.strategy import Strategy, register

DRAW_ATTEMPTS = 50  # draws per slot before it is left empty (only a nearly exhausted space gets there)


def random_genome(space: SearchSpace, rng: random.Random) -> Genome:
    """A uniform random position, decoded, with uniform random bits for its decoded layers."""
    position = space.random_position(rng)
    blocks, _ = space.decode(position)
    return space.genome(position, tuple(shortcuts.random_bits(layers, rng) for layers, _ in blocks))


def new_random_genomes(strategy: Strategy, count: int) -> list[Genome]:
    """Up to `count` random genomes that `strategy.claim` takes; slots with no new draw are left empty."""
    out = []
    for _ in range(count):
        for _ in range(DRAW_ATTEMPTS):
            genome = random_genome(strategy.space, strategy.rng)
            if strategy.claim(genome):
                out.append(genome)
                break
        else:
            strategy.unfilled()
    return out


@register("random")
class RandomSearch(Strategy):
    def propose(self, limit: int | None) -> list[Genome]:
        return new_random_genomes(self, self.search.batch_size if limit is None else limit)

    def absorb(self, told: list[tuple[Genome, Score]]) -> None:
        pass  # random search learns nothing

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, data: dict[str, Any]) -> None:
        pass
