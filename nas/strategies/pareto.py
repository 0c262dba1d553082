"""Pareto dominance over objective vectors: non-dominated sorting, crowding distance and hypervolume.

A search with several objectives (`search.objectives`) trades accuracy against cost, so no single result is
"the best": the answer is the front of results that no other result beats in every objective. This module is
the arithmetic of that idea, on plain tuples of floats, after NSGA-II (Deb, Pratap, Agarwal, Meyarivan, IEEE
TEC 6(2), 2002):

- an objective vector is in minimisation form: fitness (maximised) enters negated, costs (params, FLOPs,
  latency) as they are; a failed result, or one without a value for a cost it is judged on, is all +inf, so
  every real result dominates it and failures tie among themselves;
- `non_dominated_sort` splits points into fronts (front 0 is non-dominated, front 1 is non-dominated once
  front 0 is removed, ...), with the fast O(M N^2) bookkeeping of NSGA-II;
- `crowding_distance` measures how isolated a point is on its front (the extremes of each objective are
  infinitely so), and `rank_crowding` pairs rank and crowding into the sort key NSGA-II selects by: lower rank
  first, then the less crowded;
- `hypervolume` is the measure of the region the points dominate up to a reference point (maximisation form):
  exact in two dimensions by a sweep, and in more by slicing along the last one (exact; fine for the few
  hundred points of a front). `normalised` maps results to (fitness, 1 - cost / largest cost), so that with the
  reference point at the origin every front of every run is measured on the same unit box.

Pure functions of their arguments; no numpy, so strategies may use them.
"""

import math
from collections.abc import Sequence

from nas.evaluate.result import Result

Vector = tuple[float, ...]
FITNESS = "fitness"
COSTS = ("params", "flops", "latency_ms")  # minimised; `latency_ms` is measured, read from the result's metrics
OBJECTIVES = (FITNESS, *COSTS)


def cost_of(result: Result, name: str) -> float | None:
    """The value of cost `name` of a result: its parameter or FLOP count, or its measured latency."""
    value = result.metrics.get(name) if name == "latency_ms" else getattr(result, name)
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def objective_vector(result: Result, names: Sequence[str]) -> Vector:
    """The result's objectives in minimisation form (fitness negated); all +inf when it failed or lacks a cost."""
    failed = (math.inf,) * len(names)
    if not result.ok or result.fitness is None or not math.isfinite(float(result.fitness)):
        return failed
    values = [-float(result.fitness) if n == FITNESS else cost_of(result, n) for n in names]
    return failed if any(v is None for v in values) else tuple(float(v) for v in values if v is not None)


def dominates(a: Vector, b: Vector) -> bool:
    """True when `a` is no worse than `b` in every objective and better in one (minimisation)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def non_dominated_sort(points: Sequence[Vector]) -> list[list[int]]:
    """The fronts, best first, as lists of indices into `points` in ascending order; they partition the points."""
    dominated_by: list[list[int]] = [[] for _ in points]  # i -> the points i dominates
    count = [0] * len(points)  # i -> how many points dominate i
    for i, a in enumerate(points):
        for j in range(i + 1, len(points)):
            if dominates(a, points[j]):
                dominated_by[i].append(j)
                count[j] += 1
            elif dominates(points[j], a):
                dominated_by[j].append(i)
                count[i] += 1
    fronts = []
    current = [i for i in range(len(points)) if count[i] == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def pareto_front(points: Sequence[Vector]) -> list[int]:
    """The indices of the non-dominated points, ascending: O(N F), for a whole run's log (F the front's size).

    Points are visited in lexicographic order, so none can be dominated by one visited after it, and each is
    compared with the front found so far only. Of equal points every copy is kept, as `non_dominated_sort` does."""
    front: list[int] = []
    for i in sorted(range(len(points)), key=lambda k: points[k]):
        if not any(dominates(points[k], points[i]) for k in front):
            front.append(i)
    return sorted(front)


def crowding_distance(points: Sequence[Vector], front: Sequence[int]) -> list[float]:
    """NSGA-II's crowding distance of each member of `front` (in its order): the sum over objectives of the gap
    between its two neighbours, over the front's extent; the extremes of every objective get +inf. An objective
    with no finite extent on this front (all equal, or failures) adds nothing."""
    distance = [0.0] * len(front)
    if len(front) <= 2:
        return [math.inf] * len(front)
    for m in range(len(points[front[0]])):
        order = sorted(range(len(front)), key=lambda k: (points[front[k]][m], front[k]))
        low, high = points[front[order[0]]][m], points[front[order[-1]]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        extent = high - low
        if not math.isfinite(extent) or extent == 0:
            continue
        for pos in range(1, len(order) - 1):
            gap = points[front[order[pos + 1]]][m] - points[front[order[pos - 1]]][m]
            distance[order[pos]] += gap / extent
    return distance


def rank_crowding(points: Sequence[Vector]) -> list[tuple[int, float]]:
    """(front rank, crowding distance) of every point, in the order of `points`."""
    out: list[tuple[int, float]] = [(0, 0.0)] * len(points)
    for rank, front in enumerate(non_dominated_sort(points)):
        for i, distance in zip(front, crowding_distance(points, front), strict=True):
            out[i] = (rank, distance)
    return out


def selection_keys(points: Sequence[Vector]) -> list[tuple[int, float]]:
    """Sort keys, best first (ascending): lower front rank, then larger crowding distance."""
    return [(rank, -distance) for rank, distance in rank_crowding(points)]


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The measure of the region dominated by `points` and dominating `reference`, all maximised. Points that
    do not exceed the reference in every coordinate add nothing."""
    inside = [tuple(p) for p in points if all(x > r for x, r in zip(p, reference, strict=True))]
    if not inside:
        return 0.0
    if len(reference) == 1:
        return max(p[0] for p in inside) - reference[0]
    if len(reference) == 2:
        return _sweep(inside, reference)
    return _slices(inside, reference)


def _sweep(points: list[tuple[float, ...]], reference: Sequence[float]) -> float:
    """Two dimensions: points by decreasing x; each adds the strip its y rises above the best y seen."""
    area, top = 0.0, reference[1]
    for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):
        if y > top:
            area += (x - reference[0]) * (y - top)
            top = y
    return area


def _slices(points: list[tuple[float, ...]], reference: Sequence[float]) -> float:
    """More dimensions: slabs between consecutive levels of the last coordinate, each the hypervolume (one
    dimension fewer) of the points at or above the slab's top, times its height."""
    levels = sorted({p[-1] for p in points}, reverse=True)
    volume = 0.0
    for k, level in enumerate(levels):
        below = levels[k + 1] if k + 1 < len(levels) else reference[-1]
        above = [p[:-1] for p in points if p[-1] >= level]
        volume += hypervolume(above, reference[:-1]) * (level - below)
    return volume


def normalised(vectors: Sequence[Vector], largest: Sequence[float]) -> list[tuple[float, ...]]:
    """Minimisation vectors (fitness first) as maximisation points in the unit box: (fitness, 1 - cost /
    largest cost, ...), with `largest` one positive number per cost; failures are left out."""
    out = []
    for v in vectors:
        if all(math.isfinite(x) for x in v):
            out.append((-v[0], *(1.0 - c / big for c, big in zip(v[1:], largest, strict=True))))
    return out


def normalised_hypervolume(vectors: Sequence[Vector], largest: Sequence[float]) -> float:
    """`hypervolume` of `normalised` vectors with the reference point at the origin: the figure's measure."""
    return hypervolume(normalised(vectors, largest), (0.0,) * (1 + len(largest)))
