"""Search quality: every strategy and external peer at the same evaluation budget, over several seeds.

(a) `--objective synthetic` (default): the smoke config's space (`densenet_small`) on every landscape of the
    synthetic objective (`fitness.landscape`: bump, epistatic, noisy, cost), >= 20 seeds. The strategies are
    driven in-process as the driver drives them (ask, answer repeats from a cache, evaluate the rest, tell in
    ask order; the budget counts distinct genomes; a batch cut by the budget is not told), with no files, so
    a whole table takes minutes. `--mode async` simulates an asynchronous driver instead: `--slots`
    evaluations run at once, each with a random duration (log-normal, seeded), and the first to finish is told
    and its slot refilled with `ask(free)`. The peers (Optuna TPE, nevergrad DiscreteOnePlusOne and NGOpt;
    `benchmarks/peers.py`, the `bench` extra) search the same space with the same budget definition, one
    candidate at a time or, with `--peer-workers N`, in batches of N in each library's parallel mode. A
    strategy runs once per budget (its `search.budget.evaluations` set to it: hgapso's exploitation phase is a
    fraction of it); a peer once per seed at the largest budget, the best-so-far at each smaller budget read
    from it (a peer costs seconds a run where a strategy costs milliseconds). A method `NAME+screen` is strategy
    NAME with predictor screening (`search.screen`, `nas.run.screen.Screen`: it asks `--screen-factor` times the
    free slots once `--screen-after` results are known and a forest fitted on the told results picks which to
    evaluate, the rest withdrawn), async only, as the live loop does it.
(b) `--objective real`: `search_configs/cifar10_jpeg_lowfi.yaml` with real training through `nas search`
    (hours on a CPU).
Prints tables (mean, standard deviation, min and max of the best fitness per method, landscape and budget; the
repeat counts of each strategy) and one JSON line with the machine and the date, and writes a PNG of mean
best-so-far against evaluations.

    .venv/bin/python benchmarks/search_quality.py --seeds 20 --budgets 100 200 400
    .venv/bin/python benchmarks/search_quality.py --mode async --slots 8 --methods hgapso regularized-evolution
    .venv/bin/python benchmarks/search_quality.py --mode async --slots 4 --methods regularized-evolution \
        regularized-evolution+screen --surrogate benchmarks/data/surrogate_cifar10_bench.csv
    .venv/bin/python benchmarks/search_quality.py --objective real --seeds 3 --budgets 40 --out runs/quality-real
"""

import argparse
import contextlib
import heapq
import io
import json
import random
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.peers import PEERS, run_peer  # noqa: E402
from benchmarks.surrogate_model import SurrogateLandscape, read_table  # noqa: E402
from nas.cli import main as nas_main  # noqa: E402
from nas.config import ScreenConfig, load_config, parse_config  # noqa: E402
from nas.evaluate.constraints import genome_cost  # noqa: E402
from nas.evaluate.landscape_family import FAMILIES, TEST_FROM  # noqa: E402
from nas.evaluate.landscapes import LANDSCAPES  # noqa: E402
from nas.evaluate.synthetic import SyntheticObjective  # noqa: E402
from nas.genome.genome import Genome  # noqa: E402
from nas.genome.space import load_space  # noqa: E402
from nas.model.analytic_cost import analytic_cost  # noqa: E402
from nas.run.replay import screen_out  # noqa: E402
from nas.run.screen import Screen  # noqa: E402
from nas.strategies import build_strategy  # noqa: E402
from nas.strategies.strategy import Strategy  # noqa: E402

STRATEGIES = ["hgapso", "pso", "ga", "random", "regularized-evolution"]
SCREENED = [f"{name}+screen" for name in STRATEGIES]  # with predictor screening (async only)
CONFIGS = {"synthetic": "search_configs/smoke.yaml", "real": "search_configs/cifar10_jpeg_lowfi.yaml"}


def write_config(base: Path, out: Path, strategy: str, budget: int, overrides: dict) -> Path:
    data = yaml.safe_load(base.read_text())
    data["encoding"] = str((base.parent / data["encoding"]).resolve())
    if data.get("dataset", {}).get("root"):
        data["dataset"]["root"] = str((base.parent / data["dataset"]["root"]).resolve())
    data.setdefault("search", {})["strategy"] = strategy
    data["search"]["budget"] = {"evaluations": budget}
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path = out / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def best_so_far(run: Path) -> list[float]:
    curve, best = [], 0.0
    for line in (run / "evaluations.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["status"] == "ok" and r["fitness"] is not None:
            best = max(best, r["fitness"])
        curve.append(best)
    return curve


def run_one(config: Path, run: Path, seed: int, workers: int) -> list[float]:
    """One search to its end: resumed when the folder holds a checkpoint (a finished run returns at once, a
    benchmark stopped halfway goes on), started afresh otherwise."""
    if (run / "checkpoint.json").exists():
        argv = ["resume", str(run)]
    else:
        shutil.rmtree(run, ignore_errors=True)  # stopped before its first checkpoint: nothing to keep
        argv = ["search", str(config), "--run-dir", str(run), "--seed", str(seed)]
    with contextlib.redirect_stdout(io.StringIO()):
        code = nas_main([*argv, "--workers", str(workers)])
    if code != 0:
        raise SystemExit(f"search {run} failed with exit code {code}")
    return best_so_far(run)


@dataclass
class Run:
    """One search on one landscape: best-so-far per evaluation, what the strategy asked and avoided."""

    curve: list[float]
    asked: int = 0  # genomes asked (strategies) or proposed (peers)
    cache_hits: int = 0  # asked genomes that were already evaluated
    avoided: int = 0  # candidates the strategy drew again because they were repeats
    unfilled: int = 0  # slots it left empty
    true_best: float = 0.0  # the noise-free fitness of the best found (differs from the curve on `noisy`)
    best_key: str = ""


@dataclass
class Evaluator:
    """The cache and the budget: each distinct genome is evaluated once and counted."""

    objective: SyntheticObjective
    budget: int
    cache: dict[str, float] = field(default_factory=dict)
    curve: list[float] = field(default_factory=list)
    best: tuple[float, str, Genome] | None = None

    def __call__(self, genome: Genome) -> float:
        if genome.key in self.cache:
            return self.cache[genome.key]
        result = self.objective(genome)
        value = float(result.fitness or 0.0)
        self.cache[genome.key] = value
        if self.best is None or value > self.best[0]:
            self.best = (value, genome.key, genome)
        self.curve.append(self.best[0])
        return value

    def left(self) -> int:
        return self.budget - len(self.cache)

    def run(self) -> Run:
        assert self.best is not None
        value, key, genome = self.best
        true = self.objective.landscape.true_fitness(genome, self.objective(genome).params or 0)
        return Run(self.curve, true_best=true, best_key=key)


def result_of(genome: Genome, value: float):
    from nas.evaluate.result import Result

    return Result(key=genome.key, genome=genome.to_dict(), status="ok", fitness=value, params=None)


def drive_sync(strategy: Strategy, evaluate: Evaluator) -> Run:
    """The driver's loop: ask, evaluate the misses (up to the budget), tell the whole batch in ask order."""
    asked = hits = 0
    while evaluate.left() > 0 and not strategy.done():
        genomes = strategy.ask()
        if not genomes:
            break
        asked += len(genomes)
        hits += sum(g.key in evaluate.cache for g in genomes)
        values = []
        for g in genomes:
            if g.key not in evaluate.cache and evaluate.left() <= 0:
                break
            values.append(evaluate(g))
        if len(values) < len(genomes):
            break  # cut by the budget: not told
        strategy.tell([result_of(g, v) for g, v in zip(genomes, values, strict=True)])
    return finish(strategy, evaluate, asked, hits)


def drive_async(strategy: Strategy, evaluate: Evaluator, slots: int, seed: int, screen: Screen | None = None) -> Run:
    """A simulated asynchronous driver: `slots` evaluations at once with log-normal durations; the first to
    finish is told at once and its slot refilled. With a `screen`, a refill asks `factor` times the free slots
    once the screen is ready, keeps the cache's answers and the screen's picks, and withdraws the rest."""
    clock, asked, hits = 0.0, 0, 0
    durations = random.Random(seed + 7919)
    running: list[tuple[float, int, Genome]] = []
    order = 0
    while True:
        free = min(slots - len(running), evaluate.left() - len(running))
        if free > 0 and not strategy.done():
            for g in screened_ask(strategy, screen, free, evaluate.cache):
                asked += 1
                hits += g.key in evaluate.cache
                heapq.heappush(running, (clock + durations.lognormvariate(0, 0.7), order, g))
                order += 1
        if not running:
            break
        clock, _, genome = heapq.heappop(running)
        result = result_of(genome, evaluate(genome))
        strategy.tell([result])
        if screen is not None:
            screen.learn(result)
    return finish(strategy, evaluate, asked, hits)


def screened_ask(strategy: Strategy, screen: Screen | None, free: int, cache: dict[str, float]) -> list[Genome]:
    """`ask(free)`, or with a screen its `ask_size(free)` asked and `nas.run.replay.screen_out`'s picks kept
    (the cache's hits too: they cost nothing), the others withdrawn, as the live loop's top-up does."""
    asked = strategy.ask(free if screen is None else screen.ask_size(free))
    if screen is None:
        return asked
    screen_out(strategy, screen, [g for g in asked if g.key not in cache], free)
    flying = {g.key for g in strategy.in_flight()}
    return [g for g in asked if g.key in flying]


def finish(strategy: Strategy, evaluate: Evaluator, asked: int, hits: int) -> Run:
    run = evaluate.run()
    run.asked, run.cache_hits = asked, hits
    run.avoided, run.unfilled = strategy.repeats_total.avoided, strategy.repeats_total.unfilled
    return run


SMOKE = ROOT / "search_configs" / "smoke.yaml"


def search_section(overrides: dict, method: str) -> object:
    """The smoke config's `search` section for `method`, with `search.*` overrides."""
    data = yaml.safe_load(SMOKE.read_text())["search"]
    data["strategy"] = method
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if parts[0] != "search":
            continue
        node = data
        for p in parts[1:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return parse_config({"search": data}).search


def instance_of(landscape: str, seed: int, args: argparse.Namespace) -> str:
    """The landscape a run of `seed` searches: a named one, or with `--families` the family's instance of that
    seed in the tuning or the test set (seed i searches instance i: each seed a problem of its own)."""
    if not args.families:
        return landscape
    return f"{landscape}/{(0 if args.instances == 'tuning' else TEST_FROM) + seed}"


SURROGATES: dict[Path, tuple] = {}  # one fit per table and process


def surrogate_objective(table: Path) -> tuple:
    """(space, objective) of the real-data surrogate of `table` (built by surrogate_build.py on the bench task):
    the synthetic objective over the bench space whose landscape is the surrogate plus the measured seed noise."""
    if table not in SURROGATES:
        config = load_config(ROOT / "search_configs" / "cifar10_bench.yaml")
        space = load_space(config.encoding)
        objective = SyntheticObjective(space, (3, 10, config.dataset.resize or 32), 0.0)
        cost = lambda genome: analytic_cost(objective.architecture(genome))  # noqa: E731
        objective.landscape = SurrogateLandscape(read_table(table), cost)
        SURROGATES[table] = (space, objective)
    return SURROGATES[table]


def synthetic_run(method: str, landscape: str, seed: int, budget: int, args: argparse.Namespace,
                  overrides: dict) -> Run:  # fmt: skip
    if landscape == "surrogate":
        space, objective = surrogate_objective(args.surrogate)
    else:
        space = load_space(load_config(SMOKE).encoding)
        objective = SyntheticObjective(space, (1, 10, 8), 0.0, landscape=instance_of(landscape, seed, args))
    evaluate = Evaluator(objective, budget)
    if method in PEERS:
        run_peer(method, space, evaluate, budget, seed, args.peer_workers)
        run = evaluate.run()
        return run
    strategy_name, _, screened = method.partition("+")
    search = search_section({**overrides, "search.budget.evaluations": budget}, strategy_name)
    strategy = build_strategy(search, space, seed)
    if args.mode == "async":
        return drive_async(strategy, evaluate, args.slots, seed, screen_of(screened, objective, seed, args))
    return drive_sync(strategy, evaluate)


def screen_of(variant: str, objective: SyntheticObjective, seed: int, args: argparse.Namespace) -> Screen | None:
    """The predictor screen of a `NAME+screen` method, None for a plain strategy."""
    if variant != "screen":
        return None

    def cost(genome: Genome) -> tuple[int, int]:
        costs = genome_cost(objective, genome)
        return int(costs["params"]), int(costs["flops"])

    return Screen(ScreenConfig(factor=args.screen_factor, after=args.screen_after), seed, cost)


def cached_peer(method: str, landscape: str, seed: int, budget: int, args: argparse.Namespace,
                overrides: dict) -> Run | None:  # fmt: skip
    """A run; a peer's is kept in `--peer-cache` (it depends on neither the strategies nor the overrides, and
    costs seconds where a strategy's costs milliseconds). With `--cached-peers-only`, a peer run not in the
    cache is skipped (None) instead of computed."""
    if method not in PEERS or args.peer_cache is None:
        return synthetic_run(method, landscape, seed, budget, args, overrides)
    workers = f"-workers{args.peer_workers}" if args.peer_workers > 1 else ""
    name = instance_of(landscape, seed, args).replace("/", "-")
    path = args.peer_cache / f"{name}-{method}-seed{seed}-budget{budget}{workers}.json"
    if path.exists():
        return Run(**json.loads(path.read_text()))
    if args.cached_peers_only:
        return None
    run = synthetic_run(method, landscape, seed, budget, args, overrides)
    args.peer_cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(run.__dict__))
    tmp.replace(path)
    return run


def at_budget(curve: list[float], budget: int) -> float:
    return curve[min(budget, len(curve)) - 1]


def plot_landscapes(curves: dict[str, dict[str, list[list[float]]]], path: Path, title: str) -> None:
    """One panel per landscape: mean best-so-far of every method against evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(curves)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.5), dpi=110, squeeze=False)
    for ax, landscape in zip(axes[0], names, strict=True):
        for method, runs in curves[landscape].items():
            n = max(len(c) for c in runs)
            mean = [statistics.fmean(c[min(i, len(c) - 1)] for c in runs) for i in range(n)]
            style = "--" if method in PEERS else "-"
            ax.plot(range(1, n + 1), mean, style, label=method, linewidth=2 if method == "hgapso" else 1.2)
        ax.set_title(landscape)
        ax.set_xlabel("evaluations (distinct genomes)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("best fitness so far (mean over seeds)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot(curves: dict[str, list[list[float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for strategy, runs in curves.items():
        # a search that converged before the budget keeps its best: pad its curve instead of cutting the others
        n = max(len(c) for c in runs)
        mean = [statistics.fmean(c[min(i, len(c) - 1)] for c in runs) for i in range(n)]
        used = statistics.fmean(len(c) for c in runs)
        ax.plot(range(1, n + 1), mean, label=f"{strategy} (n={len(runs)}, {used:.0f} evaluations used on average)")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best validation fitness so far (mean over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.pstdev(values),
        "min": min(values),
        "max": max(values),
    }


def main_synthetic(args: argparse.Namespace, overrides: dict) -> None:
    started = time.time()
    budget = max(args.budgets)
    methods = args.methods or [*STRATEGIES, *PEERS]
    curves: dict[str, dict[str, list[list[float]]]] = {}
    runs: dict[tuple[str, str], list[Run]] = {}  # at the largest budget
    smaller: dict[tuple[str, str, int], list[Run]] = {}  # a strategy's runs at the smaller budgets
    for seed in range(args.seeds):  # seed-major: a benchmark stopped early still compares every method
        for landscape in args.landscapes:
            for method in methods:
                run = cached_peer(method, landscape, seed, budget, args, overrides)
                if run is None:
                    continue
                runs.setdefault((landscape, method), []).append(run)
                curves.setdefault(landscape, {}).setdefault(method, []).append(run.curve)
                for b in [] if method in PEERS else [b for b in args.budgets if b != budget]:
                    smaller.setdefault((landscape, method, b), []).append(
                        synthetic_run(method, landscape, seed, b, args, overrides)
                    )
                print(f"  seed {seed:>2} {landscape:<10} {method:<22} best {run.curve[-1]:.4f}", file=sys.stderr,
                      flush=True)  # fmt: skip
    curves = {k: curves[k] for k in args.landscapes if k in curves}
    if args.families and len(args.families) > 1:
        args.landscapes = [*args.landscapes, "all"]
    runs = {key: runs[key] for key in sorted(runs, key=lambda k: (args.landscapes.index(k[0]), methods.index(k[1])))}
    rows, repeats = [], []
    pooled: dict[tuple[str, int], list[float]] = {}  # with --families: every family's runs of a method
    for (landscape, method), group in runs.items():
        for b in args.budgets:
            at_b = smaller.get((landscape, method, b), group)
            row = {"landscape": landscape, "method": method, "budget": b, "seeds": len(group)}
            row |= summary(values := [at_budget(r.curve, b) for r in at_b])
            pooled.setdefault((method, b), []).extend(values)
            if b == budget:
                row["true_mean"] = statistics.fmean(r.true_best for r in group)
                row["evaluations_used"] = statistics.fmean(len(r.curve) for r in group)
            rows.append(row)
        if method not in PEERS:
            asked = sum(r.asked for r in group)
            drawn = asked + sum(r.avoided for r in group)
            repeats.append(
                {
                    "landscape": landscape,
                    "method": method,
                    "asked": asked,
                    "repeat_fraction_asked": sum(r.cache_hits for r in group) / max(asked, 1),
                    "redrawn_fraction": sum(r.avoided for r in group) / max(drawn, 1),
                    "unfilled_per_run": statistics.fmean(r.unfilled for r in group),
                }
            )
    for (method, b), values in pooled.items() if "all" in args.landscapes else ():
        rows.append({"landscape": "all", "method": method, "budget": b, "seeds": len(values), **summary(values)})
    out = args.out or ROOT / "runs" / f"quality-synthetic-{args.mode}"
    out.mkdir(parents=True, exist_ok=True)
    png = args.png or out / "best_so_far.png"
    title = f"synthetic landscapes, {args.mode}, {args.seeds} seeds"
    plot_landscapes(curves, png, title)
    print(f"\nsearch quality: synthetic, mode {args.mode}, {args.seeds} seeds, budgets {args.budgets}")
    print(f"{'landscape':<11}{'budget':>7}  {'method':<24}{'mean':>8}{'std':>8}{'min':>8}{'max':>8}")
    for landscape in args.landscapes:
        for b in args.budgets:
            block = [r for r in rows if r["landscape"] == landscape and r["budget"] == b]
            for r in sorted(block, key=lambda r: -r["mean"]):
                line = f"{landscape:<11}{b:>7}  {r['method']:<24}{r['mean']:>8.4f}{r['std']:>8.4f}{r['min']:>8.4f}"
                print(f"{line}{r['max']:>8.4f}")
    print(f"\n{'landscape':<11}{'method':<24}{'asked':>8}{'repeats asked':>15}{'redrawn':>9}{'unfilled/run':>14}")
    for r in repeats:
        print(
            f"{r['landscape']:<11}{r['method']:<24}{r['asked']:>8}{r['repeat_fraction_asked']:>15.3f}"
            f"{r['redrawn_fraction']:>9.3f}{r['unfilled_per_run']:>14.1f}"
        )
    print(f"plot: {png}")
    if args.markdown is not None:
        args.markdown.write_text(markdown_tables(args, rows, repeats))
    record = {
        "benchmark": "search_quality",
        "objective": "synthetic",
        "mode": args.mode,
        "slots": args.slots if args.mode == "async" else None,
        "budgets": args.budgets,
        "seeds": args.seeds,
        "overrides": overrides,
        "results": rows,
        "repeats": repeats,
        "seconds": round(time.time() - started, 1),
        **machine(),
    }
    print(json.dumps(record))


def markdown_tables(args: argparse.Namespace, rows: list[dict], repeats: list[dict]) -> str:
    """The tables of RESULTS.md: one per landscape (methods x budgets), then the repeat counts."""
    out = []
    for landscape in args.landscapes:
        block = [r for r in rows if r["landscape"] == landscape]
        if not block:
            continue
        out += [f"**{landscape}**", "", "| method | seeds | " + " | ".join(
            f"{b}: mean | std | min | max" for b in args.budgets) + " |"]  # fmt: skip
        out.append("|---|---:|" + "---:|---:|---:|---:|" * len(args.budgets))
        methods = dict.fromkeys(r["method"] for r in block)
        top = {b: max(r["mean"] for r in block if r["budget"] == b) for b in args.budgets}
        for method in methods:
            cells = []
            for b in args.budgets:
                r = next(x for x in block if x["method"] == method and x["budget"] == b)
                mean = f"**{r['mean']:.3f}**" if r["mean"] == top[b] else f"{r['mean']:.3f}"
                cells.append(f"{mean} | {r['std']:.3f} | {r['min']:.3f} | {r['max']:.3f}")
            seeds = next(x["seeds"] for x in block if x["method"] == method)
            out.append(f"| {method} | {seeds} | " + " | ".join(cells) + " |")
        out.append("")
    out += [
        "| landscape | strategy | genomes asked | repeats asked | candidates drawn again | slots left empty a run |"
    ]
    out.append("|---|---|---:|---:|---:|---:|")
    for r in repeats:
        out.append(
            f"| {r['landscape']} | {r['method']} | {r['asked']} | {r['repeat_fraction_asked']:.3f} | "
            f"{r['redrawn_fraction']:.3f} | {r['unfilled_per_run']:.1f} |"
        )
    return "\n".join(out) + "\n"


def main_real(args: argparse.Namespace, overrides: dict) -> None:
    out = args.out or ROOT / "runs" / "quality-real"
    out.mkdir(parents=True, exist_ok=True)
    budget = max(args.budgets)
    base = ROOT / CONFIGS["real"]
    started = time.time()
    curves: dict[str, list[list[float]]] = {}
    methods = args.methods or STRATEGIES
    configs = {strategy: write_config(base, out, strategy, budget, overrides) for strategy in methods}
    for seed in range(args.seeds):  # seed-major: a long benchmark stopped early still compares every strategy
        for strategy, config in configs.items():
            curve = run_one(config, out / f"{strategy}-seed{seed}", seed, args.workers)
            curves.setdefault(strategy, []).append(curve)
            print(f"  {strategy:<22} seed {seed:>2}: best {curve[-1]:.4f}", file=sys.stderr, flush=True)
    rows = []
    for strategy, runs in curves.items():
        finals = [c[-1] for c in runs]
        rows.append({"strategy": strategy, "seeds": len(finals), **summary(finals)})
    png = args.png or out / "best_so_far.png"
    plot(curves, png, f"real objective, budget {budget} evaluations")
    print(f"\nsearch quality: real objective, budget {budget}, {args.seeds} seeds")
    print(f"{'strategy':<24}{'mean':>8}{'std':>8}{'min':>8}{'max':>8}")
    for r in sorted(rows, key=lambda r: -r["mean"]):
        print(f"{r['strategy']:<24}{r['mean']:>8.4f}{r['std']:>8.4f}{r['min']:>8.4f}{r['max']:>8.4f}")
    print(f"plot: {png}")
    record = {
        "benchmark": "search_quality",
        "objective": "real",
        "budget": budget,
        "seeds": args.seeds,
        "overrides": overrides,
        "results": rows,
        "seconds": round(time.time() - started, 1),
        **machine(),
    }
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", choices=sorted(CONFIGS), default="synthetic")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--landscapes", nargs="+", choices=LANDSCAPES, default=list(LANDSCAPES))
    parser.add_argument(
        "--families",
        nargs="+",
        choices=sorted(FAMILIES),
        help="generated families instead of --landscapes: seed i searches instance i of each",
    )
    parser.add_argument(
        "--instances",
        choices=["tuning", "test"],
        default="tuning",
        help="which set of generated instances (--families): choose defaults on tuning only",
    )
    parser.add_argument("--surrogate", type=Path, help="a surrogate_build.py table: search its surrogate landscape")
    parser.add_argument("--methods", nargs="+", choices=[*STRATEGIES, *SCREENED, *PEERS], help="default: all")
    parser.add_argument("--mode", choices=["sync", "async"], default="sync")
    parser.add_argument("--slots", type=int, default=8, help="concurrent evaluations in --mode async")
    parser.add_argument("--screen-factor", type=int, default=3, help="search.screen.factor of NAME+screen methods")
    parser.add_argument("--screen-after", type=int, default=20, help="search.screen.after of NAME+screen methods")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--peer-workers", type=int, default=1, help="peers ask this many candidates at once")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, dotted.key=yaml_value")
    parser.add_argument("--out", type=Path, help="folder for configs, runs and the PNG")
    parser.add_argument("--png", type=Path, help="where the PNG goes (default: in --out)")
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown (for RESULTS.md)")
    parser.add_argument("--peer-cache", type=Path, help="folder keeping the peers' runs (reused when present)")
    parser.add_argument("--cached-peers-only", action="store_true", help="skip peer runs not in --peer-cache")
    args = parser.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    if any(m in SCREENED for m in args.methods or []) and args.mode != "async":
        parser.error("NAME+screen methods need --mode async (search.screen is async only)")
    if args.families:
        args.landscapes = args.families
    if args.surrogate is not None:
        args.landscapes, args.families = ["surrogate"], None
    if args.objective == "synthetic":
        main_synthetic(args, overrides)
    else:
        main_real(args, overrides)


if __name__ == "__main__":
    main()
