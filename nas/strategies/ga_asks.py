"""Handing a shortcut GA's members out for evaluation as new work, and taking their results back.

Shared by `hgapso` (one GA per particle) and `ga` (one GA). A member whose genome is already evaluated, in
flight or taken earlier in the same draw is varied again (`shortcut_ga.revary`) up to `REVARY_ATTEMPTS`
times; when nothing new turns up, the member takes the known score of its genome (evaluated) or waits for the
result already in flight (shared), and the slot is counted as unfilled. A told result scores every member
waiting for that genome.
"""

from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

from nas.genome.genome import Genome
from nas.strategies.ranking import Score
from nas.strategies.shortcut_ga import GAConfig, ShortcutGA, revary, split
from nas.strategies.strategy import Strategy

REVARY_ATTEMPTS = 20  # variants of a repeated member before its slot is left to a known or shared result
# Member keys remembered per strategy (`member_key`), cleared when full: a few hundred bytes each.
MEMBER_KEYS_KEPT = 100_000


def member_genome(strategy: Strategy, position: Sequence[float], run: ShortcutGA, index: int) -> Genome:
    return strategy.space.genome(list(position), run.blocks(index))


def ask_member(strategy: Strategy, position: Sequence[float], run: ShortcutGA, index: int,
               ga: GAConfig) -> tuple[ShortcutGA, Genome | None]:  # fmt: skip
    """The run with member `index` asked (and its new genome) or settled without an ask (and None)."""
    for attempt in range(REVARY_ATTEMPTS + 1):
        genome = member_genome(strategy, position, run, index)
        if strategy.claim(genome):
            return run.with_asked(index), genome
        if attempt < REVARY_ATTEMPTS:
            run = run.with_bits(index, revary(run.population[index], ga, strategy.rng))
    strategy.unfilled()
    score = strategy.score_of(genome)
    return (run.with_score(index, score) if score is not None else run.with_asked(index)), None


def member_key(strategy: Strategy, position: Sequence[float], run: ShortcutGA, index: int) -> str:
    """`member_genome(...).key`, remembered. An asynchronous tell looks for the told genome among the waiting
    members of every particle; building each of their genomes again (decode, canonical JSON, sha256) took most
    of the driver's time per result at 32 particles (4 ms), while the slots waited for new work."""
    memo = strategy.member_keys
    where = (tuple(position), run.layers, run.population[index])
    key = memo.get(where)
    if key is None:
        if len(memo) >= MEMBER_KEYS_KEPT:
            memo.clear()
        key = memo[where] = member_genome(strategy, position, run, index).key
    return key


def score_waiting(strategy: Strategy, position: Sequence[float], run: ShortcutGA,
                  told: dict[str, Score]) -> ShortcutGA:  # fmt: skip
    """The run with every asked, unscored member whose genome was just told scored."""
    for index, (score, asked) in enumerate(zip(run.scores, run.asked, strict=True)):
        if asked and score is None:
            key = member_key(strategy, position, run, index)
            if key in told:
                run = run.with_score(index, told[key])
    return run


def unask(strategy: Strategy, position: Sequence[float], run: ShortcutGA, keys: Collection[str]) -> ShortcutGA:
    """The run with every asked, unscored member whose genome is among `keys` (withdrawn untrained) back to
    unasked: it is handed out again by a later draw, so the generation never waits for a result that will not
    come. A member that only shared another's ask (its genome in flight elsewhere) is unasked too."""
    asked = list(run.asked)
    for index, (score, was_asked) in enumerate(zip(run.scores, run.asked, strict=True)):
        if was_asked and score is None and member_key(strategy, position, run, index) in keys:
            asked[index] = False
    return replace(run, asked=tuple(asked))


def known_scorer(strategy: Strategy, position: Sequence[float],
                 layers: Sequence[int]) -> Callable[[str], Score | None]:  # fmt: skip
    """For `ShortcutGA.start`: the known score of a string at this position, None when not evaluated."""
    return lambda bits: strategy.score_of(strategy.space.genome(list(position), split(bits, layers)))
