"""PSO math: clamps always hold, bests keep position and bits together, and the swarm converges."""

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from nas.genome.space import Dimension
from nas.strategies import swarm as pso
from nas.strategies.ranking import Score
from nas.strategies.swarm import PSOConfig


def sc(fitness, params=None, key=""):
    return None if fitness is None else Score(fitness, params, key)


def settle_all(swarm, fitness, bits):
    """Settle every particle at once, as a synchronous step does."""
    return pso.settle(swarm, {i: (sc(f), b) for i, (f, b) in enumerate(zip(fitness, bits, strict=True))})


@st.composite
def flight(draw):
    """Dimensions, a particle inside them (velocity inside the clamp), a guide, PSO parameters, a seed."""
    n = draw(st.integers(1, 6))
    dims = []
    for i in range(n):
        low = draw(st.floats(-100, 100))
        width = draw(st.floats(0, 50))
        dims.append(Dimension(f"d{i}", low, low + width, integer=draw(st.booleans())))
    fraction = draw(st.floats(0.01, 1.0))
    limits = pso.velocity_limits(dims, fraction)

    def point():
        return tuple(draw(st.floats(d.low, d.high)) for d in dims)

    velocity = tuple(draw(st.floats(-v, v)) for v in limits)
    best = pso.BestPoint(point(), ("1",), sc(0.5)) if draw(st.booleans()) else None
    guide = pso.BestPoint(point(), ("0",), sc(0.9)) if draw(st.booleans()) else None
    params = PSOConfig(
        w=draw(st.floats(0, 2)), c1=draw(st.floats(0.01, 10)), c2=draw(st.floats(0.01, 10)), velocity_clamp=fraction
    )
    return dims, pso.Particle(point(), velocity, best), guide, params, draw(st.integers(0, 2**32))


@given(flight(), st.integers(1, 5))
def test_velocity_and_position_stay_within_their_clamps(case, steps):
    dims, particle, guide, params, seed = case
    rng = random.Random(seed)
    limits = pso.velocity_limits(dims, params.velocity_clamp)
    for _ in range(steps):
        particle = pso.fly(particle, guide, dims, params, rng)
        for d, x, v, vmax in zip(dims, particle.position, particle.velocity, limits, strict=True):
            assert d.span[0] <= x <= d.span[1]
            assert -vmax <= v <= vmax


@given(flight())
def test_fly_is_deterministic_for_a_seed(case):
    dims, particle, guide, params, seed = case
    assert pso.fly(particle, guide, dims, params, random.Random(seed)) == pso.fly(
        particle, guide, dims, params, random.Random(seed)
    )


def test_a_particle_alone_at_its_own_best_with_no_velocity_stays_put():
    dims = [Dimension("a", 0, 10), Dimension("b", -1, 1, integer=False)]
    still = pso.Particle((3.0, 0.5), (0.0, 0.0), pso.BestPoint((3.0, 0.5), (), sc(1.0)))
    assert pso.fly(still, still.best, dims, PSOConfig(), random.Random(0)).position == (3.0, 0.5)


def test_bests_keep_position_and_bits_together_and_ties_follow_the_ranking_rule():
    swarm = pso.Swarm((pso.Particle((1.0,), (0.0,)), pso.Particle((2.0,), (0.0,))))
    swarm = pso.settle(swarm, {0: (sc(0.5, 10, "a"), ("10",)), 1: (sc(0.7, 10, "b"), ("11",))})
    assert swarm.best == pso.BestPoint((2.0,), ("11",), sc(0.7, 10, "b"))
    assert swarm.particles[0].best == pso.BestPoint((1.0,), ("10",), sc(0.5, 10, "a"))
    moved = pso.Swarm((pso.Particle((4.0,), (0.0,), swarm.particles[0].best), swarm.particles[1]), swarm.best)
    after = pso.settle(moved, {0: (sc(0.7, 10, "c"), ("00",)), 1: (None, ("01",))})
    assert after.particles[0].best == pso.BestPoint((4.0,), ("00",), sc(0.7, 10, "c"))  # better than its 0.5
    assert after.particles[1].best == swarm.particles[1].best  # a failure never replaces a best
    assert after.best == swarm.best  # a tie with a larger key does not move the leader
    fewer = pso.settle(moved, {0: (sc(0.7, 9, "z"), ("00",))})
    assert fewer.best.score == sc(0.7, 9, "z")  # equal fitness, fewer parameters: the new leader
    only_one = pso.settle(swarm, {1: (sc(0.9, 1, "d"), ("01",))})
    assert only_one.particles[0] == swarm.particles[0] and only_one.best.fitness == 0.9  # one particle alone


def test_failures_alone_leave_no_best():
    swarm = pso.Swarm((pso.Particle((1.0,), (0.0,)),))
    assert settle_all(swarm, [None], [("1",)]).best is None


def test_swarm_state_round_trips_through_json():
    dims = [Dimension("a", 1, 6), Dimension("lr", -3, -1, integer=False)]
    rng = random.Random(3)
    swarm = pso.new_swarm(dims, 4, 0.2, rng)
    swarm = settle_all(swarm, [0.1, None, 0.3, 0.2], [("1",), ("0",), ("11",), ("01",)])
    data = swarm.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert pso.Swarm.from_dict(json.loads(json.dumps(data))) == swarm


def test_the_swarm_converges_on_a_smooth_function():
    dims = [Dimension(f"x{i}", -5.0, 5.0, integer=False) for i in range(3)]
    optimum = (1.5, -2.0, 0.25)

    def fitness(position):
        return -sum((x - o) ** 2 for x, o in zip(position, optimum, strict=True))

    rng = random.Random(11)
    params = PSOConfig(swarm_size=12, velocity_clamp=0.5)
    swarm = pso.new_swarm(dims, params.swarm_size, params.velocity_clamp, rng)
    start = max(fitness(p.position) for p in swarm.particles)
    for _ in range(80):
        swarm = settle_all(swarm, [fitness(p.position) for p in swarm.particles], [()] * len(swarm.particles))
        swarm = pso.advance(swarm, dims, params, rng)
    assert start < -0.01
    assert swarm.best.fitness > -1e-4
    assert all(abs(x - o) < 0.02 for x, o in zip(swarm.best.position, optimum, strict=True))


@given(flight(), st.integers(2, 5), st.floats(0, 1))
def test_neighbour_places_a_particle_at_the_global_best_or_one_cell_from_it_at_rest(case, size, stay):
    """The exploitation phase's step: the global best's position, or that position moved one cell (a tenth of
    a real span) along exactly one dimension, velocity zero, and no other particle touched."""
    dims, particle, guide, params, seed = case
    rng = random.Random(seed)
    swarm = pso.Swarm(tuple(pso.fly(particle, guide, dims, params, rng) for _ in range(size)))
    best = pso.BestPoint(tuple(d.clamp(x + 1) for d, x in zip(dims, particle.position, strict=True)), ("1",), sc(1.0))
    swarm = pso.Swarm(swarm.particles, best)
    i = seed % size
    placed = pso.neighbour(swarm, i, dims, random.Random(seed), stay)
    assert placed.best == best and [p for j, p in enumerate(placed.particles) if j != i] == [
        p for j, p in enumerate(swarm.particles) if j != i
    ]
    moved = placed.particles[i]
    assert moved.velocity == (0.0,) * len(dims) and moved.best == swarm.particles[i].best
    changed = [k for k, (a, b) in enumerate(zip(moved.position, best.position, strict=True)) if a != b]
    assert len(changed) <= 1
    for k in changed:
        d = dims[k]
        step = 1.0 if d.integer else 0.1 * d.span_width
        assert d.span[0] <= moved.position[k] <= d.span[1]
        assert abs(moved.position[k] - best.position[k]) <= step + 1e-9
        assert moved.position[k] in (d.clamp_span(best.position[k] + step), d.clamp_span(best.position[k] - step))
    if stay == 1.0:
        assert moved.position == best.position


def test_neighbour_steps_both_ways_about_equally_and_stays_as_often_as_asked():
    dims = [Dimension("a", 0, 10), Dimension("b", 0, 10)]
    best = pso.BestPoint((5.0, 5.0), ("1",), sc(1.0))
    swarm = pso.Swarm((pso.Particle((1.0, 1.0), (0.5, 0.5)),), best)
    rng = random.Random(3)
    moves = [pso.neighbour(swarm, 0, dims, rng, 0.25).particles[0].position for _ in range(2000)]
    up = sum(max(p) == 6.0 for p in moves)
    down = sum(min(p) == 4.0 for p in moves)
    stayed = sum(p == (5.0, 5.0) for p in moves)
    assert 650 <= up <= 850 and 650 <= down <= 850 and 400 <= stayed <= 600, (up, down, stayed)


@st.composite
def integer_swarm(draw):
    """Integer dimensions, a swarm of 1-4 particles at whole-cell positions, a global best, a seed."""
    lows = [draw(st.integers(-5, 5)) for _ in range(draw(st.integers(1, 5)))]
    dims = [Dimension(f"d{i}", low, low + draw(st.integers(1, 8))) for i, low in enumerate(lows)]

    def cell():
        return tuple(float(draw(st.integers(int(d.low), int(d.high)))) for d in dims)

    particles = tuple(pso.Particle(cell(), (0.0,) * len(dims)) for _ in range(draw(st.integers(1, 4))))
    return dims, pso.Swarm(particles, pso.BestPoint(cell(), ("1",), sc(0.9))), draw(st.integers(0, 2**32))


@given(integer_swarm(), st.data())
def test_nudge_moves_one_dimension_one_cell_towards_the_best_where_they_differ(case, data):
    dims, swarm, seed = case
    i = data.draw(st.integers(0, len(swarm.particles) - 1))
    moved = pso.nudge(swarm, i, dims, random.Random(seed))
    before, after = swarm.particles[i].position, moved.particles[i].position
    assert moved.particles[:i] + moved.particles[i + 1 :] == swarm.particles[:i] + swarm.particles[i + 1 :]
    changed = [k for k in range(len(dims)) if round(after[k]) != round(before[k])]
    target = swarm.best.position
    if any(round(t) != round(b) for t, b in zip(target, before, strict=True)):
        (k,) = changed  # exactly one dimension, towards the best
        assert abs(after[k] - target[k]) == abs(before[k] - target[k]) - 1
    else:  # at the best's cell: one step along one dimension, unless a wall stops it
        assert len(changed) <= 1 and all(abs(after[k] - before[k]) == 1 for k in changed)
    assert all(d.low <= round(x) <= d.high for d, x in zip(dims, after, strict=True))
