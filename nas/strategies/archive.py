"""The archive of a multi-objective swarm: the non-dominated points found so far, and leaders drawn from it.

With several objectives (`search.objectives`) no single global best exists, so a particle is pulled towards a
leader drawn from the archive of non-dominated results (MOPSO: Coello Coello, Pulido, Lechuga, IEEE TEC 8(3),
2004). The draw is a binary tournament on crowding distance: two members drawn uniformly, the less crowded one
leads (the archive's extremes count as least crowded), which spreads the swarm along the front instead of
collapsing it onto one end. The archive is capped at `LIMIT` members; past that the most crowded member leaves
first (NSGA-II's truncation), so the archive keeps the front's extent. Functions return new tuples and draw only
from the `random.Random` they are given.
"""

import random
from collections.abc import Iterable, Mapping, Sequence

from nas.strategies import pareto
from nas.strategies.swarm import BestPoint

LIMIT = 100  # archive members kept: a leader draw and an update cost O(LIMIT^2) at most


def crowding(archive: Sequence[BestPoint]) -> list[float]:
    """The crowding distance of every member (they are mutually non-dominated: one front)."""
    return pareto.crowding_distance([p.score.vector for p in archive], range(len(archive)))


def add(archive: Sequence[BestPoint], points: Iterable[BestPoint], limit: int = LIMIT) -> tuple[BestPoint, ...]:
    """The archive with `points` offered: a failure, or a point dominated by a member or equal to one in every
    objective, stays out; members a newcomer dominates leave; past `limit` the most crowded leave."""
    members = list(archive)
    for point in points:
        vector = point.score.vector
        if point.score.fitness is None or any(
            pareto.dominates(m.score.vector, vector) or m.score.vector == vector for m in members
        ):
            continue
        members = [m for m in members if not pareto.dominates(vector, m.score.vector)] + [point]
    while len(members) > limit:
        distance = crowding(members)
        members.pop(min(range(len(members)), key=lambda i: (distance[i], members[i].score.key)))
    return tuple(members)


def leader(archive: Sequence[BestPoint], rng: random.Random) -> BestPoint | None:
    """A leader by binary tournament on crowding distance (the less crowded wins; None for an empty archive)."""
    if not archive:
        return None
    distance = crowding(archive)
    a, b = rng.randrange(len(archive)), rng.randrange(len(archive))
    return archive[a] if (distance[a], -a) >= (distance[b], -b) else archive[b]


def leaders(archive: Sequence[BestPoint], which: Iterable[int], rng: random.Random) -> Mapping[int, BestPoint | None]:
    """One leader per particle of `which`, drawn in that order."""
    return {i: leader(archive, rng) for i in which}


def to_list(archive: Sequence[BestPoint]) -> list[dict]:
    return [p.to_dict() for p in archive]


def from_list(data: list[dict]) -> tuple[BestPoint, ...]:
    points = [BestPoint.from_dict(p) for p in data]
    return tuple(p for p in points if p is not None)
