"""`hgapso`: the hybrid GA-PSO search (Wang et al., PRICAI 2019; DESIGN.md section 3).

PSO moves a swarm over the architecture level; every particle's decoded architecture gets its own shortcut GA
(`ShortcutGA`). The GAs of all particles advance in lockstep, so one ask is one generation of every particle's
GA: `swarm_size * ga.population` genomes, particle-major (particle 0's population first). After
`ga.generations` scored generations a particle's fitness is the best its GA found; personal and global bests
keep that position together with its best bitstrings, the swarm moves, and each particle starts a fresh GA for
its new architecture, seeded with the all-ones string, its personal best's and the swarm's best bitstrings
resized to the new layer counts, and random strings. Then the next iteration. The budget ends it, or convergence: after
`STALL_PATIENCE` iterations in a row without a better global best (each of them full GA runs) it is `done()`.

Elites are asked again in the next generation (the batch size stays constant; the driver answers genomes it has
already evaluated from its log without training them again).
"""

from typing import Any

from nas.config import SearchConfig
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.strategies import swarm as pso_math
from nas.strategies.shortcut_ga import ShortcutGA
from nas.strategies.strategy import Strategy, register

# Seed every particle's new GA with the swarm's best bitstrings too, not only its own: shortcut patterns that
# pay off transfer across architectures (resized to the new depths), so sharing them is how the GA level
# profits from the swarm. Measured in benchmarks/RESULTS.md (search quality).
SEED_GLOBAL_BEST = True


@register("hgapso")
class HybridGAPSO(Strategy):
    def __init__(self, search: SearchConfig, space: SearchSpace, seed: int):
        super().__init__(search, space, seed)
        self.iteration = 0
        self.stalls = 0  # iterations since the global best last improved
        self.swarm = pso_math.new_swarm(space.dimensions, search.pso.swarm_size, search.pso.velocity_clamp, self.rng)
        self.runs = self.start_runs()

    def done(self) -> bool:
        return self.stalls >= pso_math.STALL_PATIENCE

    def layers_at(self, position: tuple[float, ...]) -> list[int]:
        return [layers for layers, _ in self.space.decode(list(position))[0]]

    def start_runs(self) -> list[ShortcutGA]:
        """A fresh GA per particle at its current position, seeded from its personal best and the swarm's best,
        resized to the new depths."""
        runs = []
        for particle in self.swarm.particles:
            bests = [b for b in (particle.best, self.swarm.best if SEED_GLOBAL_BEST else None) if b is not None]
            known = [(b.bits, self.layers_at(b.position)) for b in bests]
            layers = self.layers_at(particle.position)
            runs.append(ShortcutGA.start(layers, self.search.ga.population, self.rng, known))
        return runs

    def propose(self) -> list[Genome]:
        return [
            self.space.genome(particle.position, run.blocks(i))
            for particle, run in zip(self.swarm.particles, self.runs, strict=True)
            for i in range(len(run.population))
        ]

    def absorb(self, genomes: list[Genome], fitness: list[float | None]) -> None:
        size = self.search.ga.population
        self.runs = [run.record(fitness[i * size : (i + 1) * size]) for i, run in enumerate(self.runs)]
        if self.runs[0].generation + 1 < self.search.ga.generations:
            self.runs = [run.evolve(self.search.ga, self.rng) for run in self.runs]
        else:
            self.next_iteration()

    def next_iteration(self) -> None:
        """Score each particle by its GA's best, update bests, move the swarm, start new GAs."""
        scores = [run.best_fitness for run in self.runs]
        bits = [run.best_blocks() or run.blocks(0) for run in self.runs]  # bits of an all-failed run are unused
        settled = pso_math.settle(self.swarm, scores, bits)
        self.stalls = 0 if pso_math.improved(self.swarm, settled) else self.stalls + 1
        self.swarm = pso_math.advance(settled, self.space.dimensions, self.search.pso, self.rng)
        self.iteration += 1
        self.runs = self.start_runs()

    def state(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "stalls": self.stalls,
            "swarm": self.swarm.to_dict(),
            "runs": [r.to_dict() for r in self.runs],
        }

    def load_state(self, data: dict[str, Any]) -> None:
        self.iteration = data["iteration"]
        self.stalls = data["stalls"]
        self.swarm = pso_math.Swarm.from_dict(data["swarm"])
        self.runs = [ShortcutGA.from_dict(r) for r in data["runs"]]
