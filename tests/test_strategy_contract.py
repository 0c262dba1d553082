"""The ask/tell contract's edges, each pinned by behaviour: the misuse errors (with their words and key paths),
the repeat counters a draw reports, what a checkpoint keeps of a best and of every told score (parameter counts
included: they break ties), how `register` stamps a strategy, and the ranking of results that are not plain
successes. Written from the mutants that survived the strategies' tests (tests/MUTATION.md)."""

import itertools
import json
import math
import random
from dataclasses import dataclass
from typing import Any

import pytest
from test_strategies import SMALL, results, search_config
from test_strategy_registry import Burst

from nas.config import bounds, parse_config
from nas.errors import UserError
from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.strategies.random_search import random_genome
from nas.strategies.ranking import NO_PARAMS, Score, fitness_of, is_better, score_order
from nas.strategies.shortcut_ga import ShortcutGA
from nas.strategies.strategy import STRATEGIES, Repeats, Strategy, build_strategy, register


def fresh(name: str = "random", **overrides: Any) -> Strategy:
    return build_strategy(search_config(name, **overrides), SMALL, 0)


def ok(genome: Genome, fitness: float, params: int | None = None) -> Result:
    return Result(genome.key, genome.to_dict(), "ok", fitness, params=params)


# --- misuse: one clear error each ---------------------------------------------------------------------------


def test_misuse_of_ask_and_tell_says_what_was_wrong():
    s = fresh()
    with pytest.raises(ValueError, match=r"^ask\(n\) needs n >= 0, got -1$"):
        s.ask(-1)
    with pytest.raises(ValueError, match=r"^tell\(\) without a pending ask\(\)$"):
        s.tell([])
    batch = s.ask()
    with pytest.raises(ValueError, match=r"^ask\(n\) while a batch asked by ask\(\) is in flight: tell it first$"):
        s.ask(1)
    wrong = results(list(reversed(batch)))
    with pytest.raises(
        ValueError, match=rf"^result 0 has key {batch[-1].key[:12]}, the asked genome {batch[0].key[:12]}$"
    ):
        s.tell(wrong)
    s.tell(results(batch))
    s.ask(2)
    with pytest.raises(ValueError, match=r"^ask\(\) while asynchronous asks are in flight: use ask\(n\)$"):
        s.ask()
    stranger = random_genome(SMALL, random.Random(7))
    with pytest.raises(ValueError, match=rf"^result for genome {stranger.key[:12]}, which is not in flight$"):
        s.tell(results([stranger]))


def test_an_empty_async_tell_with_genomes_in_flight_is_a_no_op():
    s = fresh()
    flying = s.ask(3)
    s.tell([])
    assert s.in_flight() == flying and s.told == 0


class Faulty(Burst):
    """Proposes what `plan` says, bypassing `claim`: a strategy bug the base class must catch."""

    plan: list[Genome] = []

    def propose(self, limit: int | None) -> list[Genome]:
        return list(self.plan)


@pytest.mark.parametrize(("fault", "limit"), [("duplicate", 2), ("told", 2), ("too many", 1)])
def test_a_strategy_that_proposes_a_repeat_or_too_many_is_a_bug_caught_at_once(fault, limit):
    faulty = Faulty(parse_config({"search": {"strategy": "burst"}}).search, SMALL, 0)
    a, b = (random_genome(SMALL, random.Random(i)) for i in (1, 2))
    faulty.plan = {"duplicate": [a, a], "told": [a], "too many": [a, b]}[fault]
    if fault == "told":
        faulty.known([ok(a, 0.5)])
    with pytest.raises(AssertionError, match=r"^burst proposed a repeat or too many genomes$"):
        faulty.ask(limit)
    fine = Faulty(faulty.search, SMALL, 0)
    fine.plan = [a, b]
    assert fine.ask(2) == [a, b], "two new genomes within the limit pass"


# --- repeat counters ----------------------------------------------------------------------------------------


class Repeater(Burst):
    """Each draw claims one new genome after trying the same one three times, and leaves two slots empty."""

    def propose(self, limit: int | None) -> list[Genome]:
        genome = random_genome(self.space, self.rng)
        taken = [g for g in (genome, genome, genome) if self.claim(g)]
        self.unfilled(1)
        self.unfilled(1)
        return taken


def test_repeats_count_every_avoided_draw_and_empty_slot_and_add_up_over_the_run():
    s = Repeater(parse_config({"search": {"strategy": "burst"}}).search, SMALL, 0)
    s.tell(results(s.ask(1)))
    assert s.repeats == Repeats(avoided=2, unfilled=2)
    s.tell(results(s.ask(1)))
    assert s.repeats == Repeats(avoided=2, unfilled=2), "the last draw's, not the run's"
    assert s.repeats_total == Repeats(avoided=4, unfilled=4)
    total = Repeats(1, 2)
    total.add(Repeats(3, 4))
    assert total == Repeats(4, 6)


# --- what a checkpoint keeps ----------------------------------------------------------------------------------


def test_a_checkpoint_keeps_the_parameter_counts_of_the_best_and_of_every_told_score():
    s = fresh()
    genomes = s.ask(3)
    s.tell([ok(g, 0.5, params=1000 * (i + 1)) for i, g in enumerate(genomes)])
    assert s.best.params == 1000, "a tie at 0.5: fewer parameters wins"
    data = json.loads(json.dumps(s.state_dict()))
    assert data["best"]["params"] == 1000
    restored = fresh()
    restored.load_state_dict(data)
    assert restored.best == s.best
    assert [restored.score_of(g) for g in genomes] == [s.score_of(g) for g in genomes]
    assert [restored.score_of(g).params for g in genomes] == [1000, 2000, 3000]


def test_a_checkpoint_of_another_format_or_strategy_is_refused_with_its_key_path():
    s = fresh()
    data = s.state_dict()
    for bad, key, message in [
        ({**data, "format": "nas-strategy-state/1"}, "checkpoint.format",
         "unknown strategy state format 'nas-strategy-state/1'"),
        ({**data, "strategy": "pso"}, "search.strategy", "checkpoint holds a 'pso' state, not 'random'"),
    ]:  # fmt: skip
        with pytest.raises(UserError) as caught:
            fresh().load_state_dict(bad)
        assert caught.value.key == key and str(caught.value) == f"{key}: {message}"


def test_a_ga_runs_scores_keep_their_parameter_counts_through_its_state():
    run = ShortcutGA((1,), ("1", "0"), (Score(0.5, 123, "k1"), None), (True, False))
    assert Score.from_list(Score(0.5, 123, "k1").to_list()) == Score(0.5, 123, "k1")
    again = ShortcutGA.from_dict(json.loads(json.dumps(run.to_dict())))
    assert again.scores[0] == Score(0.5, 123, "k1")


# --- register -----------------------------------------------------------------------------------------------


@dataclass
class DashConfig:
    size: int = bounds(2, 1, 9)


REGISTERED = itertools.count()  # a fresh name each call: a test process may run this test more than once


def test_register_stamps_the_name_and_derives_the_section_from_it():
    """Registered here, at test time, so the decorator itself runs under test (not only at import)."""
    n = next(REGISTERED)
    name = f"dash-contract-{n}"
    cls = register(name, config=DashConfig)(type("Dash", (Burst,), {"propose": Burst.propose}))
    assert isinstance(cls, type) and STRATEGIES.get(name) is cls
    assert cls.name == name and cls.config_section == f"dash_contract_{n}"
    config = parse_config({"search": {"strategy": name, f"dash_contract_{n}": {"size": 5}}})
    s = build_strategy(config.search, SMALL, 0)
    assert s.config == DashConfig(size=5) and s.state_dict()["strategy"] == name
    other = fresh()
    with pytest.raises(UserError, match=f"checkpoint holds a '{name}' state, not 'random'"):
        other.load_state_dict(s.state_dict())
    on_ga = register(f"on-ga-contract-{n}", section="ga")(type("OnGa", (Burst,), {}))
    assert on_ga.config_section == "ga"
    on_ga_config = parse_config({"search": {"strategy": f"on-ga-contract-{n}", "ga": {"population": 7}}})
    assert build_strategy(on_ga_config.search, SMALL, 0).config.population == 7


# --- ranking of what is not a plain success -----------------------------------------------------------------


def test_a_failed_or_non_finite_result_ranks_as_a_failure_whatever_number_it_carries():
    g = random_genome(SMALL, random.Random(3))
    assert fitness_of(Result(g.key, g.to_dict(), "failed", 0.9)) is None
    assert fitness_of(Result(g.key, g.to_dict(), "timeout", 0.9)) is None
    for value in (math.nan, math.inf, -math.inf):
        assert fitness_of(ok(g, value)) is None
    assert fitness_of(ok(g, 0.25)) == 0.25


def test_no_score_ranks_below_a_failure_without_a_parameter_count():
    failure = Score(None, None, "")
    assert score_order(None) > score_order(failure), "nothing at all is worse than a failure with the empty key"
    assert score_order(None) == (math.inf, NO_PARAMS + 1, "")
    assert not is_better(failure, None), "a failure never beats anything, not even nothing"


# --- hgapso's stall limit and a GA's known strings ------------------------------------------------------------


def stalls_until_done(s: Strategy) -> list[int]:
    """Ask and tell until `s` is done, every batch worse than all before it; its stall count after each tell."""
    worse = iter(range(1000))
    stalls = []
    while not s.done():
        s.tell(results(s.ask(), fitness=lambda g: 1 / (2 + next(worse))))
        stalls.append(s.stalls)
    return stalls


def test_hgapso_stall_limit_counts_particle_runs_since_the_global_best_last_improved():
    """swarm 3, one GA generation a run, `stall_iterations: 2`: every told batch is worse than all before it,
    so after the first (which sets the global best) each adds 3 runs; done exactly at 2 x 3."""
    s = fresh("hgapso", pso={"swarm_size": 3, "stall_iterations": 2},
              ga={"population": 2, "generations": 1, "tournament_size": 1, "elitism": 1})  # fmt: skip
    assert stalls_until_done(s) == [0, 3, 6]
    assert s.particle_moves == [3, 3, 3] and s.moves == 9


def test_a_particles_ga_knows_the_score_of_a_string_already_told_at_its_position():
    from nas.strategies.ga_asks import known_scorer, split

    s = fresh("hgapso")
    run, position = s.runs[0], s.swarm.particles[0].position
    batch = s.ask()
    bits = run.population[0]
    assert SMALL.genome(list(position), split(bits, run.layers)) == batch[0]
    scorer = known_scorer(s, position, run.layers)
    assert scorer(bits) is None, "not told yet"
    s.tell(results(batch))
    assert scorer(bits) == s.score_of(batch[0]) is not None


def test_pso_stall_limit_counts_particle_moves_since_the_global_best_last_improved():
    s = fresh("pso", pso={"swarm_size": 3, "stall_iterations": 2})
    assert stalls_until_done(s) == [0, 3, 6]


# --- the fixed-architecture GA's range check, aging evolution's mutation rates, the swarm's first velocities --


def test_ga_accepts_a_fixed_architecture_at_both_ends_of_every_range_and_names_the_key_outside():
    ends = [{"layers": 1, "growth_rate": 4}, {"layers": 6, "growth_rate": 16}]
    genomes = fresh("ga", architecture=ends).ask()
    assert {g.architecture_level for g in genomes} == {((1, 4), (6, 16))}
    for bad in ({"layers": 1, "growth_rate": 3}, {"layers": 1, "growth_rate": 17}):
        with pytest.raises(
            UserError, match=r"^search\.architecture\[0\]\.growth_rate: must be in the space's range \[4, 16\]$"
        ):
            fresh("ga", architecture=[bad, ends[1]])


def test_aging_evolution_flips_one_bit_plus_each_other_with_probability_one_over_n():
    from nas.strategies.regularized_evolution import flip_bits

    rng = random.Random(0)
    layers = [3, 3]
    bits = ("0", "10", "110", "0", "01", "011")  # 12 bits
    n = sum(len(b) for b in bits)
    trials = 4000
    flips = [sum(x != y for x, y in zip("".join(bits), "".join(flip_bits(bits, layers, rng)), strict=True))
             for _ in range(trials)]  # fmt: skip
    assert min(flips) == 1, "one bit is always flipped"
    expected = 1 + (n - 1) / n
    assert abs(sum(flips) / trials - expected) < 0.06, (sum(flips) / trials, expected)


def test_aging_evolution_mutates_the_architecture_half_the_time_and_only_bits_otherwise():
    from nas.strategies.regularized_evolution import mutate

    rng = random.Random(1)
    parent = random_genome(SMALL, random.Random(5))
    moved = 0
    for _ in range(2000):
        child = mutate(parent, SMALL, rng)
        assert child != parent
        moved += child.architecture_level != parent.architecture_level
    assert 0.45 < moved / 2000 < 0.55


def test_the_first_velocities_are_uniform_in_the_clamp_both_ways():
    from nas.strategies.swarm import new_swarm, velocity_limits

    flock = new_swarm(SMALL.dimensions, 200, 0.2, random.Random(0))
    limits = velocity_limits(SMALL.dimensions, 0.2)
    for d, vmax in enumerate(limits):
        v = [p.velocity[d] for p in flock.particles]
        assert all(-vmax <= x <= vmax for x in v)
        assert min(v) < -vmax / 2 and max(v) > vmax / 2, "both directions, across the clamp"


# --- the shortcut GA's pieces -------------------------------------------------------------------------------


def test_split_cuts_a_joined_string_of_any_number_of_blocks_back_into_its_blocks():
    from nas.genome import shortcuts
    from nas.strategies.shortcut_ga import join, split

    layers = [1, 2, 3, 2]  # four blocks: a cut that forgot the blocks before it would show from the third
    rng = random.Random(0)
    blocks = tuple("".join(rng.choice("01") for _ in range(shortcuts.bit_length(n))) for n in layers)
    assert split(join(blocks), layers) == blocks
    with pytest.raises(ValueError, match=r"^3 bits do not fit blocks of \[1, 2, 3, 2\] layers$"):
        split("101", layers)


def test_a_ga_individual_ranks_failures_last_and_fewer_parameters_first_on_a_tie():
    from nas.strategies.shortcut_ga import _Individual

    scored = _Individual("01", Score(0.1, None, "a"))
    assert _Individual("01", None).fitness < scored.fitness
    assert _Individual("01", Score(None, 5, "b")).fitness < scored.fitness
    assert _Individual("01", Score(0.5, 10, "c")).fitness > _Individual("01", Score(0.5, 20, "d")).fitness
    assert _Individual("01", Score(0.5, 10, "c")).fitness > _Individual("01", Score(0.5, None, "e")).fitness


def test_two_point_crossover_mixes_two_bit_strings_too():
    from nas.strategies.shortcut_ga import _Individual, _mate

    random.seed(0)  # DEAP's operators draw from the global RNG (breed lends it the strategy's)
    seen = set()
    for _ in range(50):
        a, b = _mate(_Individual("00"), _Individual("11"))
        seen.add((a.bits(), b.bits()))
    assert seen - {("00", "11")}, "a 2-bit string has two cut points"
    assert _mate(_Individual("0"), _Individual("1"))[0].bits() == "0", "a 1-bit string passes unchanged"


def test_a_ga_generation_breeds_from_a_scored_population_only_and_replaces_it():
    from nas.strategies.shortcut_ga import GAConfig

    ga = GAConfig(population=6, generations=3, tournament_size=2, elitism=1)
    run = ShortcutGA.start([3, 3], 6, random.Random(0))
    with pytest.raises(ValueError, match=r"^the population must be scored before it can breed$"):
        run.evolve(ga, random.Random(1))
    for i in range(6):
        run = run.with_score(i, Score(i / 10, None, f"k{i}"))
    nxt = run.evolve(ga, random.Random(1))
    assert nxt.generation == 1 and len(nxt.population) == 6
    assert nxt.population[0] == run.population[5] and nxt.scores[0] == run.scores[5], "the elite, with its score"
    assert set(nxt.population) - set(run.population), "children that are new strings"
    assert nxt.scores[1:] == (None,) * 5 and nxt.asked == (False,) * 6
    with pytest.raises(ValueError, match=r"^2 scores for a population of 6$"):
        run.record([None, None])


def test_an_hgapso_checkpoint_from_before_the_quorum_loads_with_nobody_waiting():
    """States written before `waiting`, `asynchronous` and `particle_moves` were kept: nobody waits, the draws
    are sync, and every particle counts as moved as the swarm's mean (moves // swarm size)."""
    s = fresh("hgapso", pso={"swarm_size": 3})
    for _ in range(3):
        s.tell(results(s.ask()))
    assert s.moves == 3
    data = json.loads(json.dumps(s.state_dict()))
    for key in ("waiting", "asynchronous", "particle_moves"):
        del data["state"][key]
    data["state"]["moves"] = 7
    old = fresh("hgapso", pso={"swarm_size": 3})
    old.load_state_dict(data)
    assert old.waiting == {} and old.asynchronous is False and old.particle_moves == [2, 2, 2]
    assert old.ask() == s.ask(), "the same batch as the run that wrote it"


def test_a_ga_without_the_dense_seed_starts_from_random_strings_only():
    from nas.genome import shortcuts

    layers = [6, 6]
    ones = "".join(shortcuts.all_ones(n) for n in layers)
    for seed in range(5):
        assert ones in ShortcutGA.start(layers, 4, random.Random(seed)).population
        assert ones not in ShortcutGA.start(layers, 4, random.Random(seed), dense=False).population


# --- withdraw: asks taken back untrained (predictor screening) -----------------------------------------------

WITHDRAW_NAMES = ["hgapso", "pso", "ga", "random", "regularized-evolution"]


def evaluated_keys(s: Strategy) -> set[str]:
    return {row[0] for row in s.state_dict()["evaluated"]}


@pytest.mark.parametrize("name", WITHDRAW_NAMES)
def test_a_strategy_whose_asks_are_all_withdrawn_asks_again_and_records_none_of_them(name):
    """Withdrawn genomes leave flight and the evaluated record; whatever waited for them (a GA member marked
    asked, a particle waiting for its cell, an initial slot of aging evolution) is given back, so the next ask
    is not empty: without the strategy's `retract` every one of these but random waits forever."""
    s = fresh(name)
    for _ in range(5):
        asked = s.ask(64)
        assert asked, "a withdrawn ask left the strategy waiting for a result that will not come"
        s.withdraw(asked)
        assert s.in_flight() == [] and not s.exhausted and not s.done()
        assert all(s.score_of(g) is None for g in asked)
        assert not evaluated_keys(s) & {g.key for g in asked}
        s.tell(results(s.ask(1)))  # one real result between the rounds


@pytest.mark.parametrize("name", WITHDRAW_NAMES)
def test_asks_with_withdrawals_continue_exactly_from_a_json_checkpoint_and_tell_only_what_was_kept(name):
    """A screened run's pattern (ask three times the slots, keep one, withdraw the rest, tell what was kept),
    interrupted by a JSON round trip of the state: the restored strategy asks and withdraws what the
    uninterrupted one does, and its evaluated record holds exactly the genomes told."""

    def rounds(s: Strategy, count: int, told: list[str]) -> list[list[str]]:
        asked_keys = []
        for _ in range(count):
            asked = s.ask(6)
            keep = asked[::3]
            s.withdraw([g for g in asked if g not in keep])
            s.tell(results(keep))
            told += [g.key for g in keep]
            asked_keys.append([g.key for g in asked])
        return asked_keys

    whole, told = fresh(name), []
    first = rounds(whole, 12, told)
    rest = rounds(whole, 12, told)
    half, told_half = fresh(name), []
    assert rounds(half, 12, told_half) == first
    restored = fresh(name)
    restored.load_state_dict(json.loads(json.dumps(half.state_dict())))
    assert rounds(restored, 12, told_half) == rest
    assert restored.state_dict() == whole.state_dict()
    assert evaluated_keys(whole) == set(told) and whole.told == len(told) > 12


def test_withdraw_refuses_what_is_not_in_flight_and_a_sync_batch():
    s = fresh()
    asked = s.ask(2)
    stranger = random_genome(SMALL, random.Random(7))
    with pytest.raises(ValueError, match=rf"^withdraw\(\) of genome {stranger.key[:12]}, which is not in flight$"):
        s.withdraw([stranger])
    with pytest.raises(ValueError, match="which is not in flight"):
        s.withdraw([asked[0], asked[0]])
    assert s.in_flight() == asked, "a refused withdraw takes nothing back"
    s.withdraw([asked[0]])
    assert s.in_flight() == [asked[1]]
    batch = fresh().ask()
    with pytest.raises(ValueError, match=r"^withdraw\(\) of a batch asked by ask\(\)"):
        _batch_strategy(batch).withdraw(batch[:1])


def _batch_strategy(batch: list[Genome]) -> Strategy:
    s = fresh()
    assert s.ask() == batch
    return s


def test_a_particle_whose_genome_was_withdrawn_proposes_its_cell_again():
    """A particle moves only on a real result: withdrawn, it stays where it is and its cell comes back."""
    s = fresh("pso")
    asked = s.ask(1)
    s.withdraw(asked)
    assert s.waiting == [None, None, None]
    assert asked[0] in s.ask(3)


def test_aging_evolution_gives_a_withdrawn_initial_slot_back_and_keeps_it_in_its_state():
    s = fresh("regularized-evolution")  # a population of 7
    initial = s.ask(5)
    s.withdraw(initial[1:3])
    assert s.initial_asked == 3
    data = json.loads(json.dumps(s.state_dict()))
    assert data["state"]["initial_flying"] == [initial[0].key, *[g.key for g in initial[3:]]]
    assert len(s.ask(10)) == 4, "the 7 initial slots: 3 in flight, 4 to draw"
