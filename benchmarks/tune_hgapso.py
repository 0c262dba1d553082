"""Tuning hgapso on the tuning instances of the generated landscape families, every attempt reported.

Each setting (a set of `search.*` overrides, named) runs hgapso on instance i of every family for seeds
i = 0..N-1 (`search_quality.py --families ... --instances tuning`), once per budget, and prints the mean best
per family and over all families at each budget, the spread at the largest, and one JSON line. Defaults are
chosen from this table only; `search_quality.py --instances test` reports them on instances never seen here.

    .venv/bin/python benchmarks/tune_hgapso.py --seeds 20 --budgets 100 200 400 [--only default swarm4]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.search_quality import at_budget, synthetic_run  # noqa: E402
from nas.evaluate.landscape_family import FAMILIES  # noqa: E402

# name -> search.* overrides; "default" is the shipped configuration
SETTINGS: dict[str, dict] = {
    "default": {},
    "swarm4": {"search.pso.swarm_size": 4},
    "swarm12": {"search.pso.swarm_size": 12},
    "gapop4": {"search.ga.population": 4},
    "gapop6": {"search.ga.population": 6},
    "clamp0.1": {"search.pso.velocity_clamp": 0.1},
    "clamp0.4": {"search.pso.velocity_clamp": 0.4},
    "exploit0.3": {"search.hgapso.exploit": 0.3},
    "exploit0.7": {"search.hgapso.exploit": 0.7},
    "stay0.2": {"search.hgapso.exploit_stay": 0.2},
    "stay0.8": {"search.hgapso.exploit_stay": 0.8},
    "flip0.1": {"search.ga.bit_flip_prob": 0.1},
    "flip0.02": {"search.ga.bit_flip_prob": 0.02},
    "fill-random": {"search.hgapso.fill": "random"},
    "no-dense-seed": {"search.hgapso.dense_seed": False},
    "restart2": {"search.hgapso.restart_after": 2},
    "restart4": {"search.hgapso.restart_after": 4},
    "nudge": {"search.hgapso.nudge": True},
    "nudge+restart4": {"search.hgapso.nudge": True, "search.hgapso.restart_after": 4},
    "swarm4+nudge": {"search.pso.swarm_size": 4, "search.hgapso.nudge": True},
    "swarm4+restart4": {"search.pso.swarm_size": 4, "search.hgapso.restart_after": 4},
    "swarm6": {"search.pso.swarm_size": 6},
    "swarm4+exploit0.7": {"search.pso.swarm_size": 4, "search.hgapso.exploit": 0.7},
}


def evaluate(name: str, overrides: dict, args: argparse.Namespace) -> dict:
    """Mean best per family and budget, and over all families, of one setting."""
    ns = argparse.Namespace(families=args.families, instances=args.instances, mode=args.mode, slots=args.slots,
                            peer_workers=1)  # fmt: skip
    values: dict[tuple[str, int], list[float]] = {}
    for family in args.families:
        for seed in range(args.seeds):
            for b in args.budgets:
                run = synthetic_run("hgapso", family, seed, b, ns, overrides)
                values.setdefault((family, b), []).append(at_budget(run.curve, b))
    row = {"setting": name, "overrides": overrides}
    for b in args.budgets:
        pooled = [v for f in args.families for v in values[(f, b)]]
        row[f"all@{b}"] = statistics.fmean(pooled)
        for f in args.families:
            row[f"{f}@{b}"] = statistics.fmean(values[(f, b)])
    top = max(args.budgets)
    row[f"std@{top}"] = statistics.pstdev([v for f in args.families for v in values[(f, top)]])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--instances", choices=["tuning", "test"], default="tuning")
    parser.add_argument("--mode", choices=["sync", "async"], default="sync")
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--only", nargs="+", choices=sorted(SETTINGS), help="default: every setting")
    args = parser.parse_args()
    started = time.time()
    rows = []
    for name in args.only or SETTINGS:
        rows.append(evaluate(name, SETTINGS[name], args))
        print(f"  {name:<16} " + " ".join(f"{rows[-1][f'all@{b}']:.4f}" for b in args.budgets), file=sys.stderr,
              flush=True)  # fmt: skip
    top = max(args.budgets)
    head = "".join(f"{'all@' + str(b):>10}" for b in args.budgets)
    fams = "".join(f"{f[:9] + '@' + str(top):>14}" for f in args.families)
    print(f"\nhgapso settings on the {args.instances} instances, {args.seeds} seeds, mode {args.mode}")
    print(f"{'setting':<16}{head}{'std@' + str(top):>10}{fams}")
    for r in sorted(rows, key=lambda r: -r[f"all@{top}"]):
        cells = "".join(f"{r[f'all@{b}']:>10.4f}" for b in args.budgets) + f"{r[f'std@{top}']:>10.4f}"
        print(f"{r['setting']:<16}{cells}" + "".join(f"{r[f'{f}@{top}']:>14.4f}" for f in args.families))
    record = {"benchmark": "tune_hgapso", "instances": args.instances, "mode": args.mode, "seeds": args.seeds,
              "rows": rows, "seconds": round(time.time() - started, 1), **machine()}  # fmt: skip
    print(json.dumps(record))


if __name__ == "__main__":
    main()
