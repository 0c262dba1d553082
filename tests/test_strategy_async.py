"""The asynchronous side of the strategy contract, for every strategy: `ask(n)` hands out only new genomes,
`tell` takes any subset of what is in flight in any order, `in_flight()` survives a checkpoint, and the same
state with the same completion order gives the same search. Plus the repeat bookkeeping and `known`."""

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_strategies import NAMES, SMALL, WITH_LR, results, search_config, target_fitness

from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.strategies.strategy import Strategy, build_strategy


def result_of(genome: Genome) -> Result:
    return results([genome], fitness=target_fitness)[0]


def drive_async(strategy: Strategy, slots: int, evaluations: int, order: random.Random,
                asked: list[str] | None = None) -> list[str]:  # fmt: skip
    """Keep `slots` evaluations running; finish a random one of them each turn (the completion order is
    `order`'s). Returns the keys in completion order."""
    finished: list[str] = []
    running = strategy.in_flight()
    asked = [] if asked is None else asked
    while len(finished) < evaluations and not strategy.done():
        new = strategy.ask(slots - len(running))
        assert len(new) <= slots - len(running)
        asked.extend(g.key for g in new)
        running.extend(new)
        assert [g.key for g in strategy.in_flight()] == [g.key for g in running]
        if not running:
            break
        genome = running.pop(order.randrange(len(running)))
        strategy.tell([result_of(genome)])
        finished.append(genome.key)
    return finished


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("slots", [1, 4, 16])
def test_async_asks_are_always_new_and_every_result_is_absorbed(name, slots):
    strategy = build_strategy(search_config(name), SMALL, 1)
    asked: list[str] = []
    finished = drive_async(strategy, slots, 150, random.Random(2), asked)
    assert len(asked) == len(set(asked))  # never a genome twice, in flight or evaluated
    assert len(finished) >= 100 or strategy.done()
    assert strategy.told == len(finished)


@pytest.mark.parametrize("name", NAMES)
def test_async_is_deterministic_for_a_seed_and_a_completion_order(name):
    first = drive_async(build_strategy(search_config(name), SMALL, 3), 5, 60, random.Random(7))
    again = drive_async(build_strategy(search_config(name), SMALL, 3), 5, 60, random.Random(7))
    other = drive_async(build_strategy(search_config(name), SMALL, 3), 5, 60, random.Random(8))
    assert first == again and first != other


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("space", [SMALL, WITH_LR], ids=["small", "with_lr"])
def test_an_async_state_restored_from_json_continues_the_same_search(name, space):
    uninterrupted = build_strategy(search_config(name), space, 5)
    drive_async(uninterrupted, 6, 40, random.Random(1))
    state = uninterrupted.state_dict()
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    restored = build_strategy(search_config(name), space, 123)
    restored.load_state_dict(json.loads(json.dumps(state)))
    assert [g.key for g in restored.in_flight()] == [g.key for g in uninterrupted.in_flight()]
    assert drive_async(restored, 6, 40, random.Random(9)) == drive_async(uninterrupted, 6, 40, random.Random(9))
    assert restored.state_dict() == uninterrupted.state_dict()


@pytest.mark.parametrize("name", NAMES)
def test_tell_refuses_a_result_for_a_genome_not_in_flight(name):
    strategy = build_strategy(search_config(name), SMALL, 0)
    genomes = strategy.ask(3)
    assert genomes
    strategy.tell([result_of(genomes[-1])])  # any of them, in any order
    with pytest.raises(ValueError, match="not in flight"):
        strategy.tell([result_of(genomes[-1])])  # told already
    stranger = build_strategy(search_config("random"), SMALL, 99).ask()[0]
    with pytest.raises(ValueError, match="not in flight"):
        strategy.tell([result_of(stranger)])
    assert [g.key for g in strategy.in_flight()] == [g.key for g in genomes[:-1]]


def test_one_mode_at_a_time():
    strategy = build_strategy(search_config("random"), SMALL, 0)
    strategy.ask(2)
    with pytest.raises(ValueError, match="use ask\\(n\\)"):
        strategy.ask()
    strategy.tell([result_of(g) for g in strategy.in_flight()])
    batch = strategy.ask()
    assert strategy.ask() == batch and strategy.in_flight() == batch
    with pytest.raises(ValueError, match="tell it first"):
        strategy.ask(1)


def test_async_asks_of_zero_return_nothing_and_change_nothing():
    strategy = build_strategy(search_config("hgapso"), SMALL, 0)
    before = strategy.state_dict()
    assert strategy.ask(0) == [] and strategy.state_dict() == before


def test_hgapso_async_advances_each_particle_on_its_own():
    """Per-particle pipelines: once particle 0's generation is told, its next generation is asked while the
    other particles' first generations are still in flight; once its GA run is over it settles alone, and it
    moves once a quorum of the swarm (half: 2 of 3 particles) has settled after it."""
    strategy = build_strategy(search_config("hgapso"), SMALL, 0)  # 3 particles x 4 strings, 2 generations
    first = strategy.ask(100)
    assert len(first) == 12 and strategy.ask(5) == []  # every member asked: it waits for results
    strategy.tell([result_of(g) for g in first[:4]])  # particle 0's generation, in any order
    second = strategy.ask(100)
    assert len(second) == 3 and strategy.runs[0].generation == 1  # its elite is not asked again
    assert {g.architecture_level for g in second} == {first[0].architecture_level}
    strategy.tell([result_of(g) for g in reversed(second)])
    assert strategy.moves == 1 and strategy.runs[1].generation == 0  # particle 0 settled alone
    settled_at = strategy.swarm.particles[0].position
    assert strategy.ask(100) == [] and strategy.waiting == {0: 1}  # it waits for its quorum
    for members in (first[4:8], first[8:12]):  # particles 1 and 2, each through both generations
        strategy.tell([result_of(g) for g in members])
        strategy.tell([result_of(g) for g in strategy.ask(100)])
        if strategy.moves == 2:
            assert strategy.waiting == {0: 1, 1: 2} and strategy.ask(100) == []  # 1 settled after it: not yet
    assert strategy.moves == 3
    moved = strategy.ask(100)  # 2 settled after particle 0: it moves (the others wait for theirs)
    assert moved and strategy.swarm.particles[0].position != settled_at
    assert set(strategy.waiting) == {1, 2} and all(g.key not in {x.key for x in first + second} for g in moved)


def test_hgapso_async_serves_the_particle_that_has_moved_least_first():
    """A particle that has just moved waits behind the ones that have not: a few fast particles must not take
    every slot while the rest of the swarm stands still."""
    at_once = search_config("hgapso", hgapso={"quorum": 0})  # a particle moves as soon as its GA run is over
    strategy = build_strategy(at_once, SMALL, 0)  # 3 particles x 4 strings, 2 generations
    while strategy.particle_moves == [0, 0, 0]:  # particle 0 alone, through both its generations
        assert strategy.ask(4 - len(strategy.in_flight()))
        strategy.tell([result_of(g) for g in strategy.in_flight()])
    assert strategy.particle_moves == [1, 0, 0] and strategy.moves == 1
    served = strategy.ask(4)  # particles 1 and 2 have not moved yet: particle 1, not particle 0 again
    assert len(served) == 4 and strategy.runs[1].todo() == []
    assert len(strategy.runs[0].todo()) == 4, "particle 0 was served again before the particles behind it"
    assert strategy.state_dict()["state"]["particle_moves"] == [1, 0, 0]
    assert strategy.parallelism() == 3 * 4  # one generation a particle in flight, at most


def test_regularized_evolution_async_is_steady_state():
    strategy = build_strategy(search_config("regularized-evolution"), SMALL, 0)  # population 7
    initial = strategy.ask(10)
    assert len(initial) == 7 and strategy.ask(3) == []  # all initial members asked, none told: wait
    strategy.tell([result_of(initial[4])])
    children = strategy.ask(3)
    assert len(children) == 3  # bred from the one member told so far
    strategy.tell([result_of(g) for g in initial[:4] + initial[5:]] + [result_of(children[1])])
    assert [g.key for g, _ in strategy.population][-1] == children[1].key  # joins the queue when told
    assert len(strategy.population) == 7  # and the oldest left


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NAMES), st.integers(0, 2**16), st.integers(0, 6), st.integers(1, 12))
def test_repeats_never_reach_an_ask_when_new_genomes_exist(name, seed, batches, n):
    """From random states (random seeds, random numbers of told batches, part of them passed as `known`),
    no asked genome is evaluated, known, or in flight."""
    strategy = build_strategy(search_config(name), SMALL, seed)
    rng = random.Random(seed)
    evaluated: set[str] = set()
    for _ in range(batches):
        genomes = strategy.ask()
        strategy.tell(results(genomes))
        evaluated.update(g.key for g in genomes)
    outside = [build_strategy(search_config("random"), SMALL, seed + 1).ask()[i] for i in range(3)]
    strategy.known(results(outside))
    evaluated.update(g.key for g in outside)
    flying: set[str] = set()
    for _ in range(3):
        asked = strategy.ask(n)
        keys = [g.key for g in asked]
        assert len(set(keys)) == len(keys)
        assert not set(keys) & (evaluated | flying)
        flying.update(keys)
        if asked and rng.random() < 0.5:
            strategy.tell(results(asked[:1]))
            evaluated.add(keys[0])
            flying.discard(keys[0])


def test_known_genomes_are_never_asked_and_the_repeats_are_counted():
    strategy = build_strategy(search_config("pso"), SMALL, 0)
    batch = strategy.ask()
    copy = build_strategy(search_config("pso"), SMALL, 0)
    copy.known(results(batch))  # the same swarm, told that its first cells are evaluated
    assert not {g.key for g in copy.ask()} & {g.key for g in batch}
    assert copy.repeats.avoided >= len(batch) and copy.repeats_total.avoided == copy.repeats.avoided


def test_a_member_with_nothing_new_left_takes_its_known_score_and_the_slot_stays_empty():
    """`ask_member` when every string at a position is evaluated: after its re-varies it takes the known
    score of its genome (the GA can breed on), asks nothing, and the empty slot is counted."""
    from nas.strategies.ga_asks import ask_member
    from nas.strategies.shortcut_ga import ShortcutGA

    strategy = build_strategy(search_config("hgapso"), SMALL, 0)
    position = SMALL.encode(((1, 4), (1, 4)))  # one layer a block: 1 bit each, 4 strings in all
    every = [SMALL.genome(position, (a, b)) for a in "01" for b in "01"]
    known = results(every, fitness=lambda g: 0.5 + 0.1 * g.blocks[0].shortcuts.count("1"))
    strategy.known(known)
    run = ShortcutGA.start((1, 1), 3, random.Random(0))
    before = strategy.repeats.unfilled
    run, genome = ask_member(strategy, position, run, 0, strategy.search.section("ga"))
    assert genome is None and strategy.repeats.unfilled == before + 1
    member = SMALL.genome(position, run.blocks(0))
    assert run.scores[0] == strategy.score_of(member) and run.scores[0] is not None
    assert not run.asked[0], "a member that takes a known score waits for nothing"


def test_hgapso_restored_mid_generation_waits_for_its_quorum_as_the_original_does():
    """The async mode is part of hgapso's state: a restored strategy told the last member of a particle's GA
    run before any ask settles that particle and leaves it waiting, as the uninterrupted one does."""
    original = build_strategy(search_config("hgapso"), SMALL, 0)  # 3 particles x 4 strings, 2 generations
    first = original.ask(100)
    original.tell([result_of(g) for g in first[:4]])
    second = original.ask(100)  # particle 0's second generation
    original.tell([result_of(g) for g in second[:-1]])
    restored = build_strategy(search_config("hgapso"), SMALL, 0)
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    for strategy in (original, restored):
        strategy.tell([result_of(second[-1])])  # particle 0's GA run is over: it settles and waits
    assert restored.waiting == original.waiting == {0: 1}
    assert restored.state_dict() == original.state_dict()


def test_hgapso_async_never_stalls_on_a_quorum_nothing_can_meet():
    """With the whole swarm as quorum and one slot, every settled particle waits for settles that cannot come
    while it waits: once nothing is in flight the waiting particles move, and the search runs to its budget."""
    strict = search_config("hgapso", hgapso={"quorum": 1.0})
    strategy = build_strategy(strict, SMALL, 0)
    finished = drive_async(strategy, 1, 60, random.Random(0))
    assert len(finished) == 60 and not strategy.exhausted
    assert strategy.moves >= 6, "particles went on moving"
