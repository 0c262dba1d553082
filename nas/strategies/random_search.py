"""`random`: the baseline every search must beat. Batches of `search.batch_size` independent random genomes.

A genome is a uniform random particle position (decoded by rounding and clamping, exactly as PSO's particles
are, so both sample the architecture level the same way) with uniform random shortcut bits for its decoded
layers. The learning rate, when the space searches it, comes with the position (log-uniform).
"""

import random
from typing import Any

from nas.genome import shortcuts
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.strategies.strategy import Strategy, register


def random_genome(space: SearchSpace, rng: random.Random) -> Genome:
    """A uniform random position, decoded, with uniform random bits for its decoded layers."""
    position = space.random_position(rng)
    blocks, _ = space.decode(position)
    return space.genome(position, tuple(shortcuts.random_bits(layers, rng) for layers, _ in blocks))


@register("random")
class RandomSearch(Strategy):
    def propose(self) -> list[Genome]:
        return [random_genome(self.space, self.rng) for _ in range(self.search.batch_size)]

    def absorb(self, genomes: list[Genome], fitness: list[float | None]) -> None:
        pass  # random search learns nothing

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, data: dict[str, Any]) -> None:
        pass
