"""Multi-objective search quality: the hypervolume of each strategy's front against random search's, at equal
evaluation budgets, over several seeds.

The smoke config's space (`densenet_small`) on the synthetic objective (`bump` landscape; params and FLOPs are
exact, `analytic_cost`), with `search.objectives` set (default: fitness and params). Every strategy is driven
in-process (ask, evaluate, tell in ask order) until the budget of evaluations is told; the front is the
non-dominated set of everything it evaluated (what `RUN_DIR/pareto.json` holds), measured as
`pareto.normalised_hypervolume`: objectives (fitness, 1 - cost / the space's largest cost), reference point at
the origin, so 1 is the unreachable corner of a perfect network with no cost. Prints one table row per
strategy and budget (mean, standard deviation, min and max hypervolume; mean front size), then one JSON line.
`--single` runs the strategies on fitness alone and measures their fronts all the same: what ranking by the
front adds over ranking by fitness.

    .venv/bin/python benchmarks/pareto_quality.py --seeds 5 --budgets 200 600
    .venv/bin/python benchmarks/pareto_quality.py --objectives fitness params flops --budgets 200
    .venv/bin/python benchmarks/pareto_quality.py --single --budgets 200 600
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from nas.config import parse_config
from nas.evaluate.result import Result
from nas.evaluate.synthetic import SyntheticObjective
from nas.genome import load_space
from nas.model.analytic_cost import analytic_cost
from nas.strategies import build_strategy, pareto

ROOT = Path(__file__).resolve().parents[1]
SPACE = load_space(ROOT / "encodings" / "densenet_small.yaml")
OBJECTIVE = SyntheticObjective(SPACE, (1, 10, 8), 0.0)  # digits' shape, as the smoke config
SEARCH = {
    "batch_size": 8,
    "pso": {"swarm_size": 4},
    "ga": {"population": 4, "generations": 2, "tournament_size": 2, "elitism": 1},
    "regularized_evolution": {"population": 16, "sample_size": 4},
}
METHODS = ["random", "regularized-evolution", "hgapso", "pso", "ga"]


def largest_costs(costs: list[str]) -> list[float]:
    """The space's largest network's value of each cost: what normalises it to [0, 1]."""
    params = OBJECTIVE.largest_params()
    blocks = tuple((lay[1], gro[1]) for lay, gro in zip(SPACE.layers, SPACE.growth_rate, strict=True))
    genome = SPACE.genome(SPACE.encode(blocks, None), tuple("1" * (n * (n + 1) // 2) for n, _ in blocks))
    flops = analytic_cost(OBJECTIVE.architecture(genome))[1]
    return [{"params": params, "flops": flops}[c] for c in costs]


def search(method: str, seed: int, budget: int, objectives: list[str]) -> list[Result]:
    """Everything one search evaluated, up to `budget` results, told batch by batch in ask order."""
    config = {**SEARCH, "strategy": method, "objectives": objectives, "budget": {"evaluations": budget}}
    strategy = build_strategy(parse_config({"search": config}).search, SPACE, seed)
    told: list[Result] = []
    while len(told) < budget and not strategy.done():
        genomes = strategy.ask()
        if not genomes:
            break
        results = [OBJECTIVE(g) for g in genomes]
        strategy.tell(results)
        told += results
    return told[:budget]


def front_hypervolume(results: list[Result], objectives: list[str], largest: list[float]) -> tuple[float, int]:
    """(normalised hypervolume, size) of the front of `results`."""
    vectors = [pareto.objective_vector(r, objectives) for r in results]
    front = [vectors[i] for i in pareto.pareto_front(vectors)]
    return pareto.normalised_hypervolume(front, largest), len(front)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", type=int, nargs="+", default=[200, 600])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--objectives", nargs="+", default=["fitness", "params"])
    parser.add_argument("--single", action="store_true", help="search on fitness alone, measure the same front")
    args = parser.parse_args()
    searched = ["fitness"] if args.single else args.objectives
    largest = largest_costs(args.objectives[1:])
    rows: list[dict[str, Any]] = []
    print(f"{'method':24s} {'budget':>6s} {'hv mean':>8s} {'sd':>6s} {'min':>6s} {'max':>6s} {'front':>6s}")
    for budget in args.budgets:
        for method in args.methods:
            runs = [front_hypervolume(search(method, s, budget, searched), args.objectives, largest)
                    for s in range(args.seeds)]  # fmt: skip
            hv = [h for h, _ in runs]
            row = {"method": method, "budget": budget, "mean": statistics.mean(hv), "sd": statistics.pstdev(hv),
                   "min": min(hv), "max": max(hv), "front": statistics.mean(n for _, n in runs)}  # fmt: skip
            rows.append(row)
            print(f"{method:24s} {budget:6d} {row['mean']:8.3f} {row['sd']:6.3f} {row['min']:6.3f} "
                  f"{row['max']:6.3f} {row['front']:6.1f}")  # fmt: skip
    meta = {"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d")}
    print(json.dumps({"objectives": args.objectives, "searched": searched, "seeds": args.seeds, "rows": rows, **meta}))


if __name__ == "__main__":
    main()
