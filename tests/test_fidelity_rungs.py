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


@given(st.lists(st.one_of(st.none(), st.floats(0, 1, allow_nan=False)), max_size=60), st.integers(2, 4),
       st.integers(2, 4))  # fmt: skip
def test_asha_continues_exactly_the_top_of_what_its_rung_has_seen(arrivals, eta, levels):
    """The stopping rule against a brute-force reading of it: a result continues when fewer than ceil(n / eta)
    of the n results its rung has seen (itself included) are strictly better; failures and the top never do."""
    asha = Asha(levels, eta)
    for i, fitness in enumerate(arrivals):
        level = i % levels
        earlier = [f for j, f in enumerate(arrivals[:i]) if j % levels == level and f is not None]
        goes_on = asha.decide(level, fitness)
        if fitness is None or level == levels - 1:
            assert not goes_on
            continue
        n = len(earlier) + 1
        assert goes_on == (sum(f > fitness for f in earlier) < math.ceil(n / eta)), (level, fitness, earlier)
    assert all(rung == sorted(rung) for rung in asha.seen)


@pytest.mark.parametrize("eta", [2, 3, 4])
@pytest.mark.parametrize("seed", range(5))
def test_asha_continues_one_in_eta_of_a_stream_in_random_order(seed, eta):
    """In a stream in random order the n-th result's rank among the first n is uniform and independent of the
    others, so how many continue is a sum of independent coin flips of p_n = ceil(n / eta) / n: about 1/eta
    of the stream. Checked within 4 standard deviations of that exact mean (fixed seeds)."""
    import random

    n = 600
    arrivals = random.Random(seed).sample(range(10**6), n)
    asha = Asha(2, eta)
    went_on = sum(asha.decide(0, float(f)) for f in arrivals)
    p = [math.ceil(k / eta) / k for k in range(1, n + 1)]
    mean, sd = sum(p), math.sqrt(sum(q * (1 - q) for q in p))
    assert abs(went_on - mean) <= 4 * sd, (went_on, mean, sd)
    assert n / eta <= mean <= n / eta + 2 * math.log(n), "about 1 in eta"


def test_asha_the_first_result_of_a_rung_continues_and_a_worse_second_stops():
    asha = Asha(3, 3)
    assert asha.decide(0, 0.5), "nothing better seen: the rule cannot know better"
    assert not asha.decide(0, 0.4), "second of 2: not in the top ceil(2 / 3) = 1"
    assert asha.decide(0, 0.5), "a tie with the best is not strictly worse"
    assert not asha.decide(0, 0.45), "third of 4: outside the top ceil(4 / 3) = 2"
    assert not asha.decide(0, 0.42), "fourth of 5: outside the top ceil(5 / 3) = 2"
    assert asha.decide(0, 0.6) and not asha.decide(0, 0.47), "first of 6 goes on, fourth of 7 stops (top 3)"
    assert not asha.decide(0, None) and asha.seen[0] == [0.4, 0.42, 0.45, 0.47, 0.5, 0.5, 0.6], "a failure ranks no one"
    assert asha.decide(1, 0.1) and not asha.decide(2, 0.99), "the top rung never continues"
