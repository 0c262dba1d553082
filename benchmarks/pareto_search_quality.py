"""Several objectives, against external peers: the hypervolume of each method's front at equal evaluation
budgets, on the generated landscape families and on the surrogate of the real CIFAR-10 table.

Objectives are (fitness, params), Result.params being the network's exact parameter count (`analytic_cost`),
for a generated landscape and for the surrogate alike. Every evonas strategy runs with `search.objectives:
[fitness, params]` (the smoke config's `search` section otherwise, as `search_quality.py` runs them) against
Optuna's NSGA-II (`NSGAIISampler`, its defaults) and MOTPE (`TPESampler` on a two-objective study, multivariate
as the single-objective TPE peer). The peers see the genome as `benchmarks/peers.py` encodes it and minimise
the objective vector of `nas.strategies.pareto` (fitness negated, params as they are).

- Problems: `--families` (seed i searches instance `--instances`-set start + i of each family: the test set
  from 1000 by default, so no default was chosen on them) and, with `--surrogate TABLE`, the surrogate
  landscape of that table (`search_quality.py --surrogate`). The table is copied into `--cache` the first
  time, and every run reads the copy: a table that grows while the benchmark runs does not change the problem
  of a resumed run.
- Budgets count distinct genomes. A strategy runs once per budget (hgapso's exploitation phase is a fraction
  of it), in-process (ask, answer repeats from the cache, evaluate the rest, tell in ask order; a batch cut by
  the budget is not told); a peer once per seed at the largest budget, its front at each smaller budget read
  from its first evaluations.
- Measure: `pareto.normalised_hypervolume` of the non-dominated set of everything the run evaluated, i.e. of
  the points (fitness, 1 - params / the space's largest params) with the reference point at the origin.
- Each run's figures are kept in `--cache` as one JSON file, so a killed benchmark resumes where it stopped,
  and several processes may fill one cache (`--methods`: MOTPE costs minutes a run where a strategy costs a
  second); `--cached-only` tabulates the seeds every method has finished, computing nothing.

Prints, per problem (each family, all families pooled, the surrogate), mean +- std hypervolume per method and
budget with hgapso's rank among the methods and its seed-by-seed wins over each peer; then one JSON line with
the rows, the wall time, the machine and the date; `--markdown` writes the tables as Markdown.

    nice -n 10 .venv/bin/python benchmarks/pareto_search_quality.py --families smooth rugged deceptive noisy \
        costly --surrogate benchmarks/data/surrogate_cifar10_bench.csv --seeds 20 --cache runs/pareto/cache \
        --markdown benchmarks/data/pareto_quality_test.md
"""

import argparse
import json
import shutil
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.peers import ask_and_tell, genome_of, variables  # noqa: E402
from benchmarks.search_quality import SMOKE, STRATEGIES, search_section, surrogate_objective  # noqa: E402
from nas.config import load_config  # noqa: E402
from nas.evaluate.landscape_family import FAMILIES, TEST_FROM  # noqa: E402
from nas.evaluate.result import Result  # noqa: E402
from nas.evaluate.synthetic import SyntheticObjective  # noqa: E402
from nas.genome.genome import Genome  # noqa: E402
from nas.genome.space import SearchSpace, load_space  # noqa: E402
from nas.strategies import build_strategy, pareto  # noqa: E402
from nas.strategies.strategy import Strategy  # noqa: E402

OBJECTIVES = ["fitness", "params"]
PEERS = ("optuna-nsga2", "optuna-motpe")
METHODS = [*STRATEGIES, *PEERS]
SURROGATE = "surrogate"


@dataclass
class Log:
    """The cache and the budget: each distinct genome is evaluated once, counted, and kept in evaluation order."""

    objective: SyntheticObjective
    budget: int
    cache: dict[str, Result] = field(default_factory=dict)

    def __call__(self, genome: Genome) -> Result:
        if genome.key not in self.cache:
            self.cache[genome.key] = self.objective(genome)
        return self.cache[genome.key]

    def left(self) -> int:
        return self.budget - len(self.cache)

    def evaluated(self) -> list[Result]:
        return list(self.cache.values())  # dicts keep insertion order: the order of evaluation


@dataclass(frozen=True)
class Problem:
    """One landscape one seed searches: its space, objective and the largest params that normalise the cost."""

    name: str  # the family's instance (`smooth/1003`) or `surrogate`
    space: SearchSpace
    objective: SyntheticObjective
    largest: float


SPACES: dict[str, tuple[SearchSpace, float]] = {}


def problem(landscape: str, seed: int, args: argparse.Namespace) -> Problem:
    """The problem of `seed` on `landscape` (a family, or the surrogate of the cached table copy)."""
    if landscape == SURROGATE:
        space, objective = surrogate_objective(args.cache / "surrogate.csv")
        return Problem(SURROGATE, space, objective, float(objective.largest_params()))
    name = f"{landscape}/{(0 if args.instances == 'tuning' else TEST_FROM) + seed}"
    if "smoke" not in SPACES:
        space = load_space(load_config(SMOKE).encoding)
        SPACES["smoke"] = (space, float(SyntheticObjective(space, (1, 10, 8), 0.0).largest_params()))
    space, largest = SPACES["smoke"]
    return Problem(name, space, SyntheticObjective(space, (1, 10, 8), 0.0, landscape=name), largest)


def drive(strategy: Strategy, log: Log) -> None:
    """The driver's loop: ask, evaluate the misses up to the budget, tell the whole batch in ask order."""
    while log.left() > 0 and not strategy.done():
        genomes = strategy.ask()
        if not genomes:
            return
        results = []
        for g in genomes:
            if g.key not in log.cache and log.left() <= 0:
                return  # cut by the budget: not told
            results.append(log(g))
        strategy.tell(results)


def run_optuna(method: str, space: SearchSpace, log: Log, budget: int, seed: int) -> None:
    """Optuna's NSGA-II or MOTPE on the peers' encoding, minimising the objective vector."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if method == "optuna-nsga2":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
    study = optuna.create_study(directions=["minimize"] * len(OBJECTIVES), sampler=sampler)
    specs = variables(space)

    def ask() -> tuple[object, Genome]:
        trial = study.ask()
        return trial, genome_of(space, {n: trial.suggest_int(n, lo, hi) for n, lo, hi in specs})

    def tell(trial: object, result: Result) -> None:
        study.tell(trial, list(pareto.objective_vector(result, OBJECTIVES)))

    evaluate: Callable = log  # ask_and_tell passes each genome's answer, here a Result, to `tell`
    ask_and_tell(ask, tell, evaluate, budget, 1)


def hypervolumes(results: list[Result], budgets: list[int], largest: float) -> dict[str, list[float]]:
    """{budget: [normalised hypervolume, front size]} of the first `budget` results, for each budget."""
    vectors = [pareto.objective_vector(r, OBJECTIVES) for r in results]
    out = {}
    for b in budgets:
        front = [vectors[i] for i in pareto.pareto_front(vectors[:b])]
        out[str(b)] = [pareto.normalised_hypervolume(front, [largest]), len(front)]
    return out


def run(method: str, landscape: str, seed: int, budget: int, budgets: list[int],
        args: argparse.Namespace) -> dict | None:  # fmt: skip
    """One search's figures, read from the cache when present: {budget: [hypervolume, front size]}, evaluations
    and seconds. A peer's run at `budget` covers every budget of `budgets` up to it. With `--cached-only`, a run
    not in the cache is skipped (None)."""
    prob = problem(landscape, seed, args)
    path = args.cache / f"{prob.name.replace('/', '-')}-{method}-seed{seed}-budget{budget}.json"
    if path.exists():
        return json.loads(path.read_text())
    if args.cached_only:
        return None
    started = time.perf_counter()
    log = Log(prob.objective, budget)
    if method in PEERS:
        run_optuna(method, prob.space, log, budget, seed)
    else:
        overrides = {"search.budget.evaluations": budget, "search.objectives": OBJECTIVES}
        drive(build_strategy(search_section(overrides, method), prob.space, seed), log)
    figures = {
        "hypervolume": hypervolumes(log.evaluated(), [b for b in budgets if b <= budget], prob.largest),
        "evaluations": len(log.cache),
        "seconds": round(time.perf_counter() - started, 2),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(figures))
    tmp.replace(path)
    return figures


def collect(args: argparse.Namespace) -> dict[tuple[str, str, int], list[float]]:
    """{(landscape, method, budget): hypervolume of each seed}, seed-major, so that a benchmark stopped early
    still compares every method on the seeds it finished."""
    hv: dict[tuple[str, str, int], list[float]] = {}
    top = max(args.budgets)
    for seed in range(args.seeds):
        for landscape in args.landscapes:
            done: dict[str, dict[int, dict | None]] = {}
            for method in args.methods:
                budgets = [top] if method in PEERS else args.budgets  # a peer's largest run covers the others
                done[method] = {b: run(method, landscape, seed, b, args.budgets, args) for b in budgets}
            if any(figures is None for runs in done.values() for figures in runs.values()):
                continue  # --cached-only: a seed counts only where every method has every budget's figures
            for method, runs in done.items():
                for budget, figures in runs.items():
                    for b in args.budgets if method in PEERS else [budget]:
                        hv.setdefault((landscape, method, b), []).append(figures["hypervolume"][str(b)][0])
                print(f"  seed {seed:>2} {landscape:<10} {method:<22} hv@{top} {hv[(landscape, method, top)][-1]:.4f}",
                      file=sys.stderr, flush=True)  # fmt: skip
    return hv


def rows_of(hv: dict[tuple[str, str, int], list[float]], args: argparse.Namespace) -> list[dict]:
    """One row per problem set, method and budget: mean, std, hgapso's rank and its seed wins over each peer.
    `all families` pools every family's runs (a method's seeds paired across families in the same order)."""
    sets = list(args.landscapes)
    families = [x for x in sets if x != SURROGATE]
    if len(families) > 1:
        for (landscape, method, b), values in list(hv.items()):
            if landscape in families:
                hv.setdefault(("all families", method, b), []).extend(values)
        sets.insert(len(families), "all families")
    rows = []
    for name in sets:
        for b in args.budgets:
            block = {m: hv[(name, m, b)] for m in args.methods if (name, m, b) in hv}
            means = sorted((statistics.fmean(v) for v in block.values()), reverse=True)
            for method, values in block.items():
                row = {"problem": name, "method": method, "budget": b, "runs": len(values),
                       "mean": statistics.fmean(values), "std": statistics.pstdev(values)}  # fmt: skip
                row["rank"] = means.index(row["mean"]) + 1
                if method == "hgapso":
                    for peer in PEERS:
                        if peer in block and len(block[peer]) == len(values):
                            row[f"wins_vs_{peer}"] = sum(a > c for a, c in zip(values, block[peer], strict=True))
                rows.append(row)
    return rows


def tables(rows: list[dict], args: argparse.Namespace, markdown: bool) -> str:
    """Per problem set: methods x budgets, mean +- std; then hgapso's rank and wins over each peer."""
    out = []
    for name in dict.fromkeys(r["problem"] for r in rows):
        block = [r for r in rows if r["problem"] == name]
        runs = max(r["runs"] for r in block)
        if markdown:
            out += [f"**{name}** ({runs} runs a method)", ""]
            out += ["| method | " + " | ".join(f"hv @ {b}" for b in args.budgets) + " |"]
            out += ["|---|" + "---:|" * len(args.budgets)]
        else:
            out += [
                f"\n{name} ({runs} runs a method)",
                f"{'method':<24}" + "".join(f"{f'@{b}':>18}" for b in args.budgets),
            ]
        for method in dict.fromkeys(r["method"] for r in block):
            cells = []
            for b in args.budgets:
                r = next(x for x in block if x["method"] == method and x["budget"] == b)
                cell = f"{r['mean']:.4f} ± {r['std']:.4f}"
                cells.append(f"**{cell}**" if markdown and r["rank"] == 1 else cell)
            out.append(
                f"| {method} | " + " | ".join(cells) + " |"
                if markdown
                else f"{method:<24}" + "".join(f"{c:>18}" for c in cells)
            )
        ranks = []
        for b in args.budgets:
            r = next((x for x in block if x["method"] == "hgapso" and x["budget"] == b), None)
            if r is not None:
                wins = ", ".join(f"beats {p} on {r[f'wins_vs_{p}']}/{r['runs']}" for p in PEERS if f"wins_vs_{p}" in r)
                ranks.append(
                    f"@{b}: rank {r['rank']} of {len({x['method'] for x in block})}" + (f" ({wins})" if wins else "")
                )
        out += ["", "hgapso " + "; ".join(ranks), ""] if markdown else ["hgapso " + "; ".join(ranks)]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="*", choices=sorted(FAMILIES), default=[])
    parser.add_argument("--instances", choices=["tuning", "test"], default="test",
                        help="which set of generated instances: settings are tried on tuning only")  # fmt: skip
    parser.add_argument("--surrogate", type=Path, help="a surrogate_build.py table: also search its surrogate")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "pareto" / "cache",
                        help="keeps each run's figures (reused when present) and the table's copy")  # fmt: skip
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown")
    parser.add_argument("--cached-only", action="store_true", help="tabulate the finished seeds in --cache only")
    args = parser.parse_args()
    args.budgets = sorted(args.budgets)
    args.landscapes = [*args.families, *([SURROGATE] if args.surrogate else [])]
    if not args.landscapes:
        parser.error("name --families, --surrogate or both")
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.surrogate and not (args.cache / "surrogate.csv").exists():
        shutil.copyfile(args.surrogate, args.cache / "surrogate.tmp")
        (args.cache / "surrogate.tmp").replace(args.cache / "surrogate.csv")
    started = time.time()
    rows = rows_of(collect(args), args)
    seconds = round(time.time() - started, 1)
    print(f"\nhypervolume of (fitness, 1 - params / largest params), reference (0, 0); instances: {args.instances}")
    print(tables(rows, args, markdown=False))
    if args.markdown is not None:
        args.markdown.write_text(tables(rows, args, markdown=True))
    record = {"benchmark": "pareto_search_quality", "objectives": OBJECTIVES, "instances": args.instances,
              "budgets": args.budgets, "seeds": args.seeds, "rows": rows, "seconds": seconds, **machine()}  # fmt: skip
    print(json.dumps(record))


if __name__ == "__main__":
    main()
