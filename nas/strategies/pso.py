"""`pso`: particle swarm optimisation of the architecture level alone, with every shortcut on (DenseNet).

The peer that isolates what the shortcut GA adds: the same swarm as hgapso, but each particle is scored once per
iteration with the all-ones bitstrings of its decoded architecture. One ask is the whole swarm; the swarm moves
after each tell. The budget ends it, or convergence: after `STALL_PATIENCE` iterations without a better global
best it is `done()` (a converged swarm would only ask genomes the log has already answered).
"""

from typing import Any

from nas.config import SearchConfig
from nas.genome import shortcuts
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.strategies import swarm as pso_math
from nas.strategies.strategy import Strategy, register


@register("pso")
class ParticleSwarm(Strategy):
    def __init__(self, search: SearchConfig, space: SearchSpace, seed: int):
        super().__init__(search, space, seed)
        self.swarm = pso_math.new_swarm(space.dimensions, search.pso.swarm_size, search.pso.velocity_clamp, self.rng)
        self.stalls = 0  # iterations since the global best last improved

    def done(self) -> bool:
        return self.stalls >= pso_math.STALL_PATIENCE

    def dense_bits(self, position: tuple[float, ...]) -> tuple[str, ...]:
        blocks, _ = self.space.decode(list(position))
        return tuple(shortcuts.all_ones(layers) for layers, _ in blocks)

    def propose(self) -> list[Genome]:
        return [self.space.genome(p.position, self.dense_bits(p.position)) for p in self.swarm.particles]

    def absorb(self, genomes: list[Genome], fitness: list[float | None]) -> None:
        bits = [self.dense_bits(p.position) for p in self.swarm.particles]
        settled = pso_math.settle(self.swarm, fitness, bits)
        self.stalls = 0 if pso_math.improved(self.swarm, settled) else self.stalls + 1
        self.swarm = pso_math.advance(settled, self.space.dimensions, self.search.pso, self.rng)

    def state(self) -> dict[str, Any]:
        return {"swarm": self.swarm.to_dict(), "stalls": self.stalls}

    def load_state(self, data: dict[str, Any]) -> None:
        self.swarm = pso_math.Swarm.from_dict(data["swarm"])
        self.stalls = data["stalls"]
