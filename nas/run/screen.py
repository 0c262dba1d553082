"""Predictor screening (`search.screen`): the strategy proposes more genomes than there are free slots, and a
predictor fitted on the run's own finished results picks which of them to train (pre-selection, as in
surrogate-assisted evolution and BANANAS).

The predictor is a scikit-learn `RandomForestRegressor` (`TREES` trees, `n_jobs=1`, `random_state` from the run
seed) on a genome's features (`features`): per block its layers, growth rate, shortcut bits on and their density
(bits on over bits), the log10 learning rate when the space searches one, and log10 of the parameters and FLOPs
of the network the run's objective builds from it (`nas.evaluate.constraints.genome_cost`, analytic: no torch).
It is fitted on every ok result the strategy has been told, sorted by genome key, so a fit depends on the set
of results alone and not on the order in which they arrived; it is refitted when a pick needs it, on the results
of the first `fit_point(n)` of the n tells so far, which grows by a tenth at a time (`REFIT_FRACTION`).
Failures teach it nothing (a failed genome is not a low fitness).

Where it acts (`nas.run.replay.top_up`, live and in replay alike): once `search.screen.after` ok results are
known, an ask for n free slots asks the strategy for `factor` x n; the n of highest predicted fitness are kept
(ties: ask order) and the rest are withdrawn (`Strategy.withdraw`): never trained, never told, no score
recorded, free to be proposed again. The strategy learns from real results only. Before `after` results every
proposal is trained, as without a screen.

Async only (`nas.config.check_screen` refuses it in sync): a sync batch is the strategy's whole draw (a swarm, a
generation), told whole in ask order, and asking a batch `factor` times as large would change what a batch is;
the sync guarantee (same seed, same search whatever the number of workers) holds because the batch is the
strategy's alone. In async one process (`--workers 0`) the same seed gives the same log with a screen too. One
objective only: the forest predicts fitness, not a front.

Crash safety: the predictor is never checkpointed. A resume rebuilds it from the results the checkpoint had
told (`learn_all`), and the replay of the log lines after the checkpoint feeds it each result as it tells it,
so every pick is made again from the same results and the same strategy state, and is the same. Withdrawn
genomes are not in flight, so a checkpoint holds none of them; a resume never trains one. The checkpoint keeps
`screened`, the count of genomes withdrawn so far, which TensorBoard shows as `search/screened`.
"""

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from nas.config import ScreenConfig
from nas.evaluate.result import Result
from nas.genome.genome import Genome

log = logging.getLogger(__name__)

TREES = 64  # a fit on a few hundred results takes about 0.1 s on one core
# The forest is refitted as the told results grow by this fraction: on the first `fit_point(n)` of the n results
# told so far, a count that depends on n alone. A driver with 1,000 results pays a fit every 100 results, not
# every result, and a resumed run, which relearns the told results in their order, fits on the same results as
# the live run at every pick.
REFIT_FRACTION = 0.1
Sample = tuple[list[float], float]  # a genome's features and its fitness
Cost = Callable[[Genome], tuple[int, int]]  # (params, flops) of the network a genome describes


def features(genome: Genome, cost: Cost | None = None) -> list[float]:
    """The predictor's view of a genome: per block layers, growth rate, shortcut bits on and their density;
    then the log10 learning rate (when searched) and log10 params and FLOPs (when `cost` is given)."""
    row: list[float] = []
    for block in genome.blocks:
        on = block.shortcuts.count("1")
        row += [block.layers, block.growth_rate, on, on / max(1, len(block.shortcuts))]
    if genome.learning_rate is not None:
        row.append(math.log10(genome.learning_rate))
    if cost is not None:
        params, flops = cost(genome)
        row += [math.log10(1 + params), math.log10(1 + flops)]
    return row


def random_state(seed: int) -> int:
    """The forest's seed, from the run's: fixed for a run, different between seeds (numpy takes < 2**32)."""
    return (seed * 2_654_435_761 + 97) % 2**32


class Screen:
    """The predictor of one search and the picks it makes (module docstring)."""

    def __init__(self, config: ScreenConfig, seed: int, cost: Cost | None = None):
        self.factor = config.factor
        self.after = config.after
        self.seed = random_state(seed)
        self.cost = cost
        self.samples: dict[str, Sample] = {}  # genome key -> (features, fitness)
        self.told: list[tuple[str, Sample | None]] = []  # every tell in order: key, sample
        self.screened = 0  # genomes withdrawn untrained, over the whole run (the checkpoint keeps it)
        self.model: Any = None
        self.fitted: int | None = None  # the number of tells the model was fitted on

    def learn(self, result: Result) -> None:
        """A result told to the strategy: an ok one with a finite fitness is a sample (replacing an earlier
        result of the same genome); anything else removes that genome's sample."""
        sample = None
        if result.ok and result.fitness is not None and math.isfinite(result.fitness):
            sample = (features(Genome.from_dict(result.genome), self.cost), result.fitness)
        self.told.append((result.key, sample))
        replay_into(self.samples, [(result.key, sample)])

    def learn_all(self, results: Iterable[Result]) -> None:
        for result in results:
            self.learn(result)

    def ready(self) -> bool:
        """Whether enough results are known for the predictor to pick."""
        return len(self.samples) >= self.after

    def ask_size(self, free: int) -> int:
        """How many genomes to ask for `free` slots: `factor` times as many once the predictor is ready."""
        return free * self.factor if self.ready() else free

    def predict(self, genomes: Sequence[Genome]) -> list[float]:
        """Predicted fitness of each genome, from a forest fitted on the results of the first `fit_point` tells
        (all of them if those hold fewer than two samples)."""
        point = fit_point(len(self.told))
        if self.model is None or point != self.fitted:
            samples = replay_into({}, self.told[:point])
            self.model = self.fit(samples if len(samples) >= 2 else self.samples)
            if self.fitted is None:
                log.info("screen: the predictor picks what to train from here on (%d results known)", len(samples))
            self.fitted = point
        return [float(v) for v in self.model.predict([features(g, self.cost) for g in genomes])]

    def fit(self, samples: dict[str, Sample]) -> Any:
        from sklearn.ensemble import RandomForestRegressor  # imported only by a search that screens

        keys = sorted(samples)
        model = RandomForestRegressor(n_estimators=TREES, random_state=self.seed, n_jobs=1)
        model.fit([samples[k][0] for k in keys], [samples[k][1] for k in keys])
        return model

    def pick(self, genomes: Sequence[Genome], n: int) -> list[Genome]:
        """The `n` genomes of highest predicted fitness (ties: the earlier asked), in ask order; all of them
        when there are no more than `n`."""
        if len(genomes) <= n:
            return list(genomes)
        predicted = self.predict(genomes)
        order = sorted(range(len(genomes)), key=lambda i: (-predicted[i], i))
        chosen = set(order[: max(0, n)])
        return [g for i, g in enumerate(genomes) if i in chosen]


def fit_point(n: int) -> int:
    """The number of tells a fit uses when n have been told: the largest of 1, 2, ... (each step
    `REFIT_FRACTION` of the last, at least 1) that is at most n; 0 for n = 0."""
    point = 0 if n == 0 else 1
    while point and point + max(1, math.ceil(REFIT_FRACTION * point)) <= n:
        point += max(1, math.ceil(REFIT_FRACTION * point))
    return point


def replay_into(samples: dict[str, Sample], tells: Iterable[tuple[str, Sample | None]]) -> dict[str, Sample]:
    """`samples` after `tells` in order: an ok result's sample replaces its genome's, a failure removes it."""
    for key, sample in tells:
        if sample is None:
            samples.pop(key, None)
        else:
            samples[key] = sample
    return samples


def build_screen(config: ScreenConfig | None, seed: int, cost: Cost | None = None) -> Screen | None:
    """The screen of a search's `search.screen`, None when it has none."""
    return None if config is None else Screen(config, seed, cost)
