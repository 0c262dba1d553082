"""Cheaper evaluations on the real-data surrogate: the compute each arm needs to reach the full-fidelity arm's best.

The surrogate table (`benchmarks/data/surrogate_cifar10_bench.csv`, the `cifar10_bench` task) holds each
network's validation accuracy after every epoch of one 4-epoch one-cycle training (`acc_e1` .. `acc_e4`). Here
one model per epoch column is fitted (`surrogate_model.fit` on the base rows with the accuracies cut at that
epoch: the same features and gradient-boosted trees; the epoch-4 model is exactly search_quality's surrogate),
and a rung's value is the model of its epoch plus a training noise of the size the table's two-seed pairs show:
per epoch, the standard deviation of the seed difference over sqrt(2) (one training's share, as
`surrogate_model.seed_noise`), with the correlation between epochs those differences show, so that one training's
epochs 3 and 4 are off together as a real training's are (`--independent-noise`: uncorrelated). The noise is
drawn from the genome's key and the run's seed (a rung read at epoch e of that run is one fixed number), so
every run is reproducible. That value at epoch e is the truncated-schedule `accuracy` signal: the network read
at epoch e of the full 4-epoch schedule.

Arms (each strategy driven in-process, without the search loop, as `search_quality.py` does; compute counts
training epochs):
- `full`: sync batches as `search_quality.drive_sync`, every candidate trained 4 epochs (4 a candidate);
- `fidelity`: successive halving within each sync batch as `nas.run.schedulers.BatchHalving` does it:
  `min_epochs` 1, eta 3, rungs 1, 3, 4; the best max(1, n // 3) of a rung (by its `accuracy` value) continue,
  costing only the new epochs (1, +2, +1); the strategy is told each candidate at its highest rung, ranked by
  rung then accuracy (`nas.run.fidelity.told_fitness`);
- `full-async`, `screen`: `search_quality.drive_async` (4 slots, log-normal durations) without and with the
  predictor screen (factor 3, after 20), every candidate trained 4 epochs;
- `asha`, `screen+fidelity`: ASHA's stopping form (`nas.run.fidelity.Asha`) in the same simulated async driver,
  a candidate holding its slot from its first rung to its last, a rung lasting its epochs times a log-normal
  draw; with the screen learning what the strategy is told, as the live loop's does.
`fidelity-restart` (each rung a complete schedule of its own epochs) is not simulated: the table holds only the
epochs of a 4-epoch schedule, no complete 1- or 3-epoch trainings.

The best a run counts is its best epoch-4 value as the strategy saw it (noisy); the figure reported is the
noise-free value of that network (the epoch-4 model, as search_quality's `true_mean`): that is what reaching
"the same best network" means. A fidelity arm's candidate budget (`search.budget.evaluations`, which sets
hgapso's exploitation phase) is the number of candidates that a pilot run of seed 0 started within the largest
compute; every run stops starting candidates there. A sync arm counts an evaluation's compute when it is
trained, an async arm when the rung finishes.

Caveats: the table holds about 100 networks so far (and 19 trained twice), so the per-epoch models and the
noise are only as good as that; rung values of networks far from the table's are extrapolations of trees, and
the noise correlation comes from 19 pairs. The surrogate knows no learning curve beyond what each epoch's model
learnt, so a fidelity arm's promotions are as good as the epoch-1 and epoch-3 models rank what the epoch-4 model
ranks, plus noise. Each arm runs once per seed at the largest compute and is read at the smaller ones (a run
planned for a smaller budget would enter hgapso's exploitation phase earlier).

    nice -n 10 .venv/bin/python benchmarks/fidelity_surrogate.py --seeds 20 --strategies hgapso   # 330 s, load 5

The screen arms use `QuickScreen`, the live `Screen` with its forest's mean taken tree by tree (the same numbers,
without a job dispatch per tree), and the rung values come from `FlatTrees`, the epoch models walked with numpy
(the same numbers as their `predict`, `tests/test_fidelity_surrogate.py`): both only to keep a run in minutes.
"""

import argparse
import hashlib
import heapq
import json
import math
import random
import statistics
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.search_quality import (  # noqa: E402
    Evaluator,
    Run,
    drive_async,
    drive_sync,
    result_of,
    screen_of,
    screened_ask,
    search_section,
    surrogate_objective,
)
from benchmarks.surrogate_model import Row, Surrogate, base_rows, features, fit, read_table  # noqa: E402
from nas.config import ScreenConfig  # noqa: E402
from nas.genome.genome import Genome  # noqa: E402
from nas.run.fidelity import Asha, promote, rung_epochs, told_fitness  # noqa: E402
from nas.run.screen import (  # noqa: E402
    Screen,  # noqa: E402
    fit_point,
    replay_into,
)
from nas.run.screen import features as screen_features  # noqa: E402
from nas.strategies import build_strategy  # noqa: E402
from nas.strategies.strategy import Strategy  # noqa: E402

TABLE = ROOT / "benchmarks" / "data" / "surrogate_cifar10_bench.csv"
EPOCHS = 4
ARMS = ["full", "fidelity", "full-async", "screen", "asha", "screen+fidelity"]
FIDELITY_ARMS = {"fidelity", "asha", "screen+fidelity"}
ASYNC_ARMS = {"full-async", "screen", "asha", "screen+fidelity"}


def clip(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def pair_noise(rows: list[Row]) -> tuple[list[float], np.ndarray, int]:
    """(standard deviation of the seed difference at each epoch, the correlation matrix of those differences
    across epochs, the number of pairs) over the networks the table trained with two seeds."""
    by_key: dict[str, list[Row]] = {}
    for r in rows:
        if r.final is not None and all(a is not None for a in r.accuracies):
            by_key.setdefault(r.key, []).append(r)
    diffs = []
    for pair in by_key.values():
        if len(pair) >= 2:
            a, b = sorted(pair, key=lambda r: r.train_seed)[:2]
            diffs.append([x - y for x, y in zip(a.accuracies, b.accuracies, strict=True)])  # type: ignore[operator]
    if len(diffs) < 3:
        raise ValueError("the table holds fewer than 3 networks trained with two seeds: no noise estimate")
    d = np.array(diffs)
    return [float(s) for s in d.std(axis=0, ddof=1)], np.corrcoef(d, rowvar=False), len(diffs)


def epoch_models(rows: list[Row], epochs: int) -> list[Surrogate]:
    """One model per epoch column: `fit` on the base rows with their accuracies cut after that epoch."""
    base = base_rows(rows)
    return [fit([replace(r, accuracies=r.accuracies[:e]) for r in base]) for e in range(1, epochs + 1)]


class FlatTrees:
    """A fitted `HistGradientBoostingRegressor` (numeric features, one output) as flat node arrays, predicted by
    walking every tree at once with numpy: the same sums in the same order as the model's `predict`, which walks
    its 300 trees one Python call at a time (5 ms a call, whatever the number of rows, where this takes 0.3)."""

    def __init__(self, model: Any):
        trees = [iteration[0].nodes for iteration in model._predictors]
        starts = np.cumsum([0] + [len(t) for t in trees[:-1]])
        nodes = np.concatenate(trees)
        shift = np.repeat(starts, [len(t) for t in trees])
        self.roots = starts
        self.leaf = nodes["is_leaf"].astype(bool)
        self.feature = nodes["feature_idx"].astype(np.intp)
        self.threshold = nodes["num_threshold"]
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.left = nodes["left"].astype(np.intp) + shift
        self.right = nodes["right"].astype(np.intp) + shift
        self.value = nodes["value"]
        self.baseline = model._baseline_prediction.ravel()[0]

    def predict(self, rows: list[list[float]]) -> list[float]:
        x = np.asarray(rows, dtype=np.float64)
        node = np.repeat(self.roots[:, None], len(x), axis=1)
        columns = np.arange(len(x))[None, :]
        while not self.leaf[node].all():
            v = x[columns, self.feature[node]]
            go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
            node = np.where(self.leaf[node], node, np.where(go_left, self.left[node], self.right[node]))
        out = np.zeros(len(x)) + self.baseline
        for leaves in self.value[node]:  # tree by tree, as the model adds them
            out += leaves
        return out.tolist()


class EpochSurrogate:
    """The per-epoch models and noise of a table: `value(genome, epoch, seed)` is one training's accuracy at that
    epoch of the full schedule in run `seed`, `true(genome)` the noise-free final accuracy. Predictions are
    cached by key (a tree ensemble's one-row predict is the slow part; `prefetch` predicts many rows at once)."""

    def __init__(self, rows: list[Row], cost: Callable[[Genome], tuple[int, int]], independent: bool = False):
        self.models = epoch_models(rows, EPOCHS)
        self.flat = [FlatTrees(m.model) for m in self.models]
        self.pair_std, self.correlation, self.pairs = pair_noise(rows)
        self.noise_std = [s / math.sqrt(2) for s in self.pair_std]  # one training's share of the difference
        mix = np.eye(EPOCHS) if independent else np.linalg.cholesky(self.correlation)
        self.mix = (mix * np.array(self.noise_std)[:, None]).tolist()
        self.cost = cost
        self.means: dict[str, list[float]] = {}

    def prefetch(self, genomes: Sequence[Genome]) -> None:
        todo = list({g.key: g for g in genomes if g.key not in self.means}.values())
        if not todo:
            return
        x = [features(g.to_dict(), *self.cost(g)) for g in todo]
        columns = [m.predict(x) for m in self.flat]
        for i, g in enumerate(todo):
            self.means[g.key] = [col[i] for col in columns]

    def noise(self, genome: Genome, seed: int) -> list[float]:
        digest = hashlib.sha256(f"epochs:{seed}:{genome.key}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        z = [rng.gauss(0.0, 1.0) for _ in range(EPOCHS)]
        return [sum(m * zj for m, zj in zip(row, z, strict=True)) for row in self.mix]

    def value(self, genome: Genome, epoch: int, seed: int) -> float:
        self.prefetch([genome])
        return clip(self.means[genome.key][epoch - 1] + self.noise(genome, seed)[epoch - 1])

    def true(self, genome: Genome) -> float:
        self.prefetch([genome])
        return clip(self.means[genome.key][-1])


class Prefetching:
    """A strategy whose asks are predicted in one call per model (a batch of rows costs about what one does)."""

    def __init__(self, strategy: Strategy, surrogate: EpochSurrogate):
        self.strategy = strategy
        self.surrogate = surrogate

    def ask(self, n: int | None = None) -> list[Genome]:
        genomes = self.strategy.ask(n)
        self.surrogate.prefetch(genomes)
        return genomes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.strategy, name)


class QuickScreen(Screen):
    """`Screen` whose forest predicts tree by tree in the forest's own order of summation (the same numbers as
    `RandomForestRegressor.predict`, without its per-tree job dispatch, which cost 40 ms a pick here)."""

    def predict(self, genomes: Sequence[Genome]) -> list[float]:
        point = fit_point(len(self.told))
        if self.model is None or point != self.fitted:  # refitted when and on what Screen.predict refits
            samples = replay_into({}, self.told[:point])
            self.model = self.fit(samples if len(samples) >= 2 else self.samples)
            self.fitted = point
        x = np.asarray([screen_features(g, self.cost) for g in genomes], dtype=np.float32)
        total = np.zeros(len(genomes))
        for tree in self.model.estimators_:
            total += tree.tree_.predict(x)[:, 0]
        return [float(v) for v in total / len(self.model.estimators_)]


@dataclass
class Trace:
    """A run's compute and its full-budget results: (compute, best value seen, true value of that network) each
    time the best seen rises, and how many candidates it started."""

    compute: int = 0
    best: float = -math.inf
    events: list[tuple[int, float, float]] = field(default_factory=list)
    candidates: int = 0

    def full_result(self, value: float, true: float) -> None:
        if value > self.best:
            self.best = value
            self.events.append((self.compute, value, true))

    def at(self, compute: int) -> tuple[float, float] | None:
        """(best seen, its true value) within `compute` epochs; None before the first full-budget result."""
        i = bisect_right([e[0] for e in self.events], compute)
        return self.events[i - 1][1:] if i else None


@dataclass
class Landscape:
    """One run's view of the surrogate: its seed fixes the noise."""

    surrogate: EpochSurrogate
    seed: int

    def value(self, genome: Genome, epoch: int) -> float:
        return self.surrogate.value(genome, epoch, self.seed)

    def true(self, genome: Genome) -> float:
        return self.surrogate.true(genome)


@dataclass
class FullEvaluator(Evaluator):
    """search_quality's evaluator (cache, budget in distinct genomes) where each evaluation trains all 4 epochs."""

    land: Landscape | None = None
    trace: Trace = field(default_factory=Trace)

    def __call__(self, genome: Genome) -> float:
        assert self.land is not None
        if genome.key not in self.cache:
            self.trace.compute += EPOCHS
            self.trace.candidates += 1
            self.trace.full_result(self.land.value(genome, EPOCHS), self.land.true(genome))
        return super().__call__(genome)

    def run(self) -> Run:
        return Run(self.curve)


class FullTraining:
    """The objective `Evaluator` calls: the 4-epoch value of a genome."""

    def __init__(self, land: Landscape):
        self.land = land

    def __call__(self, genome: Genome) -> Any:
        return result_of(genome, self.land.value(genome, EPOCHS))


def halving_batch(genomes: list[Genome], land: Landscape, rungs: list[int], eta: int, trace: Trace) -> dict[str, float]:
    """Successive halving of one batch's new candidates; the fitness each is told (rung, then accuracy)."""
    told: dict[str, float] = {}
    alive = genomes
    for level, epochs in enumerate(rungs):
        values = [land.value(g, epochs) for g in alive]
        for g, v in zip(alive, values, strict=True):
            trace.compute += epochs - (rungs[level - 1] if level else 0)
            told[g.key] = told_fitness(v, level, len(rungs))
            if epochs == rungs[-1]:
                trace.full_result(v, land.true(g))
        alive = [alive[i] for i in promote(values, eta)]
    return told


def drive_halving(strategy: Strategy, land: Landscape, candidates: int, compute: int, rungs: list[int],
                  eta: int) -> Trace:  # fmt: skip
    """The sync loop with successive halving (BatchHalving): ask, halve the batch's new candidates, tell the
    whole batch in ask order (repeats answered at their highest rung). A batch the budget cuts is not told."""
    trace = Trace()
    known: dict[str, float] = {}
    while trace.compute < compute and len(known) < candidates and not strategy.done():
        genomes = strategy.ask()
        if not genomes:
            break
        land.surrogate.prefetch(genomes)
        new = list({g.key: g for g in genomes if g.key not in known}.values())
        if len(new) > candidates - len(known):
            break
        trace.candidates += len(new)
        known |= halving_batch(new, land, rungs, eta, trace)
        strategy.tell([result_of(g, known[g.key]) for g in genomes])
    return trace


@dataclass
class Slots:
    """The simulated async driver's slots: rung jobs finishing at log-normal times proportional to their epochs."""

    seed: int
    running: list[tuple[float, int, Genome, int]] = field(default_factory=list)
    clock: float = 0.0
    order: int = 0

    def __post_init__(self) -> None:
        self.durations = random.Random(self.seed + 7919)

    def start(self, genome: Genome, level: int, epochs: int) -> None:
        finish = self.clock + epochs * self.durations.lognormvariate(0, 0.7)
        heapq.heappush(self.running, (finish, self.order, genome, level))
        self.order += 1

    def next(self) -> tuple[Genome, int]:
        self.clock, _, genome, level = heapq.heappop(self.running)
        return genome, level


def drive_asha(strategy: Strategy, land: Landscape, candidates: int, compute: int, rungs: list[int], eta: int,
               slots: int, seed: int, screen: Screen | None) -> Trace:  # fmt: skip
    """The async loop with ASHA's stopping form: a candidate keeps its slot from its first rung to its last, each
    rung result is decided on arrival, and a stopped candidate is told at its rung (and taught to the screen)."""
    trace, asha, jobs = Trace(), Asha(len(rungs), eta), Slots(seed)
    known: dict[str, float] = {}
    flight: set[str] = set()
    idle_asks = 0
    while True:
        free = min(slots - len(jobs.running), candidates - trace.candidates)
        if free > 0 and trace.compute < compute and not strategy.done() and idle_asks < 100:
            asked = screened_ask(strategy, screen, free, known)
            land.surrogate.prefetch(asked)
            fresh = list({g.key: g for g in asked if g.key not in known and g.key not in flight}.values())
            idle_asks = 0 if fresh else idle_asks + 1
            for g in fresh:
                trace.candidates += 1
                flight.add(g.key)
                jobs.start(g, 0, rungs[0])
            for g in asked:
                if g.key in known:  # a repeat: answered at once at its highest rung
                    strategy.tell([result_of(g, known[g.key])])
            if fresh or asked:
                continue
        if not jobs.running:
            break
        genome, level = jobs.next()
        value = land.value(genome, rungs[level])
        trace.compute += rungs[level] - (rungs[level - 1] if level else 0)
        if level == len(rungs) - 1:
            trace.full_result(value, land.true(genome))
        if asha.decide(level, value):
            jobs.start(genome, level + 1, rungs[level + 1] - rungs[level])
            continue
        flight.discard(genome.key)
        known[genome.key] = told_fitness(value, level, len(rungs))
        result = result_of(genome, known[genome.key])
        strategy.tell([result])
        if screen is not None:
            screen.learn(result)
    return trace


def one_run(arm: str, strategy_name: str, seed: int, candidates: int, args: argparse.Namespace,
            surrogate: EpochSurrogate) -> Trace:  # fmt: skip
    """One search of `arm` to the largest compute."""
    space, objective = surrogate_objective(args.table)
    compute = max(args.budgets)
    land = Landscape(surrogate, seed)
    search = search_section({"search.budget.evaluations": candidates}, strategy_name)
    strategy: Any = Prefetching(build_strategy(search, space, seed), surrogate)
    screen = None
    if arm.startswith("screen"):
        plain = screen_of("screen", objective, seed, args)
        assert plain is not None
        screen = QuickScreen(ScreenConfig(factor=args.screen_factor, after=args.screen_after), seed, plain.cost)
    rungs = rung_epochs(1, args.eta, EPOCHS)
    if arm == "fidelity":
        return drive_halving(strategy, land, candidates, compute, rungs, args.eta)
    if arm in FIDELITY_ARMS:
        return drive_asha(strategy, land, candidates, compute, rungs, args.eta, args.slots, seed, screen)
    evaluate = FullEvaluator(FullTraining(land), compute // EPOCHS, land=land)  # type: ignore[arg-type]
    if arm == "full":
        drive_sync(strategy, evaluate)
    else:
        drive_async(strategy, evaluate, args.slots, seed, screen)
    return evaluate.trace


def candidate_budget(arm: str, strategy_name: str, args: argparse.Namespace, surrogate: EpochSurrogate) -> int:
    """How many candidates a run of `arm` gets: the largest compute's worth of full trainings, or for a fidelity
    arm as many as a pilot of seed 0 with no candidate limit started within the largest compute."""
    compute = max(args.budgets)
    if arm not in FIDELITY_ARMS:
        return compute // EPOCHS
    return one_run(arm, strategy_name, 0, compute, args, surrogate).candidates


def mean_curve(traces: list[Trace], compute: int) -> list[float]:
    """The mean over runs of the true value of the best seen, at every compute 1..`compute` (-inf while some run
    has no full-budget result yet)."""
    out = []
    for c in range(1, compute + 1):
        points = [t.at(c) for t in traces]
        out.append(statistics.fmean(p[1] for p in points) if all(points) else -math.inf)  # type: ignore[index]
    return out


def first_reach(curve: list[float], target: float) -> int | None:
    """The first compute (1-based) at which `curve` reaches `target`; None when it never does."""
    return next((c for c, v in enumerate(curve, 1) if v >= target - 1e-12), None)


def reference_arm(arm: str, arms: list[str]) -> str:
    """What an arm is compared with: the full-fidelity arm of its own mode when it ran, else `full`."""
    return "full-async" if arm in ASYNC_ARMS and "full-async" in arms else "full"


def report(strategy_name: str, arms: list[str], traces: dict[str, list[Trace]], budgets: list[int]) -> list[dict]:
    compute = max(budgets)
    curves = {arm: mean_curve(traces[arm], compute) for arm in arms}
    rows = []
    for arm in arms:
        row: dict[str, Any] = {"strategy": strategy_name, "arm": arm, "seeds": len(traces[arm])}
        row["candidates"] = statistics.fmean(t.candidates for t in traces[arm])
        for b in budgets:
            points = [t.at(b) for t in traces[arm]]
            done = [p for p in points if p is not None]
            row[f"true_{b}"] = statistics.fmean(p[1] for p in done) if len(done) == len(points) else None
            row[f"true_std_{b}"] = statistics.pstdev(p[1] for p in done) if len(done) == len(points) else None
            row[f"seen_{b}"] = statistics.fmean(p[0] for p in done) if len(done) == len(points) else None
        ref = reference_arm(arm, arms)
        if ref in curves:
            row["reference"] = ref
            for b in sorted({min(budgets[-1], 400), compute}):
                target = curves[ref][b - 1]
                reached = first_reach(curves[arm], target)
                row[f"reach_{b}"] = None if reached is None else reached / b
                row[f"reach_{b}_target"] = target
        rows.append(row)
    return rows


def print_table(rows: list[dict], budgets: list[int], noise: EpochSurrogate) -> None:
    pairs = ", ".join(f"e{e + 1} {s:.4f}" for e, s in enumerate(noise.pair_std))
    print(f"\nseed difference std over {noise.pairs} pairs: {pairs}")
    print("noise of one training (/sqrt 2): " + ", ".join(f"e{e + 1} {s:.4f}" for e, s in enumerate(noise.noise_std)))
    print("correlation of the differences across epochs:")
    for line in noise.correlation:
        print("   " + " ".join(f"{v:6.2f}" for v in line))
    compute = max(budgets)
    marks = sorted({min(compute, 400), compute})

    def cell(v: float | None, fmt: str = ".4f") -> str:
        return "-" if v is None else format(v, fmt)

    head = "".join(f"{b:>9}" for b in budgets)
    reach = "".join(f"{'reach@' + str(b):>11}" for b in marks)
    print("\nmean true best (noise-free epoch-4 accuracy of the best seen) against compute in epochs")
    print(f"{'strategy':<23}{'arm':<17}{'cands':>6}{head}{reach}  reference")
    for r in rows:
        values = "".join(f"{cell(r[f'true_{b}']):>9}" for b in budgets)
        fractions = "".join(f"{cell(r.get(f'reach_{b}'), '.3f'):>11}" for b in marks)
        print(f"{r['strategy']:<23}{r['arm']:<17}{r['candidates']:>6.0f}{values}{fractions}  {r.get('reference', '')}")
    print("\nmean best seen (noisy, as told)")
    for r in rows:
        values = "".join(f"{cell(r[f'seen_{b}']):>9}" for b in budgets)
        print(f"{r['strategy']:<23}{r['arm']:<17}{'':>6}{values}")
    print(f"reach@B: the first compute at which the arm's mean true best reaches its reference arm's at B epochs, as a "
          f"fraction of B (- : not within {compute})")  # fmt: skip


def strategy_rows(name: str, args: argparse.Namespace, surrogate: EpochSurrogate, started: float) -> list[dict]:
    """Every arm of one strategy over the seeds, summarised."""
    traces: dict[str, list[Trace]] = {}
    for arm in args.arms:
        candidates = candidate_budget(arm, name, args, surrogate)
        traces[arm] = [one_run(arm, name, seed, candidates, args, surrogate) for seed in range(args.seeds)]
        print(f"  {name:<22} {arm:<16} {candidates} candidates a run, {time.time() - started:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
    return report(name, args.arms, traces, args.budgets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 200, 400, 800, 1600], help="epochs")
    parser.add_argument("--strategies", nargs="+", default=["hgapso"], choices=["hgapso", "regularized-evolution"])
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--slots", type=int, default=4, help="concurrent evaluations of the async arms")
    parser.add_argument("--screen-factor", type=int, default=3)
    parser.add_argument("--screen-after", type=int, default=20)
    parser.add_argument("--independent-noise", action="store_true", help="uncorrelated noise across epochs")
    args = parser.parse_args()
    args.budgets = sorted(args.budgets)
    started = time.time()
    _, objective = surrogate_objective(args.table)
    surrogate = EpochSurrogate(read_table(args.table), objective.landscape.cost, args.independent_noise)
    with threadpool_limits(limits=1):  # one thread: the trees' predicts are small (surrogate_model.Surrogate)
        rows = [row for name in args.strategies for row in strategy_rows(name, args, surrogate, started)]
    print_table(rows, args.budgets, surrogate)
    record = {
        "benchmark": "fidelity_surrogate",
        "table": str(args.table.relative_to(ROOT) if args.table.is_relative_to(ROOT) else args.table),
        "networks": len(base_rows(read_table(args.table))),
        "seeds": args.seeds,
        "budgets_epochs": args.budgets,
        "eta": args.eta,
        "slots": args.slots,
        "noise": {
            "pair_std": surrogate.pair_std,
            "per_training": surrogate.noise_std,
            "pairs": surrogate.pairs,
            "correlated": not args.independent_noise,
        },  # fmt: skip
        "results": rows,
        "seconds": round(time.time() - started, 1),
        **machine(),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
