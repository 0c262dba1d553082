"""One ranking rule everywhere (fitness, then fewer parameters, then key): the strategies' best, the swarm's
and a GA's bests, and the run's `ranked` (behind `best/`, `nas export` and `nas report`) pick the same
result whatever order the results arrive in. Ties are made common on purpose (fitness in steps of 1/4)."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from test_strategies import SMALL, search_config

from nas.evaluate.result import Result
from nas.run.runlog import rank_key, ranked
from nas.strategies import swarm
from nas.strategies.ranking import Score, is_better, order
from nas.strategies.shortcut_ga import ShortcutGA
from nas.strategies.strategy import build_strategy

outcomes = st.lists(
    st.tuples(st.one_of(st.none(), st.sampled_from([0.25, 0.5, 0.75])), st.sampled_from([None, 10, 20])),
    min_size=1,
    max_size=10,
)


def make_results(genomes, values) -> list[Result]:
    out = []
    for genome, (fitness, params) in zip(genomes, values, strict=False):
        status = "ok" if fitness is not None else "failed"
        out.append(Result(genome.key, genome.to_dict(), status, fitness, params=params))
    return out


@settings(max_examples=60, deadline=None)
@given(outcomes, st.integers(0, 2**16))
def test_every_best_agrees_with_the_runs_ranking_whatever_the_arrival_order(values, seed):
    strategy = build_strategy(search_config("random", batch_size=10), SMALL, seed)
    genomes = strategy.ask(len(values))
    results = make_results(genomes, values)
    shuffled = results[:]
    random.Random(seed).shuffle(shuffled)
    strategy.tell(shuffled)
    top = ranked(results)
    if not top:
        assert strategy.best is None
        return
    assert strategy.best.genome.key == top[0].key
    assert sorted(results, key=rank_key)[0].key == top[0].key
    # the swarm: one particle per result, settled in the shuffled order, one at a time
    particles = tuple(swarm.Particle((float(i),), (0.0,)) for i in range(len(shuffled)))
    flock = swarm.Swarm(particles)
    for i, r in enumerate(shuffled):
        flock = swarm.settle(flock, {i: (Score.of(r), ("1",))})
    assert flock.best.score.key == top[0].key
    # a GA run scoring its members in the shuffled order
    run = ShortcutGA((1,), tuple("1" for _ in shuffled), (None,) * len(shuffled), (False,) * len(shuffled))
    for i, r in enumerate(shuffled):
        run = run.with_score(i, Score.of(r))
    assert run.best.key == top[0].key


def test_the_rule_on_a_tie():
    assert order(0.5, 10, "b") < order(0.5, 20, "a") < order(0.5, 20, "b") < order(0.25, 1, "a") < order(None, 1, "a")
    assert order(0.5, None, "a") > order(0.5, 10, "z")  # unknown parameter count ranks after a known one
    assert not is_better(Score(None, 1, "a"), None) and is_better(Score(0.0, None, "a"), None)
