"""Pareto arithmetic (`nas.strategies.pareto`) by its properties: fronts are non-dominated and partition the
points, crowding puts the extremes at infinity, hypervolume is a box for one point and grows with points, and
nothing depends on the order the points come in."""

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from nas.evaluate.result import Result
from nas.strategies import pareto

coordinate = st.integers(0, 20).map(float)  # a coarse grid: ties and duplicates are common, as in real fronts
points2 = st.lists(st.tuples(coordinate, coordinate), max_size=25)
points3 = st.lists(st.tuples(coordinate, coordinate, coordinate), max_size=15)
unit = st.floats(0, 1, allow_nan=False)
boxes = st.lists(st.tuples(unit, unit), min_size=1, max_size=12)
quick = settings(max_examples=60, deadline=None)  # pure arithmetic; the default 100 cost 4-8 s a test here
distinct2 = st.lists(st.floats(0, 1, allow_nan=False), min_size=0, max_size=20, unique=True).flatmap(
    lambda xs: st.permutations(xs).map(lambda ys: list(zip(xs, ys, strict=True)))
)  # no two points share a coordinate value: crowding has no ties to break


@quick
@given(st.one_of(points2, points3))
def test_fronts_partition_the_points_and_each_member_is_non_dominated_by_its_own_and_later_fronts(points):
    fronts = pareto.non_dominated_sort(points)
    assert sorted(i for f in fronts for i in f) == list(range(len(points)))
    for rank, front in enumerate(fronts):
        later = [j for f in fronts[rank:] for j in f]
        for i in front:
            assert not any(pareto.dominates(points[j], points[i]) for j in later)
            if rank:  # and something of the front before dominates it
                assert any(pareto.dominates(points[j], points[i]) for j in fronts[rank - 1])


@quick
@given(st.one_of(points2, points3))
def test_the_quick_front_is_the_first_front(points):
    fronts = pareto.non_dominated_sort(points)
    assert pareto.pareto_front(points) == (fronts[0] if fronts else [])


@quick
@given(st.one_of(points2, points3, distinct2), st.randoms(use_true_random=False))
def test_ranks_and_crowding_do_not_depend_on_the_order_of_the_points(points, rng):
    """Ranks never do; crowding does not where no two points tie on a coordinate (equal values are ordered by
    index, so which copy counts as the extreme follows the order: a tie-break, not a measure)."""
    order = list(range(len(points)))
    rng.shuffle(order)
    shuffled = [points[i] for i in order]
    before, after = pareto.rank_crowding(points), pareto.rank_crowding(shuffled)
    assert [after[k][0] for k in range(len(order))] == [before[i][0] for i in order]
    if all(len({p[m] for p in points}) == len(points) for m in range(len(points[0]) if points else 0)):
        assert [after[k][1] for k in range(len(order))] == [before[i][1] for i in order]


@quick
@given(points2.filter(lambda p: len(p) >= 1))
def test_crowding_of_each_objectives_extremes_is_infinite_and_of_the_rest_finite(points):
    front = pareto.non_dominated_sort(points)[0]
    distance = pareto.crowding_distance(points, front)
    extremes = set()
    for m in range(2):
        values = [points[i][m] for i in front]
        extremes |= {k for k, i in enumerate(front) if points[i][m] in (min(values), max(values))}
    for k in range(len(front)):
        if len(front) > 2 and k not in extremes:
            assert math.isfinite(distance[k]) and distance[k] >= 0
    assert any(math.isinf(distance[k]) for k in extremes)
    ends = set()
    for m in range(2):
        by_value = sorted(range(len(front)), key=lambda k: (points[front[k]][m], front[k]))
        ends |= {by_value[0], by_value[-1]}
    assert all(math.isinf(distance[k]) for k in ends)


@quick
@given(st.tuples(unit, unit))
def test_hypervolume_of_one_point_is_its_box(point):
    assert math.isclose(pareto.hypervolume([point], (0.0, 0.0)), point[0] * point[1])
    assert math.isclose(pareto.hypervolume([(*point, 0.5)], (0.0, 0.0, 0.0)), point[0] * point[1] * 0.5)


@quick
@given(boxes, st.tuples(unit, unit), st.randoms(use_true_random=False))
def test_hypervolume_grows_with_points_and_ignores_their_order(points, extra, rng):
    base = pareto.hypervolume(points, (0.0, 0.0))
    assert pareto.hypervolume([*points, extra], (0.0, 0.0)) >= base - 1e-12
    shuffled = list(points)
    rng.shuffle(shuffled)
    assert math.isclose(pareto.hypervolume(shuffled, (0.0, 0.0)), base, abs_tol=1e-12)
    assert base <= 1.0 + 1e-12


@quick
@given(st.lists(st.tuples(unit, unit, unit), min_size=1, max_size=8), st.tuples(unit, unit, unit))
def test_three_dimensional_hypervolume_grows_with_points_and_matches_a_grid_count(points, extra):
    volume = pareto.hypervolume(points, (0.0, 0.0, 0.0))
    assert pareto.hypervolume([*points, extra], (0.0, 0.0, 0.0)) >= volume - 1e-12
    grid = [(i + 0.5) / 8 for i in range(8)]  # exact for points on the 1/8 grid, an upper check otherwise
    snapped = [tuple(math.floor(x * 8) / 8 for x in p) for p in points]
    counted = sum(
        any(all(c < s for c, s in zip((x, y, z), p, strict=True)) for p in snapped)
        for x in grid for y in grid for z in grid
    ) / 512  # fmt: skip
    assert math.isclose(pareto.hypervolume(snapped, (0.0, 0.0, 0.0)), counted, abs_tol=1e-12)


def test_hypervolume_of_a_staircase_worked_out_by_hand():
    # (0.9, 0.2), (0.5, 0.6), (0.2, 0.8) above (0, 0): 0.9*0.2 + 0.5*0.4 + 0.2*0.2 = 0.42; a dominated point adds 0.
    stairs = [(0.9, 0.2), (0.5, 0.6), (0.2, 0.8)]
    assert math.isclose(pareto.hypervolume(stairs, (0.0, 0.0)), 0.42)
    assert math.isclose(pareto.hypervolume([*stairs, (0.4, 0.5)], (0.0, 0.0)), 0.42)
    assert pareto.hypervolume([(0.5, -0.1)], (0.0, 0.0)) == 0.0, "a point not above the reference adds nothing"


def result(fitness: float | None, params: int | None, status: str = "ok", **metrics: float) -> Result:
    return Result(f"k{fitness}{params}", {}, status, fitness, params=params, flops=2 * (params or 0), metrics=metrics)


def test_objective_vectors_maximise_fitness_minimise_costs_and_a_failure_is_dominated_by_every_result():
    names = ["fitness", "params", "flops"]
    assert pareto.objective_vector(result(0.8, 100), names) == (-0.8, 100.0, 200.0)
    assert pareto.objective_vector(result(0.8, 100, latency_ms=3.5), ["fitness", "latency_ms"]) == (-0.8, 3.5)
    failed = pareto.objective_vector(result(None, 100, "failed"), names)
    no_latency = pareto.objective_vector(result(0.8, 100), ["fitness", "latency_ms"])
    assert failed == (math.inf,) * 3 and no_latency == (math.inf,) * 2
    worst = pareto.objective_vector(result(0.0, 10**9), names)
    assert pareto.dominates(worst, failed) and not pareto.dominates(failed, failed)
    assert pareto.dominates((-0.8, 100.0), (-0.7, 100.0)) and not pareto.dominates((-0.8, 100.0), (-0.9, 50.0))


def test_normalised_hypervolume_is_the_figures_measure():
    # fitness 0.8 with 250 of a largest 1000 params: the box (0.8, 0.75); a failure adds nothing.
    vectors = [(-0.8, 250.0), (math.inf, math.inf)]
    assert pareto.normalised(vectors, [1000.0]) == [(0.8, 0.75)]
    assert math.isclose(pareto.normalised_hypervolume(vectors, [1000.0]), 0.6)


def test_sorting_is_quadratic_at_most_on_a_population_of_a_few_hundred():
    rng = random.Random(0)
    points = [(rng.random(), rng.random(), rng.random()) for _ in range(300)]
    fronts = pareto.non_dominated_sort(points)
    assert len(fronts) > 1 and sum(map(len, fronts)) == 300
