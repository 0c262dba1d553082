"""Particle swarm optimisation over the architecture level: the math only, on plain tuples of floats.

A particle moves over the search space's real-valued dimensions (`SearchSpace.dimensions`), inside each one's
`span` (an integer range [low, high] spans [low - 0.5, high + 0.5], so every value, the ends included, owns a
cell of the same width); the space decodes a position by rounding and clamping. The update is the standard
global-best PSO with Clerc's constriction defaults (DESIGN.md section 3):

    v <- clamp(w v + c1 r1 (personal - x) + c2 r2 (global - x), +-fraction * width)
    x <- x + v, clamped to the span

with r1, r2 uniform per dimension. A coordinate that hits a wall is clamped there and its velocity component
set to zero (an absorbing wall): the particle stops pushing outward instead of sticking to the wall for many
iterations. Personal and global bests remember the position together with the shortcut bitstrings and the score
(fitness, parameters, key: the project's one ranking rule) that scored it, so the GA of the next iteration can
start from them. Particles can be settled and moved one at a time (`settle` and `advance` take the indices), so
an asynchronous search moves a particle as soon as its own evaluations are in, towards the global best known at
that moment; a synchronous one settles and moves the whole swarm at once. A swarm whose global best has not
improved for `search.pso.stall_iterations` iterations has converged (pyswarms' `ftol_iter` rule; off by
default). The parameters are `PSOConfig`, the section `search.pso`, which the `pso` strategy declares (`hgapso`
reads it too).

With several objectives each particle flies towards a leader of its own drawn from an archive of non-dominated
results (`nas.strategies.archive`; `advance`'s `guides`), while personal bests and the global best stay the
fittest points (the ranking rule), which the exploitation phase and `nudge` head for. MOPSO's rule for personal
bests (any visit the incumbent does not dominate replaces it) measured worse in hgapso: with (fitness, params)
on the synthetic landscape the front's mean hypervolume fell from 0.712 to 0.666 at 200 evaluations and from
0.915 to 0.894 at 600 (benchmarks/pareto_quality.py, 5 seeds). Every function returns new values (frozen
dataclasses) and draws only from the `random.Random` it is given.
"""

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from nas.config import bounds
from nas.genome.space import Dimension
from nas.strategies.ranking import Score, is_better


@dataclass
class PSOConfig:
    """`search.pso`: the architecture level. Defaults are Clerc's constriction values (w 0.7298, c 1.49618)."""

    swarm_size: int = bounds(8, 1, 10_000)
    w: float = bounds(0.7298, 0, 2)
    c1: float = bounds(1.49618, 0, 10, open_low=True)
    c2: float = bounds(1.49618, 0, 10, open_low=True)
    velocity_clamp: float = bounds(0.2, 0, 1, open_low=True)
    # A swarm whose global best has not improved for this many iterations (every particle moved once) is done
    # (pyswarms' `ftol_iter`). None: only the budget ends the search. Every ask is new work, so a converged
    # swarm does not loop on repeats; the limit is a choice to stop early, off by default.
    stall_iterations: int | None = bounds(None, 1, 10_000_000)


@dataclass(frozen=True)
class BestPoint:
    """A remembered best: where it was, the shortcut bits it was scored with, and its (real) score."""

    position: tuple[float, ...]
    bits: tuple[str, ...]
    score: Score

    @property
    def fitness(self) -> float:
        assert self.score.fitness is not None  # only real scores are remembered
        return self.score.fitness

    def to_dict(self) -> dict[str, Any]:
        return {"position": list(self.position), "bits": list(self.bits), "score": self.score.to_list()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "BestPoint | None":
        if data is None:
            return None
        score = Score.from_list(data["score"])
        assert score is not None
        return cls(tuple(data["position"]), tuple(data["bits"]), score)


@dataclass(frozen=True)
class Particle:
    position: tuple[float, ...]
    velocity: tuple[float, ...]
    best: BestPoint | None = None

    def to_dict(self) -> dict[str, Any]:
        best = self.best.to_dict() if self.best else None
        return {"position": list(self.position), "velocity": list(self.velocity), "best": best}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Particle":
        return cls(tuple(data["position"]), tuple(data["velocity"]), BestPoint.from_dict(data["best"]))


@dataclass(frozen=True)
class Swarm:
    particles: tuple[Particle, ...]
    best: BestPoint | None = None

    def to_dict(self) -> dict[str, Any]:
        best = self.best.to_dict() if self.best else None
        return {"particles": [p.to_dict() for p in self.particles], "best": best}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Swarm":
        particles = tuple(Particle.from_dict(p) for p in data["particles"])
        return cls(particles, BestPoint.from_dict(data["best"]))


def velocity_limits(dims: Sequence[Dimension], fraction: float) -> tuple[float, ...]:
    """The largest step per dimension: `fraction` of its width, so every range is crossed at the same pace."""
    return tuple(fraction * d.span_width for d in dims)


def spawn(dims: Sequence[Dimension], fraction: float, rng: random.Random) -> Particle:
    """A particle at a uniform random position with a uniform random velocity inside the clamp."""
    position = tuple(rng.uniform(*d.span) for d in dims)
    velocity = tuple(rng.uniform(-vmax, vmax) for vmax in velocity_limits(dims, fraction))
    return Particle(position, velocity)


def new_swarm(dims: Sequence[Dimension], size: int, fraction: float, rng: random.Random) -> Swarm:
    return Swarm(tuple(spawn(dims, fraction, rng) for _ in range(size)))


def remember(particle: Particle, score: Score | None, bits: Sequence[str]) -> Particle:
    """The particle with its personal best updated by one scored visit of its current position."""
    if not is_better(score, particle.best.score if particle.best else None):
        return particle
    assert score is not None  # is_better never lets None win
    return replace(particle, best=BestPoint(particle.position, tuple(bits), score))


def settle(swarm: Swarm, scores: Mapping[int, tuple[Score | None, Sequence[str]]]) -> Swarm:
    """Record the score (and bits) of the particles in `scores` (by index, at their current positions), then
    refresh the global best. The ranking is a total order, so the leader does not depend on the order in which
    particles were settled."""
    particles = tuple(remember(p, *scores[i]) if i in scores else p for i, p in enumerate(swarm.particles))
    best = swarm.best
    for particle in particles:
        if particle.best and is_better(particle.best.score, best.score if best else None):
            best = particle.best
    return Swarm(particles, best)


def fly(particle: Particle, guide: BestPoint | None, dims: Sequence[Dimension], pso: PSOConfig,
        rng: random.Random) -> Particle:  # fmt: skip
    """One velocity and position update. Without a personal (global) best yet, that pull is zero."""
    personal = particle.best.position if particle.best else particle.position
    social = guide.position if guide else particle.position
    limits = velocity_limits(dims, pso.velocity_clamp)
    position, velocity = [], []
    for i, dim in enumerate(dims):
        x, v = particle.position[i], particle.velocity[i]
        r1, r2 = rng.random(), rng.random()
        raw = pso.w * v + pso.c1 * r1 * (personal[i] - x) + pso.c2 * r2 * (social[i] - x)
        v = min(max(raw, -limits[i]), limits[i])
        x_new = x + v
        low, high = dim.span
        if x_new < low or x_new > high:
            x_new, v = float(dim.clamp_span(x_new)), 0.0
        position.append(x_new)
        velocity.append(v)
    return replace(particle, position=tuple(position), velocity=tuple(velocity))


def advance(swarm: Swarm, dims: Sequence[Dimension], pso: PSOConfig, rng: random.Random,
            which: Sequence[int] | None = None,
            guides: Mapping[int, BestPoint | None] | None = None) -> Swarm:  # fmt: skip
    """Move the particles `which` (all by default) once each, in index order, towards their own bests and the
    swarm's best, or each towards its own leader in `guides` (several objectives)."""
    chosen = set(range(len(swarm.particles)) if which is None else which)
    particles = tuple(
        fly(p, swarm.best if guides is None else guides[i], dims, pso, rng) if i in chosen else p
        for i, p in enumerate(swarm.particles)
    )
    return replace(swarm, particles=particles)


def neighbour(swarm: Swarm, i: int, dims: Sequence[Dimension], rng: random.Random, stay: float) -> Swarm:
    """Particle i placed at the global best's position, with probability 1 - `stay` moved one cell along one
    random dimension (a tenth of the span for a real one), at rest: the local search of hgapso's exploitation
    phase, which tries the best architecture's neighbours one step at a time, as a (1+1) climber does."""
    assert swarm.best is not None
    position = list(swarm.best.position)
    if rng.random() >= stay:
        k = rng.randrange(len(dims))
        step = 1.0 if dims[k].integer else 0.1 * dims[k].span_width
        position[k] = float(dims[k].clamp_span(position[k] + rng.choice((-step, step))))
    moved = replace(swarm.particles[i], position=tuple(position), velocity=(0.0,) * len(dims))
    return replace(swarm, particles=swarm.particles[:i] + (moved,) + swarm.particles[i + 1 :])


def nudge(swarm: Swarm, i: int, dims: Sequence[Dimension], rng: random.Random) -> Swarm:
    """Particle i stepped one cell along one integer dimension: towards the global best along a dimension where
    their cells differ (a random one of those), else along a random dimension in a random direction."""
    particle = swarm.particles[i]
    integer = [k for k, d in enumerate(dims) if d.integer]
    if not integer:
        return swarm
    position = list(particle.position)
    target = swarm.best.position if swarm.best else position
    differ = [k for k in integer if round(target[k]) != round(position[k])]
    k = rng.choice(differ or integer)
    step = (1.0 if target[k] > position[k] else -1.0) if differ else rng.choice((-1.0, 1.0))
    position[k] = float(dims[k].clamp(round(position[k]) + step))
    moved = replace(particle, position=tuple(position))
    return replace(swarm, particles=swarm.particles[:i] + (moved,) + swarm.particles[i + 1 :])


def improved(before: Swarm, after: Swarm) -> bool:
    """True when `settle` found a strictly better global best."""
    return after.best != before.best
