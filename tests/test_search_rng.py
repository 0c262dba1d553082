"""The strategy RNG: lending it to DEAP leaves the caller's global `random` alone and is reproducible."""

import json
import random

from deap import tools
from hypothesis import given
from hypothesis import strategies as st

from nas.strategies.rng import lend_to_global, rng_from_state, rng_state


def test_global_state_is_unchanged_by_a_deap_operator_call():
    random.seed(1234)
    before = random.getstate()
    rng = random.Random(7)
    with lend_to_global(rng):
        tools.mutFlipBit([0] * 50, 0.5)
    assert random.getstate() == before


def test_lent_draws_continue_the_strategy_stream_exactly():
    rng, reference = random.Random(7), random.Random(7)
    with lend_to_global(rng):
        lent = [random.random() for _ in range(5)]
    assert lent == [reference.random() for _ in range(5)]
    assert rng.random() == reference.random()  # the strategy's generator advanced by exactly what was drawn


def test_operator_results_are_identical_across_runs_whatever_the_global_state():
    def mutate_once(global_seed: int) -> list[int]:
        random.seed(global_seed)
        individual = [0] * 64
        with lend_to_global(random.Random(3)):
            tools.mutFlipBit(individual, 0.3)
        return individual

    assert mutate_once(1) == mutate_once(99)


def test_global_state_is_restored_when_the_block_raises():
    random.seed(5)
    before = random.getstate()
    try:
        with lend_to_global(random.Random(1)):
            random.random()
            raise RuntimeError("inside")
    except RuntimeError:
        pass
    assert random.getstate() == before


@given(st.integers(0, 2**64), st.integers(0, 50))
def test_rng_state_round_trips_through_json(seed, draws):
    rng = random.Random(seed)
    for _ in range(draws):
        rng.random()
    rng.gauss(0, 1)  # gauss_next is part of the state
    state = rng_state(rng)
    loaded = json.loads(json.dumps(state))
    assert loaded == state
    copy = rng_from_state(loaded)
    assert [copy.random() for _ in range(3)] + [copy.gauss(0, 1)] == [rng.random() for _ in range(3)] + [
        rng.gauss(0, 1)
    ]
