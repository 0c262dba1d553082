"""Every strategy under the ask/tell contract: determinism, exact resume, batch sizes, valid genomes, and a
search-quality check that hgapso beats random search at equal budget."""

import json
import math
import random

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.config import parse_config
from nas.errors import UserError
from nas.evaluate.result import Result
from nas.genome import Genome, load_space, shortcuts
from nas.genome.space import SearchSpace, parse_space
from nas.strategies.random_search import random_genome
from nas.strategies.regularized_evolution import mutate
from nas.strategies.strategy import STRATEGIES, Strategy, build_strategy

NAMES = ["hgapso", "pso", "ga", "random", "regularized-evolution"]
SMALL = load_space(ROOT / "encodings" / "densenet_small.yaml")
CIFAR = load_space(ROOT / "encodings" / "densenet_cifar.yaml")
WITH_LR = parse_space({**SMALL.to_dict(), "learning_rate": [1e-3, 0.3]}, "small_lr")
SEARCH = {
    "batch_size": 5,
    "pso": {"swarm_size": 3},
    "ga": {"population": 4, "generations": 2, "tournament_size": 2, "elitism": 1},
    "regularized_evolution": {"population": 7, "sample_size": 3},
}


def search_config(strategy: str, **overrides):
    return parse_config({"search": {**SEARCH, "strategy": strategy, **overrides}}).search


def toy_fitness(genome: Genome) -> float | None:
    """Cheap and deterministic; about one genome in eight fails, to exercise the failure path."""
    if int(genome.key[:2], 16) < 32:
        return None
    ones = sum(b.shortcuts.count("1") for b in genome.blocks)
    size = sum(b.layers * b.growth_rate for b in genome.blocks)
    return round(1 / (1 + abs(size - 60)) + 0.01 * ones, 6)


def results(genomes: list[Genome], fitness=toy_fitness) -> list[Result]:
    out = []
    for g in genomes:
        value = fitness(g)
        if value is None:
            out.append(Result.failure(g.key, g.to_dict(), "boom"))
        else:
            out.append(Result(key=g.key, genome=g.to_dict(), status="ok", fitness=value))
    return out


def run(strategy: Strategy, batches: int, log: list[Result] | None = None) -> list[list[str]]:
    """Ask and tell `batches` batches; the asked keys, batch by batch. Told results are appended to `log`."""
    asked = []
    for _ in range(batches):
        genomes = strategy.ask()
        asked.append([g.key for g in genomes])
        told = results(genomes)
        strategy.tell(told)
        if log is not None:
            log.extend(told)
    return asked


def json_copy(state: dict) -> dict:
    return json.loads(json.dumps(state, allow_nan=False))


def test_each_name_builds_the_algorithm_it_names():
    """Told apart by what they ask first, not by the name the registry wrote on them."""

    def first_ask(name: str) -> list[Genome]:
        return build_strategy(search_config(name), SMALL, 0).ask()

    dense = [all(set(b.shortcuts) == {"1"} for b in g.blocks) for g in first_ask("pso")]
    assert len(dense) == 3 and all(dense), "pso: one DenseNet (all shortcuts on) per particle"
    ga = first_ask("ga")
    assert len(ga) == 4 and len({g.architecture_level for g in ga}) == 1, "ga: one population, one architecture"
    hybrid = first_ask("hgapso")
    assert len(hybrid) == 3 * 4 and len({g.architecture_level for g in hybrid}) == 3, "a GA population per particle"
    assert not all(all(set(b.shortcuts) == {"1"} for b in g.blocks) for g in hybrid)
    for name in ("random", "regularized-evolution"):
        asked = first_ask(name)
        assert len(asked) == 5 and len({g.key for g in asked}) == 5, f"{name}: a batch of distinct random genomes"
    assert set(NAMES) <= set(STRATEGIES.names())


def test_an_unknown_strategy_names_the_key():
    config = search_config("random")
    config.strategy = "annealing"
    with pytest.raises(UserError, match=r"^search\.strategy: unknown strategy 'annealing'"):
        build_strategy(config, SMALL, 0)


@pytest.mark.parametrize("name", NAMES)
def test_a_run_is_deterministic_for_a_seed(name):
    first = run(build_strategy(search_config(name), SMALL, 3), 6)
    assert run(build_strategy(search_config(name), SMALL, 3), 6) == first
    assert run(build_strategy(search_config(name), SMALL, 4), 6) != first


@pytest.mark.parametrize("name", NAMES)
def test_a_run_is_unaffected_by_the_global_random_state(name):
    random.seed(1)
    first = run(build_strategy(search_config(name), SMALL, 3), 5)
    random.seed(2)
    before = random.getstate()
    assert run(build_strategy(search_config(name), SMALL, 3), 5) == first
    assert random.getstate() == before


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("space", [SMALL, WITH_LR], ids=["small", "with_lr"])
def test_resume_from_a_json_state_asks_exactly_what_the_uninterrupted_run_asks(name, space):
    config = search_config(name)
    uninterrupted = build_strategy(config, space, 5)
    log: list[Result] = []
    run(uninterrupted, 3, log)
    state = uninterrupted.state_dict()
    assert json_copy(state) == state  # JSON-safe, exactly
    resumed = build_strategy(config, space, 999)  # the state, not the seed, decides what follows
    resumed.load_state_dict(json_copy(state))
    assert run(resumed, 5) == run(uninterrupted, 5)
    assert resumed.best == uninterrupted.best and resumed.state_dict() == uninterrupted.state_dict()


@pytest.mark.parametrize("name", NAMES)
def test_a_crash_between_ask_and_tell_re_asks_the_same_batch(name):
    config = search_config(name)
    strategy = build_strategy(config, SMALL, 6)
    log: list[Result] = []
    run(strategy, 2, log)
    before_ask = json_copy(strategy.state_dict())
    batch = [g.key for g in strategy.ask()]
    after_ask = json_copy(strategy.state_dict())
    assert [g.key for g in strategy.ask()] == batch  # ask is idempotent until told
    for state in (before_ask, after_ask):
        restored = build_strategy(config, SMALL, 0)
        restored.load_state_dict(state)
        assert [g.key for g in restored.ask()] == batch


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("hgapso", [3 * 4, 3 * 3]),  # elites carry their scores into the second generation
        ("pso", [3] * 6),
        ("ga", [4, 3, 3, 3, 3, 3]),
        ("random", [5] * 6),
        ("regularized-evolution", [5, 2, 5, 5, 5, 5]),  # 7 initial members in batches of 5, then children
    ],
)
def test_ask_sizes(name, sizes):
    strategy = build_strategy(search_config(name), SMALL, 1)
    asked = run(strategy, len(sizes))
    assert [len(batch) for batch in asked] == sizes
    assert not strategy.done()


def assert_valid(genome: Genome, space: SearchSpace) -> None:
    assert Genome.from_dict(genome.to_dict()) == genome  # bit lengths match the layers
    assert len(genome.blocks) == space.num_blocks
    for block, (lo, hi), (glo, ghi) in zip(genome.blocks, space.layers, space.growth_rate, strict=True):
        assert lo <= block.layers <= hi and glo <= block.growth_rate <= ghi
        assert len(block.shortcuts) == shortcuts.bit_length(block.layers)
    if space.learning_rate is None:
        assert genome.learning_rate is None
    else:
        low, high = space.learning_rate
        assert low * (1 - 1e-9) <= genome.learning_rate <= high * (1 + 1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("space", [SMALL, CIFAR, WITH_LR], ids=["small", "cifar", "with_lr"])
def test_every_asked_genome_is_valid_in_its_space(name, space):
    strategy = build_strategy(search_config(name), space, 2)
    seen = []
    for _ in range(6):
        genomes = strategy.ask()
        seen.extend(genomes)
        strategy.tell(results(genomes))
    for genome in seen:
        assert_valid(genome, space)
    if space.learning_rate is not None and name != "ga":
        assert len({g.learning_rate for g in seen}) > 1  # the learning rate is searched


@pytest.mark.parametrize("name", NAMES)
def test_failures_count_as_worst_and_never_become_best(name):
    strategy = build_strategy(search_config(name), SMALL, 0)
    for _ in range(4):
        genomes = strategy.ask()
        strategy.tell(results(genomes, fitness=lambda g: None))
    assert strategy.best is None
    genomes = strategy.ask()
    strategy.tell(results(genomes))
    told = [(toy_fitness(g), g) for g in genomes if toy_fitness(g) is not None]
    assert strategy.best.fitness == max(f for f, _ in told)
    assert toy_fitness(strategy.best.genome) == strategy.best.fitness


def test_tell_checks_the_batch_it_is_given():
    strategy = build_strategy(search_config("random"), SMALL, 0)
    with pytest.raises(ValueError, match="without a pending ask"):
        strategy.tell([])
    genomes = strategy.ask()
    with pytest.raises(ValueError, match="4 results for a batch of 5"):
        strategy.tell(results(genomes[:4]))
    with pytest.raises(ValueError, match="result 0 has key"):
        strategy.tell(results(genomes[::-1]))
    strategy.tell(results(genomes))


def test_loading_another_strategys_state_is_a_user_error():
    state = build_strategy(search_config("pso"), SMALL, 0).state_dict()
    with pytest.raises(UserError, match=r"^search\.strategy: checkpoint holds a 'pso' state"):
        build_strategy(search_config("ga"), SMALL, 0).load_state_dict(state)


def test_ga_searches_the_centre_of_the_space_by_default():
    genomes = build_strategy(search_config("ga"), WITH_LR, 0).ask()
    assert {g.architecture_level for g in genomes} == {((4, 10), (4, 10))}  # centres 3.5 and 10 of [1,6], [4,16]
    assert [g.learning_rate for g in genomes] == pytest.approx([math.sqrt(1e-3 * 0.3)] * len(genomes))
    assert genomes[0].shortcut_level == (shortcuts.all_ones(4),) * 2  # seeded with the DenseNet string


def test_ga_keeps_the_configured_architecture_and_rejects_one_outside_the_space():
    fixed = [{"layers": 2, "growth_rate": 5}, {"layers": 6, "growth_rate": 16}]
    strategy = build_strategy(search_config("ga", architecture=fixed), SMALL, 0)
    for _ in range(3):
        genomes = strategy.ask()
        assert {g.architecture_level for g in genomes} == {((2, 5), (6, 16))}
        strategy.tell(results(genomes))
    with pytest.raises(UserError, match=r"^search\.architecture\[1\]\.layers: must be in the space's range \[1, 6\]"):
        build_strategy(search_config("ga", architecture=[fixed[0], {"layers": 7, "growth_rate": 5}]), SMALL, 0)
    with pytest.raises(UserError, match=r"^search\.architecture: must list 2 blocks"):
        build_strategy(search_config("ga", architecture=fixed[:1]), SMALL, 0)


def test_pso_asks_densenets_and_moves_the_swarm():
    strategy = build_strategy(search_config("pso"), SMALL, 0)
    first = strategy.ask()
    assert all(b.shortcuts == shortcuts.all_ones(b.layers) for g in first for b in g.blocks)
    strategy.tell(results(first))
    assert strategy.ask() != first


@pytest.mark.parametrize("name", ["pso", "hgapso"])
def test_a_converged_swarm_is_done_after_its_stall_limit_and_never_asks_a_genome_twice(name):
    overrides = {
        "ga": {"population": 2, "generations": 1, "tournament_size": 1, "elitism": 1},
        "pso": {"swarm_size": 3, "stall_iterations": 4},
    }
    strategy = build_strategy(search_config(name, **overrides), SMALL, 0)
    seen: list[str] = []
    batches = 0
    while not strategy.done() and batches < 2000:
        genomes = strategy.ask()
        seen.extend(g.canonical_json() for g in genomes)
        strategy.tell(results(genomes, fitness=target_fitness))
        batches += 1
    assert strategy.done() and strategy.ask() == []
    assert len(seen) == len(set(seen))  # every ask was new work
    assert strategy.stalls >= 4 * 3 and batches < 2000
    told_best = max(target_fitness(Genome.from_dict(json.loads(k))) for k in seen)
    assert strategy.best.fitness == told_best == strategy.swarm.best.fitness


def test_without_a_stall_limit_a_swarm_runs_until_the_budget_or_until_nothing_new_is_left():
    strategy = build_strategy(search_config("pso", pso={"swarm_size": 3}), SMALL, 0)
    seen: list[str] = []
    for _ in range(3000):
        genomes = strategy.ask()
        if strategy.done() or not genomes:
            break
        seen.extend(g.key for g in genomes)
        strategy.tell(results(genomes, fitness=target_fitness))
    assert len(seen) == len(set(seen))
    assert strategy.exhausted and strategy.repeats_total.unfilled > 0  # it said so instead of asking copies


def test_hgapso_runs_each_particles_ga_in_lockstep_then_moves_the_swarm():
    strategy = build_strategy(search_config("hgapso"), SMALL, 0)  # 3 particles x 4 strings, 2 generations
    generations = []
    for _ in range(3):
        genomes = strategy.ask()
        generations.append([g.architecture_level for g in genomes])
        strategy.tell(results(genomes))
    first, second, third = generations
    for batch, size in ((first, 4), (second, 3)):  # one architecture per particle, particle-major
        assert [len(set(batch[i * size : (i + 1) * size])) for i in range(3)] == [1, 1, 1]
    assert second == [a for i, a in enumerate(first) if i % 4]  # one generation on, elites not asked again
    assert third != first  # the swarm has moved
    assert strategy.moves == 3, "each of the 3 particles moved once"
    for particle in strategy.swarm.particles:  # personal bests keep position and bits together
        blocks, _ = SMALL.decode(list(particle.best.position))
        genome = SMALL.genome(particle.best.position, particle.best.bits)
        assert genome.architecture_level == blocks and toy_fitness(genome) == particle.best.fitness


def test_regularized_evolution_ages_out_the_oldest():
    strategy = build_strategy(search_config("regularized-evolution"), SMALL, 0)
    initial = [g for batch in (strategy.ask(), None) if batch for g in batch]
    strategy.tell(results(initial))
    rest = strategy.ask()
    strategy.tell(results(rest))
    assert [g for g, _ in strategy.population] == initial + rest  # 7 members, none aged out yet
    children = strategy.ask()
    strategy.tell(results(children))
    assert [g for g, _ in strategy.population] == (initial + rest + children)[5:]


@settings(max_examples=60)
@given(st.integers(0, 2**32), st.sampled_from([SMALL, WITH_LR]))
def test_a_mutation_changes_one_architecture_step_or_only_bits(seed, space):
    rng = random.Random(seed)
    parent = build_strategy(search_config("random"), space, seed).ask()[0]
    child = mutate(parent, space, rng)
    assert_valid(child, space)
    assert child != parent
    before = space.encode(parent.architecture_level, parent.learning_rate)
    after = space.encode(child.architecture_level, child.learning_rate)
    moved = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if not math.isclose(a, b)]
    if not moved:
        assert child.shortcut_level != parent.shortcut_level
        return
    assert len(moved) == 1
    dim = space.dimensions[moved[0]]
    step = 1 if dim.integer else dim.width / 10
    assert math.isclose(abs(after[moved[0]] - before[moved[0]]), step)
    for p, c in zip(parent.blocks, child.blocks, strict=True):
        if p.layers == c.layers:
            assert p.shortcuts == c.shortcuts  # only the block whose depth changed has its bits re-laid


# --- search quality -------------------------------------------------------------------------------------------

TARGET = ((3, 10), (5, 6))  # inside densenet_small


def target_bit(layers: int, source: int, target: int) -> str:
    """The rewarded pattern: links from the block input and into the block output only."""
    return "1" if source == 0 or target == layers + 1 else "0"


def target_fitness(genome: Genome) -> float:
    """1.0 exactly at TARGET with the rewarded pattern in every block; smooth in the architecture."""
    distance = sum(
        abs(b.layers - tl) / 5 + abs(b.growth_rate - tg) / 12 for b, (tl, tg) in zip(genome.blocks, TARGET, strict=True)
    )
    matches = [
        bit == target_bit(b.layers, s, t)
        for b in genome.blocks
        for bit, (s, t) in zip(b.shortcuts, shortcuts.pairs(b.layers), strict=True)
    ]
    return 0.5 * math.exp(-distance) + 0.5 * sum(matches) / len(matches)


def best_at_budget(name: str, seed: int, budget: int, **overrides) -> float:
    """Drive a strategy like the driver does: repeats are free, `budget` distinct genomes are evaluated."""
    strategy = build_strategy(search_config(name, **overrides), SMALL, seed)
    cache: dict[str, float] = {}
    while len(cache) < budget and not strategy.done():
        genomes = strategy.ask()
        for g in genomes:
            if g.key not in cache and len(cache) < budget:
                cache[g.key] = target_fitness(g)
        if any(g.key not in cache for g in genomes):
            break
        strategy.tell(results(genomes, fitness=lambda g: cache[g.key]))
    return max(cache.values())


def test_hgapso_finds_a_rewarded_architecture_and_pattern_better_than_random_at_equal_budget():
    seeds, budget = range(4), 400
    tuned = {"pso": {"swarm_size": 4}, "ga": {"population": 8, "generations": 6, "tournament_size": 3, "elitism": 1}}
    hybrid = [best_at_budget("hgapso", s, budget, **tuned) for s in seeds]
    baseline = [best_at_budget("random", s, budget) for s in seeds]
    assert sum(hybrid) / len(hybrid) > sum(baseline) / len(baseline) + 0.02, (hybrid, baseline)
    assert sum(h > r for h, r in zip(hybrid, baseline, strict=True)) >= 3, (hybrid, baseline)


def spread_from_seeds(run) -> int:
    """How far the non-seed members of a new GA are from the nearest seed (the worst member, in bits)."""
    return min(
        max(sum(a != b for a, b in zip(seed, m, strict=True)) for m in run.population[3:])
        for seed in run.population[:3]
    )


def test_hgapso_declares_its_section_and_fills_new_gas_with_mutants_of_the_swarms_best():
    ga = {"population": 6, "generations": 1, "bit_flip_prob": 0.02}
    strategy = build_strategy(search_config("hgapso", hgapso={"fill": "mutants"}, ga=ga), SMALL, 0)
    assert strategy.config.fill == "mutants" and strategy.config.dense_seed
    strategy.tell(results(strategy.ask()))  # every particle's one generation: the swarm moves
    for i, run in enumerate(strategy.runs):
        layers = [n for n, _ in SMALL.decode(list(strategy.swarm.particles[i].position))[0]]
        assert run.population[0] == "".join(shortcuts.all_ones(n) for n in layers)  # the DenseNet seed
        assert spread_from_seeds(run) <= 3  # variants of a seed (the resized swarm's best), not random strings
    random_fill = build_strategy(search_config("hgapso", hgapso={"fill": "random"}, ga=ga), SMALL, 0)
    random_fill.tell(results(random_fill.ask()))
    assert max(spread_from_seeds(run) for run in random_fill.runs) > 3
    with pytest.raises(UserError, match=r"^search\.hgapso\.fill: must be one of 'random', 'mutants'"):
        search_config("hgapso", hgapso={"fill": "best"})


def exploitation_run(exploit: float, seed: int = 0, budget: int = 60) -> list[tuple[bool, object, list[Genome]]]:
    """hgapso at one GA generation a move, batch by batch: (in the exploitation phase when the batch was
    placed, the global best it was placed around, the batch)."""
    search = search_config(
        "hgapso", budget={"evaluations": budget}, ga={"population": 4, "generations": 1}, hgapso={"exploit": exploit}
    )
    strategy = build_strategy(search, SMALL, seed)
    out, phase, best = [], False, None
    while strategy.told < budget:
        genomes = strategy.ask()
        out.append((phase, best, genomes))
        strategy.tell(results(genomes))
        phase, best = strategy.exploiting(), strategy.swarm.best
    return out


def test_hgapso_exploits_the_last_fraction_of_the_budget_one_step_from_the_global_best():
    """Until `exploit` of the budget is left hgapso asks what it asks without the phase; then every particle
    is placed at the global best's architecture or one value from it, and its GA tries one-bit variants of the
    best's bitstring (no DenseNet seed)."""
    with_phase, without = exploitation_run(0.5), exploitation_run(0.0)
    placed = [phase for phase, _, _ in with_phase]
    assert placed.index(True) >= 1 and all(placed[placed.index(True) :])  # once in, it stays in
    for (phase, _, a), (_, _, b) in zip(with_phase, without, strict=False):
        if not phase:
            assert [g.key for g in a] == [g.key for g in b]
    one_bit = local = at_centre = 0
    for phase, best, genomes in with_phase:
        if not phase:
            continue
        centre = [v for block in SMALL.decode(list(best.position))[0] for v in block]
        for g in genomes:
            values = [v for b in g.blocks for v in (b.layers, b.growth_rate)]
            steps = [abs(x - y) for x, y in zip(values, centre, strict=True) if x != y]
            assert steps in ([], [1]), (values, centre)
            local += 1
            if not steps:
                bits = "".join(b.shortcuts for b in g.blocks)
                flips = sum(x != y for x, y in zip(bits, "".join(best.bits), strict=True))
                assert flips >= 1
                at_centre += 1
                one_bit += flips == 1
    # a repeat varied again may carry more flips, and a particle's own best is seeded too
    assert local >= 20 and at_centre >= 5 and one_bit >= 0.8 * at_centre, (local, at_centre, one_bit)


def landscape_best(landscape: str, seed: int, budget: int, exploit: float) -> float:
    """hgapso at its defaults (the smoke config's swarm) on a synthetic landscape, driven as the driver does."""
    from nas.evaluate.objective import build_objective

    config = parse_config(
        {
            "encoding": str(ROOT / "encodings/densenet_small.yaml"),
            "fitness": {"objective": "synthetic", "landscape": landscape},
            "search": {"strategy": "hgapso", "budget": {"evaluations": budget}, "hgapso": {"exploit": exploit}},
        }
    )
    objective = build_objective(config, SMALL)
    strategy = build_strategy(config.search, SMALL, seed)
    cache: dict[str, Result] = {}
    while len(cache) < budget:
        genomes = strategy.ask()
        if not genomes or len(cache) + sum(g.key not in cache for g in genomes) > budget:
            break
        for g in genomes:
            cache.setdefault(g.key, objective(g))
        strategy.tell([cache[g.key] for g in genomes])
    return max(r.fitness or 0.0 for r in cache.values())


def test_the_exploitation_phase_finishes_the_separable_bits_of_bump_that_the_swarm_leaves():
    """On `bump` the swarm finds the architecture and leaves a few shortcut bits wrong (a pattern of separable
    bits, which one-bit steps finish); the exploitation phase gains there (benchmarks/RESULTS.md: 0.944 to
    0.979 at 400 evaluations, 20 seeds)."""
    seeds = range(6)
    phase = [landscape_best("bump", s, 400, 0.5) for s in seeds]
    none = [landscape_best("bump", s, 400, 0.0) for s in seeds]
    assert sum(phase) / len(phase) > sum(none) / len(none) + 0.01, (phase, none)
    assert sum(p >= n for p, n in zip(phase, none, strict=True)) >= 4, (phase, none)


def test_the_exploitation_phase_starts_at_its_fraction_of_the_budget_and_never_without_one():
    """The phase begins once (1 - exploit) of `search.budget.evaluations` genomes are evaluated (told or known
    from the log), never with `exploit: 0`, never before a best exists, and never under a budget in hours only
    (whose end is unknown)."""
    ga = {"population": 4, "generations": 1}

    def strategy(exploit: float, budget: dict) -> Strategy:
        return build_strategy(search_config("hgapso", budget=budget, ga=ga, hgapso={"exploit": exploit}), SMALL, 0)

    half = strategy(0.5, {"evaluations": 60})
    assert not half.exploiting()  # no best yet
    half.tell(results(half.ask()))  # 12 told
    padding = [random_genome(SMALL, random.Random(i)) for i in range(40)]
    half.known(results([g for g in padding if half.score_of(g) is None][:17]))  # 29 evaluated
    assert not half.exploiting()
    half.known(results([g for g in padding if half.score_of(g) is None][:1]))  # 30: half the budget
    assert half.exploiting()
    for exploit, budget in ((0.0, {"evaluations": 24}), (0.5, {"evaluations": None, "hours": 1.0})):
        other = strategy(exploit, budget)
        for _ in range(3):
            other.tell(results(other.ask()))
        assert other.told >= 24 and other.swarm.best is not None and not other.exploiting()


def test_hgapso_without_the_dense_seed_asks_no_densenet_string_first():
    """`dense_seed: false` leaves the all-ones string out of every particle's first generation."""
    search = search_config("hgapso", ga={"population": 4, "generations": 1}, hgapso={"dense_seed": False})
    strategy = build_strategy(search, SMALL, 0)
    for _ in range(2):
        strategy.tell(results(strategy.ask()))
        for run in strategy.runs:
            dense = "".join(shortcuts.all_ones(n) for n in run.layers)
            assert dense not in run.population[:1]


def test_hgapso_seeds_a_particles_new_ga_with_its_personal_best_before_the_phase():
    """Outside the exploitation phase a moving particle's GA starts from its personal best (resized to the new
    depths: unchanged when its depths did not change), then the swarm's best."""
    search = search_config("hgapso", ga={"population": 4, "generations": 1}, hgapso={"dense_seed": False})
    checked = 0
    for seed in range(20):
        strategy = build_strategy(search, SMALL, seed)
        strategy.tell(results(strategy.ask()))
        for i, run in enumerate(strategy.runs):
            best = strategy.swarm.particles[i].best
            if best is not None and strategy.layers_at(best.position) == list(run.layers):
                assert run.population[0] == "".join(best.bits)
                checked += 1
    assert checked >= 5


@pytest.mark.parametrize("space", [SMALL, WITH_LR], ids=["small", "with_lr"])
def test_hgapso_resumed_before_its_exploitation_phase_asks_what_the_uninterrupted_run_asks(space):
    """The phase is derived from the evaluated genomes in the state, so a resume across its start (and inside
    it) continues the same search."""
    config = search_config("hgapso", budget={"evaluations": 60})
    uninterrupted = build_strategy(config, space, 5)
    run(uninterrupted, 2)  # 24 of 60: the phase starts at 30
    assert not uninterrupted.exploiting()
    resumed = build_strategy(config, space, 999)
    resumed.load_state_dict(json_copy(uninterrupted.state_dict()))
    assert run(resumed, 4) == run(uninterrupted, 4)
    assert uninterrupted.exploiting() and resumed.state_dict() == uninterrupted.state_dict()
