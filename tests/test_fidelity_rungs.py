"""Successive halving's bookkeeping (nas.run.fidelity): rungs, sync promotion, ASHA, the fitness strategies see.
Property tests: these are pure functions."""

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from nas.run.fidelity import Asha, promote, promotion_count, rung_epochs, told_fitness

accuracies = st.one_of(st.none(), st.floats(0, 1, allow_nan=False))


def test_rungs_of_the_usual_settings():
    assert rung_epochs(1, 3, 9) == [1, 3, 9]
    assert rung_epochs(1, 3, 10) == [1, 3, 9, 10]
    assert rung_epochs(2, 2, 6) == [2, 4, 6]
    assert rung_epochs(1, 3, 2) == [1, 2]
    with pytest.raises(ValueError):
        rung_epochs(3, 3, 3)


@given(st.integers(1, 50), st.integers(2, 6), st.integers(2, 400))
def test_rungs_grow_by_eta_and_end_at_the_budget(min_epochs, eta, epochs):
    if min_epochs >= epochs:
        return
    rungs = rung_epochs(min_epochs, eta, epochs)
    assert rungs[0] == min_epochs and rungs[-1] == epochs
    assert all(b == a * eta for a, b in zip(rungs[:-2], rungs[1:-1], strict=True))
    assert all(a < b for a, b in zip(rungs, rungs[1:], strict=False))
    assert len(rungs) == 1 + math.ceil(math.log(epochs / min_epochs, eta) - 1e-9)


@given(st.lists(accuracies, max_size=40), st.integers(2, 5))
def test_promotion_takes_the_best_of_a_rung(fitness, eta):
    chosen = promote(fitness, eta)
    ok = [i for i, f in enumerate(fitness) if f is not None]
    assert chosen == sorted(set(chosen)) and set(chosen) <= set(ok)
    assert len(chosen) == min(len(ok), promotion_count(len(fitness), eta))
    if fitness:
        assert promotion_count(len(fitness), eta) == max(1, len(fitness) // eta)
    worst_chosen = min((fitness[i] for i in chosen), default=math.inf)
    assert all(fitness[i] <= worst_chosen for i in ok if i not in chosen)


@given(st.lists(st.floats(0, 1, allow_nan=False), unique=True, max_size=30), st.integers(2, 5), st.randoms())
def test_promotion_does_not_depend_on_order_given_distinct_fitness(fitness, eta, rnd):
    order = list(range(len(fitness)))
    rnd.shuffle(order)
    shuffled = [fitness[i] for i in order]
    assert {shuffled[i] for i in promote(shuffled, eta)} == {fitness[i] for i in promote(fitness, eta)}


def test_nine_candidates_eta_three():
    fitness = [0.1, 0.9, 0.5, None, 0.7, 0.2, 0.8, 0.3, 0.4]
    assert promote(fitness, 3) == [1, 4, 6]
    assert promote([0.5, 0.5, 0.5], 3) == [0]  # ties: ask order
    assert promote([None, None], 3) == []


@given(st.lists(st.tuples(st.integers(0, 2), st.floats(0, 1, allow_nan=False)), max_size=25))
@example(pairs=[(0, 0.9999999999999999), (1, 0.0)])  # a rung's best ties the next rung's worst in floating point
def test_told_fitness_ranks_by_rung_then_accuracy(pairs):
    levels = 3
    told = [(told_fitness(a, lv, levels), lv, a) for lv, a in pairs]
    for t1, l1, a1 in told:
        assert 0 <= t1 <= 1
        for t2, l2, a2 in told:
            if (l1, a1) >= (l2, a2):
                assert t1 >= t2, "never out of (rung, accuracy) order"
            if l1 > l2 and a2 < 1 or l1 == l2 and a1 > a2 + 1e-9:
                assert t1 > t2


def fitness_at(key: str, level: int, fitness: dict[str, float]) -> float:
    return fitness[key] + level


def asha_run(arrivals: list[float], eta: int, levels: int) -> Asha:
    """Feed ASHA a stream: each freed slot takes a promotion if there is one, else a new candidate."""
    asha = Asha(levels, eta)
    fitness = {f"c{i}": a for i, a in enumerate(arrivals)}
    new = iter(fitness)
    for _ in range(len(arrivals) * levels):
        job = asha.next_promotion()
        if job is None:
            key = next(new, None)
            if key is None:
                break
            asha.record(key, 0, fitness[key])
        else:
            key, level = job
            rung = sorted(asha.members[level - 1], key=lambda m: -m[1])
            top = rung[: len(rung) // eta]
            assert fitness_at(key, level - 1, fitness) >= top[-1][1], "promoted from the top floor(n / eta)"
            asha.mark_promoted(key, level)
            asha.record(key, level, fitness_at(key, level, fitness))  # a higher rung scores higher
    return asha


@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=60), st.integers(2, 4), st.integers(2, 4))
def test_asha_promotes_only_from_the_top_of_a_rung_and_never_twice(arrivals, eta, levels):
    asha = asha_run(arrivals, eta, levels)
    for level in range(levels - 1):
        members = asha.members[level]
        keys = [k for k, _ in members]
        assert len(keys) == len(set(keys)), "a candidate finishes each rung once"
        promoted = asha.promoted[level]
        assert promoted <= set(keys)
        assert {k for k, _ in asha.members[level + 1]} == promoted
        assert not promoted or len(members) >= eta
    top = len(arrivals) // eta ** (levels - 1)
    assert len(asha.members[levels - 1]) >= min(1, top)


@given(st.lists(st.floats(0, 1, allow_nan=False), max_size=30), st.integers(2, 4))
def test_asha_state_round_trips_and_decides_the_same(arrivals, eta):
    asha = asha_run(arrivals, eta, 3)
    copy = Asha(3, eta)
    copy.load_state_dict(asha.state_dict())
    assert copy.members == asha.members and copy.promoted == asha.promoted
    assert copy.next_promotion() == asha.next_promotion()


def test_asha_prefers_the_highest_rung_and_skips_busy_keys():
    asha = Asha(3, 2)
    for key, f in [("a", 0.9), ("b", 0.1), ("c", 0.8), ("d", 0.2)]:
        asha.record(key, 0, f)
    assert asha.next_promotion() == ("a", 1)
    assert asha.next_promotion(busy=frozenset({"a"})) == ("c", 1)
    asha.mark_promoted("a", 1)
    asha.record("a", 1, 0.95)
    asha.mark_promoted("c", 1)
    asha.record("c", 1, 0.85)
    assert asha.next_promotion() == ("a", 2)
    assert not asha.promotable("a", 0) and asha.promotable("b", 0) and not asha.promotable("a", 2)
    asha.record("e", 0, None)
    assert all(k != "e" for k, _ in asha.members[0])
