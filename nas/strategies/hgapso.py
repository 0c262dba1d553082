"""`hgapso`: the hybrid GA-PSO search (Wang et al., PRICAI 2019; DESIGN.md section 3).

PSO moves a swarm over the architecture level; every particle's decoded architecture gets its own shortcut GA
(`ShortcutGA`). After `ga.generations` scored generations a particle's fitness is the best its GA found;
personal and global bests keep that position together with its best bitstrings, the particle moves, and it
starts a fresh GA for its new architecture, seeded with the all-ones string, its personal best's and the swarm's
best bitstrings resized to the new layer counts, and random strings.

Each particle is a pipeline of its own: its GA breeds when its own generation is scored, and it moves when its
own GA run is over, towards the global best known at that moment. Synchronously (`ask()`), all particles'
generations are asked together, particle-major (particle 0's members first), and told together, so the GAs
advance in lockstep and the swarm settles and moves as one (DESIGN.md's lockstep asks). Asynchronously
(`ask(n)`), the members of the particles' current generations are handed out as slots free up, the particle
that has moved least first (lowest index among equals), so that the swarm moves nearly together although no
particle waits for another; a particle whose generation is all asked waits for its own results (`ask(n)` may
return fewer). Serving the lowest index first instead let a few particles take every slot and move many
times while the rest of the swarm stood still: a swarm of two or three that collapsed onto an early leader.
A particle whose GA run is over settles at once (personal and global bests), but moves only once
`search.hgapso.quorum` of the swarm has settled after it (`waiting`; it holds nothing in flight meanwhile, and
when nothing else is in flight every waiting particle moves), so that its move sees a global best built from
about as many reports as a synchronous move does. Both measured in benchmarks/RESULTS.md (async search
quality). Synchronously the whole swarm settles together and moves at once, as before.

The last `search.hgapso.exploit` fraction of an evaluation budget (half by default) is an exploitation phase
around the global best: a particle that moves is placed at the best's position, or one cell from it along one
dimension (`swarm.neighbour`), and its GA is seeded with its personal best's and the swarm's best bitstrings
and one-bit variants of the latter (no DenseNet seed). The swarm finds the architecture early and then
leaves a few shortcut bits wrong, which PSO moves and multi-bit mutants rarely finish and one-bit steps do, as
a (1+1) climber's do; measured on the family of synthetic landscapes (benchmarks/RESULTS.md). A budget in
hours only has no known end: no phase.

With several objectives (`search.objectives`) every told result is offered to an archive of non-dominated
points; a moving particle flies towards a leader drawn from it, the least crowded members preferred (MOPSO;
`nas.strategies.archive`), and the GAs select by Pareto front and crowding (`shortcut_ga.breed`). Personal
bests, the global best and the exploitation phase around it keep the ranking rule (the fittest): placing the
phase around archive leaders instead lost 0.045 (200 evaluations) and 0.055 (600) of the front's mean
hypervolume on the synthetic landscape (benchmarks/pareto_quality.py, 5 seeds).

Every ask is new work: elites carry their scores into the next generation, seeds already evaluated carry
theirs, and a repeated child is varied again (`nas.strategies.ga_asks`). The budget ends the search, or, when
`search.pso.stall_iterations` is set, that many swarm iterations without a better global best.
"""

from dataclasses import dataclass, replace
from typing import Any, Literal

from nas.config import SearchConfig, bounds
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.strategies import archive as pareto_archive
from nas.strategies import swarm as pso_math
from nas.strategies.ga_asks import ask_member, known_scorer, score_waiting, unask
from nas.strategies.ranking import Score
from nas.strategies.shortcut_ga import GAConfig, ShortcutGA
from nas.strategies.strategy import Strategy, register

ADVANCES_PER_DRAW = 50  # generations a particle may complete without an ask inside one draw (all known)


@dataclass
class HGAPSOConfig:
    """`search.hgapso`: how a particle's new GA is seeded (see benchmarks/RESULTS.md, search quality)."""

    # Seed each new GA with the all-ones string (the DenseNet of the architecture), as DESIGN.md section 3 does.
    dense_seed: bool = True
    # Fill the rest of the first generation with random strings, or with variants of the swarm's best string
    # (resized to the new architecture): exploration or exploitation of the shortcut level. `mutants` measured
    # ahead on 3 of the 4 synthetic landscapes at 400 evaluations (benchmarks/RESULTS.md).
    fill: Literal["random", "mutants"] = "mutants"
    # Asynchronously, a particle whose GA run is over moves only once this fraction of the swarm has settled
    # after it (0: at once), so that it moves towards a global best built from about as many reports as a
    # synchronous move's. Without it async hgapso lost 0.015-0.026 on two landscapes; with 0.5 it is level
    # with sync (benchmarks/RESULTS.md, async search quality). Sync moves the whole swarm together anyway.
    quorum: float = bounds(0.5, 0, 1)
    # The last fraction of an evaluation budget spent around the global best (module docstring; 0: none). At
    # 0.5 the family mean rose by 0.015 (sync) and 0.018 (async) at 400 evaluations and by 0.008 at 200; 0.3,
    # 0.4 and 0.7 were lower (benchmarks/RESULTS.md, search quality).
    exploit: float = bounds(0.5, 0, 1)
    # In that phase, the chance that a moving particle stays on the best architecture (and only its bits vary)
    # rather than stepping one cell from it.
    exploit_stay: float = bounds(0.5, 0, 1)
    # A particle whose personal best has not improved over this many of its own moves is respawned at a random
    # position with its personal best forgotten (the swarm's best stays): a seed whose swarm collapsed onto a
    # local optimum gets explorers back. None: never.
    restart_after: int | None = bounds(None, 1, 1_000_000)
    # A move that leaves the decoded architecture where it was (a velocity below half a cell, common once the
    # swarm contracts) steps one integer dimension by one cell instead, towards the swarm's best where it differs:
    # PSO's real-valued moves made useful on integer dimensions.
    nudge: bool = False


@register("hgapso", config=HGAPSOConfig)
class HybridGAPSO(Strategy):
    def __init__(self, search: SearchConfig, space: SearchSpace, seed: int):
        super().__init__(search, space, seed)
        self.moves = 0  # particle GA runs completed
        self.stalls = 0  # particle GA runs since the global best last improved
        self.particle_moves = [0] * self.pso.swarm_size  # GA runs completed, a particle
        self.particle_stalls = [0] * self.pso.swarm_size  # a particle's moves since its personal best improved
        self.waiting: dict[int, int] = {}  # async: settled particle -> `moves` then; it moves after a quorum
        self.asynchronous = False  # the last draw was ask(n)
        self.swarm = pso_math.new_swarm(space.dimensions, self.pso.swarm_size, self.pso.velocity_clamp, self.rng)
        self.archive: tuple[pso_math.BestPoint, ...] = ()  # non-dominated results (several objectives only)
        self.runs: list[ShortcutGA] = [self.start_run(i) for i in range(self.pso.swarm_size)]

    @property
    def pso(self) -> pso_math.PSOConfig:
        """`search.pso`, the swarm's parameters (the section the `pso` strategy declares)."""
        return self.search.section("pso")

    @property
    def ga(self) -> GAConfig:
        """`search.ga`, every particle's GA (the section the `ga` strategy declares)."""
        return self.search.section("ga")

    def done(self) -> bool:
        limit = self.pso.stall_iterations
        return super().done() or (limit is not None and self.stalls >= limit * len(self.swarm.particles))

    def layers_at(self, position: tuple[float, ...]) -> list[int]:
        return [layers for layers, _ in self.space.decode(list(position))[0]]

    def start_run(self, i: int) -> ShortcutGA:
        """A fresh GA for particle i at its current position, seeded from its personal best and the swarm's
        best, resized to the new depths; seeds already evaluated carry their scores. In the exploitation phase
        the DenseNet seed is left out and the rest are one-bit variants of the swarm's best."""
        particle = self.swarm.particles[i]
        exploit = self.exploiting()
        # The swarm's best bitstrings seed every new GA too: shortcut patterns that pay off transfer across
        # architectures (resized to the new depths), which is how the GA level profits from the swarm.
        bests = [b for b in (particle.best, self.swarm.best) if b is not None]
        known = [(b.bits, self.layers_at(b.position)) for b in bests]
        layers = self.layers_at(particle.position)
        scorer = known_scorer(self, particle.position, layers)
        mutate = self.ga if self.config.fill == "mutants" else None
        if exploit:  # one-bit variants (`revary`'s forced flip alone): a (1+1) climber's step
            mutate = replace(self.ga, bit_flip_prob=0.0)
        return ShortcutGA.start(
            layers,
            self.ga.population,
            self.rng,
            known,
            scorer,
            self.config.dense_seed and not exploit,
            mutate,
        )

    def exploiting(self) -> bool:
        """In the exploitation phase: the last `exploit` fraction of an evaluation budget, once a best exists."""
        budget = self.search.budget.evaluations
        if not self.config.exploit or budget is None or self.swarm.best is None:
            return False
        return len(self._scores) >= (1 - self.config.exploit) * budget

    def serving_order(self, limit: int | None) -> list[int]:
        """Particles in the order their members are asked: index order for a batch, least moved first when
        slots are filled one at a time (module docstring)."""
        order = list(range(len(self.runs)))
        return order if limit is None else sorted(order, key=lambda i: (self.particle_moves[i], i))

    def parallelism(self) -> int:
        """At most one GA generation a particle is in flight: swarm size x GA population genomes."""
        return len(self.runs) * self.ga.population

    def release(self, *, everyone: bool) -> None:
        """Move the settled particles whose quorum has reported since (all of them when `everyone`), then start
        their new GAs."""
        quorum = round(self.config.quorum * len(self.runs))
        ready = sorted(i for i, at in self.waiting.items() if everyone or self.moves - at >= quorum)
        if not ready:
            return
        if self.exploiting():
            for i in ready:
                self.swarm = pso_math.neighbour(
                    self.swarm, i, self.space.dimensions, self.rng, self.config.exploit_stay
                )
        else:
            before = self.swarm
            guides = pareto_archive.leaders(self.archive, ready, self.rng) if self.costs else None
            self.swarm = pso_math.advance(self.swarm, self.space.dimensions, self.pso, self.rng, ready, guides)
            for i in ready:
                self.explore(i, before.particles[i].position)
        for i in ready:
            del self.waiting[i]
            self.runs[i] = self.start_run(i)

    def explore(self, i: int, was: tuple[float, ...]) -> None:
        """After particle i's PSO move: respawn it when it has stagnated (`restart_after`), or nudge it one cell
        when the move left its architecture unchanged (`nudge`)."""
        dims = self.space.dimensions
        limit = self.config.restart_after
        if limit is not None and self.particle_stalls[i] >= limit:
            fresh = pso_math.spawn(dims, self.pso.velocity_clamp, self.rng)
            self.swarm = replace(
                self.swarm, particles=self.swarm.particles[:i] + (fresh,) + self.swarm.particles[i + 1 :]
            )
            self.particle_stalls[i] = 0
            return
        if self.config.nudge and self.space.decode(list(self.swarm.particles[i].position)) == self.space.decode(
            list(was)
        ):
            self.swarm = pso_math.nudge(self.swarm, i, dims, self.rng)

    def propose(self, limit: int | None) -> list[Genome]:
        self.asynchronous = limit is not None
        self.release(everyone=limit is None)
        asked = self.draw(limit)
        if not asked and self.waiting and not self.in_flight():  # nothing else to wait for: move them now
            self.release(everyone=True)
            asked = self.draw(limit)
        return asked

    def draw(self, limit: int | None) -> list[Genome]:
        asked: list[Genome] = []
        for i in self.serving_order(limit):
            if i in self.waiting:
                continue
            for _ in range(ADVANCES_PER_DRAW):
                for index in self.runs[i].todo():
                    if limit is not None and len(asked) >= limit:
                        return asked
                    position = self.swarm.particles[i].position
                    self.runs[i], genome = ask_member(self, position, self.runs[i], index, self.ga)
                    if genome is not None:
                        asked.append(genome)
                if not self.runs[i].complete:
                    break
                self.advance([i])  # every member was known: the generation is over without an ask
                if i in self.waiting:  # async: it waits for its quorum
                    break
        return asked

    def absorb(self, told: list[tuple[Genome, Score]]) -> None:
        scores = {genome.key: score for genome, score in told}
        if self.costs:
            self.archive = pareto_archive.add(self.archive, [self.point_of(g, s) for g, s in told])
        for i, run in enumerate(self.runs):
            self.runs[i] = score_waiting(self, self.swarm.particles[i].position, run, scores)
        self.advance([i for i, run in enumerate(self.runs) if run.complete and i not in self.waiting])

    def retract(self, withdrawn: list[Genome]) -> None:
        """Withdrawn members go back to their particles' GAs unasked: a later draw hands them out again, and a
        particle moves only on real results."""
        keys = {g.key for g in withdrawn}
        for i, run in enumerate(self.runs):
            self.runs[i] = unask(self, self.swarm.particles[i].position, run, keys)

    def point_of(self, genome: Genome, score: Score) -> pso_math.BestPoint:
        """A told genome as a point of the swarm's space: its cell's position and its bits."""
        position = self.space.encode(genome.architecture_level, genome.learning_rate)
        return pso_math.BestPoint(tuple(position), genome.shortcut_level, score)

    def advance(self, particles: list[int]) -> None:
        """Particles whose generation is scored: breed the next one, or, after the last, settle them together
        (personal and global bests) and let them wait for their move (`release`: at once in sync, after the
        quorum in async)."""
        finished = []
        for i in particles:
            if self.runs[i].generation + 1 < self.ga.generations:
                self.runs[i] = self.runs[i].evolve(self.ga, self.rng)
            else:
                finished.append(i)
        if not finished:
            return
        updates = {i: (self.runs[i].best, self.runs[i].best_blocks() or self.runs[i].blocks(0)) for i in finished}
        before = self.swarm
        settled = pso_math.settle(self.swarm, updates)
        for i in finished:
            improved = settled.particles[i].best != before.particles[i].best
            self.particle_stalls[i] = 0 if improved else self.particle_stalls[i] + 1
        self.stalls = 0 if pso_math.improved(before, settled) else self.stalls + len(finished)
        self.swarm = settled
        self.moves += len(finished)
        for i in finished:
            self.particle_moves[i] += 1
            self.waiting[i] = self.moves
        if not self.asynchronous:
            self.release(everyone=True)

    def state(self) -> dict[str, Any]:
        return (
            {
                "moves": self.moves,
                "stalls": self.stalls,
                "particle_moves": list(self.particle_moves),
                "waiting": {str(i): at for i, at in self.waiting.items()},
                "asynchronous": self.asynchronous,
                "swarm": self.swarm.to_dict(),
                "runs": [r.to_dict() for r in self.runs],
            }
            | ({"particle_stalls": list(self.particle_stalls)} if self.config.restart_after is not None else {})
            | ({"archive": pareto_archive.to_list(self.archive)} if self.costs else {})
        )

    def load_state(self, data: dict[str, Any]) -> None:
        self.moves = data["moves"]
        self.stalls = data["stalls"]
        # a checkpoint from before the quorum or the counts were kept: nobody waiting, every particle as moved
        # as the swarm's mean
        self.waiting = {int(i): at for i, at in data.get("waiting", {}).items()}
        self.asynchronous = data.get("asynchronous", False)
        self.particle_moves = data.get("particle_moves", [self.moves // len(data["runs"])] * len(data["runs"]))
        self.particle_stalls = data.get("particle_stalls", [0] * len(data["runs"]))
        self.swarm = pso_math.Swarm.from_dict(data["swarm"])
        self.runs = [ShortcutGA.from_dict(r) for r in data["runs"]]
        self.archive = pareto_archive.from_list(data.get("archive", []))
