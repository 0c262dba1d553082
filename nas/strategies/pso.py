"""`pso`: particle swarm optimisation of the architecture level alone, with every shortcut on (DenseNet).

The peer that isolates what the shortcut GA adds: the same swarm as hgapso, but each particle is scored once per
move with the all-ones bitstrings of its decoded architecture. Sync: one ask is the whole swarm, and the swarm
settles and moves after each tell. Async: a particle is asked as soon as it is idle and moves as soon as its own
result is told, towards the global best known at that moment.

Every ask is new work: a particle whose cell was already evaluated takes the known score and moves on without
an ask (up to `FREE_MOVES` times per draw, counted as repeats avoided); one whose cell another particle has in
flight waits for that result. The budget ends the search, or convergence when `search.pso.stall_iterations`
is set: that many swarm iterations (moves of every particle) without a better global best.

With several objectives (`search.objectives`) every scored cell is offered to an archive of non-dominated
points, and each moving particle flies towards a leader drawn from it (`nas.strategies.archive`, MOPSO).

This strategy declares the section `search.pso` (`swarm.PSOConfig`); hgapso's swarm reads it too.
"""

from typing import Any

from nas.config import SearchConfig
from nas.genome import shortcuts
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.strategies import archive as pareto_archive
from nas.strategies import swarm as pso_math
from nas.strategies.ranking import Score
from nas.strategies.strategy import Strategy, register
from nas.strategies.swarm import PSOConfig

FREE_MOVES = 20  # moves over already evaluated cells per particle and draw before its slot is left empty


@register("pso", config=PSOConfig)
class ParticleSwarm(Strategy):
    def __init__(self, search: SearchConfig, space: SearchSpace, seed: int):
        super().__init__(search, space, seed)
        self.swarm = pso_math.new_swarm(space.dimensions, self.config.swarm_size, self.config.velocity_clamp, self.rng)
        self.stalls = 0  # particle moves since the global best last improved
        self.waiting: list[str | None] = [None] * self.config.swarm_size  # key each particle waits for
        self.archive: tuple[pso_math.BestPoint, ...] = ()  # non-dominated cells (several objectives only)

    def done(self) -> bool:
        limit = self.config.stall_iterations
        return super().done() or (limit is not None and self.stalls >= limit * len(self.swarm.particles))

    def genome_at(self, index: int) -> Genome:
        position = self.swarm.particles[index].position
        blocks, _ = self.space.decode(list(position))
        return self.space.genome(list(position), tuple(shortcuts.all_ones(layers) for layers, _ in blocks))

    def propose(self, limit: int | None) -> list[Genome]:
        asked: list[Genome] = []
        for i in range(len(self.swarm.particles)):
            if self.waiting[i] is not None or (limit is not None and len(asked) >= limit):
                continue
            genome = self.next_genome(i)
            if genome is not None:
                asked.append(genome)
        return asked

    def next_genome(self, i: int) -> Genome | None:
        """Particle i's next new genome (claimed), or None: it waits on another particle's, or found none."""
        for _ in range(FREE_MOVES):
            genome = self.genome_at(i)
            score = self.score_of(genome)
            if score is None and self.claim(genome):
                self.waiting[i] = genome.key
                return genome
            if score is None:  # in flight for another particle: share its result
                self.waiting[i] = genome.key
                return None
            self.repeats.avoided += 1
            self.move({i: score})
        self.unfilled()
        return None

    def move(self, scores: dict[int, Score | None]) -> None:
        """Settle the particles in `scores` at their current cells, then move them."""
        bits = {i: self.genome_at(i).shortcut_level for i in scores}
        before = self.swarm
        settled = pso_math.settle(self.swarm, {i: (s, bits[i]) for i, s in scores.items()})
        self.stalls = 0 if pso_math.improved(before, settled) else self.stalls + len(scores)
        guides = None
        if self.costs:
            visits = [pso_math.BestPoint(before.particles[i].position, bits[i], s) for i, s in scores.items() if s]
            self.archive = pareto_archive.add(self.archive, visits)
            guides = pareto_archive.leaders(self.archive, sorted(scores), self.rng)
        self.swarm = pso_math.advance(settled, self.space.dimensions, self.config, self.rng, sorted(scores), guides)

    def absorb(self, told: list[tuple[Genome, Score]]) -> None:
        by_key = {genome.key: score for genome, score in told}
        ready = {i: by_key[key] for i, key in enumerate(self.waiting) if key in by_key}
        for i in ready:
            self.waiting[i] = None
        if ready:
            self.move(ready)

    def retract(self, withdrawn: list[Genome]) -> None:
        """A particle whose genome was withdrawn (or that shared it) stops waiting: it stays where it is, and a
        later draw proposes its cell again. It moves only on a real result."""
        keys = {g.key for g in withdrawn}
        self.waiting = [None if key in keys else key for key in self.waiting]

    def state(self) -> dict[str, Any]:
        state = {"swarm": self.swarm.to_dict(), "stalls": self.stalls, "waiting": list(self.waiting)}
        return state | ({"archive": pareto_archive.to_list(self.archive)} if self.costs else {})

    def load_state(self, data: dict[str, Any]) -> None:
        self.swarm = pso_math.Swarm.from_dict(data["swarm"])
        self.stalls = data["stalls"]
        self.waiting = list(data["waiting"])
        self.archive = pareto_archive.from_list(data.get("archive", []))
