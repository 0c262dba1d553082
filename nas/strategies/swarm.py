"""Particle swarm optimisation over the architecture level: the math only, on plain tuples of floats.

A particle moves over the search space's real-valued dimensions (`SearchSpace.dimensions`; the space decodes a
position by rounding and clamping). The update is the standard global-best PSO with Clerc's constriction
defaults (DESIGN.md section 3):

    v <- clamp(w v + c1 r1 (personal - x) + c2 r2 (global - x), +-fraction * width)
    x <- x + v, clamped to [low, high]

with r1, r2 uniform per dimension. A coordinate that hits a wall is clamped there and its velocity component
set to zero (an absorbing wall): the particle stops pushing outward instead of sticking to the wall for many
iterations. Personal and global bests remember the position together with the shortcut bitstrings that scored
it, so the GA of the next iteration can start from them. A swarm whose global best has not improved for
`STALL_PATIENCE` iterations has converged (pyswarms' `ftol_iter` rule): strategies then say they are done rather
than keep asking genomes the log has already answered (a converged swarm over integer cells repeats itself).
Every function returns new values (frozen dataclasses) and draws only from the `random.Random` it is given.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from nas.config import PSOConfig
from nas.genome.space import Dimension
from nas.strategies.ranking import is_better

STALL_PATIENCE = 20  # iterations in a row without a better global best before a swarm is done


@dataclass(frozen=True)
class BestPoint:
    """A remembered best: where it was, the shortcut bits it was scored with, and its (real) fitness."""

    position: tuple[float, ...]
    bits: tuple[str, ...]
    fitness: float

    def to_dict(self) -> dict[str, Any]:
        return {"position": list(self.position), "bits": list(self.bits), "fitness": self.fitness}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "BestPoint | None":
        if data is None:
            return None
        return cls(tuple(data["position"]), tuple(data["bits"]), data["fitness"])


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
    return tuple(fraction * d.width for d in dims)


def spawn(dims: Sequence[Dimension], fraction: float, rng: random.Random) -> Particle:
    """A particle at a uniform random position with a uniform random velocity inside the clamp."""
    position = tuple(rng.uniform(d.low, d.high) for d in dims)
    velocity = tuple(rng.uniform(-vmax, vmax) for vmax in velocity_limits(dims, fraction))
    return Particle(position, velocity)


def new_swarm(dims: Sequence[Dimension], size: int, fraction: float, rng: random.Random) -> Swarm:
    return Swarm(tuple(spawn(dims, fraction, rng) for _ in range(size)))


def remember(particle: Particle, fitness: float | None, bits: Sequence[str]) -> Particle:
    """The particle with its personal best updated by one scored visit of its current position."""
    incumbent = particle.best.fitness if particle.best else None
    if not is_better(fitness, incumbent):
        return particle
    assert fitness is not None  # is_better never lets None win
    return replace(particle, best=BestPoint(particle.position, tuple(bits), fitness))


def settle(swarm: Swarm, fitness: Sequence[float | None], bits: Sequence[Sequence[str]]) -> Swarm:
    """Record one score per particle (at its current position), then refresh the global best.

    Ties keep the older global best, then the lower particle index, so the leader never flickers.
    """
    particles = tuple(remember(p, f, b) for p, f, b in zip(swarm.particles, fitness, bits, strict=True))
    best = swarm.best
    for particle in particles:
        if particle.best and is_better(particle.best.fitness, best.fitness if best else None):
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
        if x_new < dim.low or x_new > dim.high:
            x_new, v = float(dim.clamp(x_new)), 0.0
        position.append(x_new)
        velocity.append(v)
    return replace(particle, position=tuple(position), velocity=tuple(velocity))


def advance(swarm: Swarm, dims: Sequence[Dimension], pso: PSOConfig, rng: random.Random) -> Swarm:
    """Move every particle once, towards its own best and the swarm's best."""
    return replace(swarm, particles=tuple(fly(p, swarm.best, dims, pso, rng) for p in swarm.particles))


def improved(before: Swarm, after: Swarm) -> bool:
    """True when `settle` found a strictly better global best."""
    return after.best != before.best
