"""How busy a search keeps a cluster: `search.mode` sync against async, on an embedded Ray declaring 8 and 32 GPUs.

Each candidate is the synthetic objective sleeping in proportion to its analytic FLOPs
(`fitness.seconds_per_evaluation` + `fitness.seconds_per_gflop`, set so that the candidates of
`encodings/densenet_cifar.yaml` at 32x32 take 0.1 s to 1 s), one declared GPU each. Every search runs the
real driver (`nas search`, in this process) for the same wall time (`search.budget.hours`), each on a fresh
embedded Ray after a warm-up search that starts the Ray worker of every slot. Figures per search:
- busy fraction: the candidates' summed seconds / (slots x the search's own wall time, `elapsed_seconds` of its
  last checkpoint); candidates cancelled at the time limit count as idle;
- evaluations per minute;
- best fitness at that equal wall time (the synthetic optimum is 1).

    .venv/bin/python benchmarks/cluster_utilization.py [--sizes 8 32] [--seconds 30]
        [--strategies hgapso regularized-evolution] [--modes sync async] [--scale 1]
"""

import argparse
import contextlib
import io
import json
import logging
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from nas.cli import main as nas_main  # noqa: E402

# the candidates of densenet_cifar at 32x32 span 0.038-1.41 GFLOPs: 0.075 s + 0.656 s/GFLOP maps them to 0.1-1 s
SECONDS_PER_EVALUATION = 0.075
SECONDS_PER_GFLOP = 0.656
# One declared CPU a candidate (they sleep, so the 2 real cores are not what is measured): Ray keeps as many idle
# workers alive as the node declares CPUs, so fewer declared CPUs would have it kill and restart workers
CPUS_PER_TRIAL = 1


def strategy_section(strategy: str, slots: int) -> dict:
    """The strategy's parameters for a cluster of `slots`. hgapso: 1.5 particles a slot with the default GA (3
    members, 1 generation a move), since asynchronously it keeps at most one generation a particle in flight
    (swarm x population genomes, `HybridGAPSO.parallelism`), a particle waits for its slowest member, and a
    settled particle waits for its quorum (`search.hgapso.quorum`) with nothing in flight; regularized
    evolution: a sync batch of one candidate a slot."""
    if strategy == "hgapso":
        return {"pso": {"swarm_size": math.ceil(1.5 * slots)}}
    return {"batch_size": slots, "regularized_evolution": {"population": 4 * slots, "sample_size": 8}}


def write_config(
    folder: Path,
    name: str,
    strategy: str,
    mode: str,
    slots: int,
    seconds: float | None,
    evaluations: int = 1_000_000,
    scale: float = 1.0,
) -> Path:
    data = {
        "name": name,
        "seed": 0,
        "encoding": str(ROOT / "encodings/densenet_cifar.yaml"),
        "dataset": {"name": "cifar10"},
        "fitness": {
            "objective": "synthetic",
            "seconds_per_evaluation": SECONDS_PER_EVALUATION * scale,
            "seconds_per_gflop": SECONDS_PER_GFLOP * scale,
        },
        "search": {
            "strategy": strategy,
            "mode": mode,
            "budget": {"evaluations": evaluations, "hours": None if seconds is None else seconds / 3600},
            **strategy_section(strategy, slots),
        },
        "resources": {"gpus_per_trial": 1, "cpus_per_trial": CPUS_PER_TRIAL},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_search(config: Path, run_dir: Path) -> dict:
    """One search through the real command line; its figures from its log and last checkpoint."""
    with contextlib.redirect_stdout(io.StringIO()):
        code = nas_main(["search", str(config), "--run-dir", str(run_dir)])
    if code != 0:
        raise SystemExit(f"search {config.name} failed with exit code {code}")
    lines = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    wall = json.loads((run_dir / "checkpoint.json").read_text())["elapsed_seconds"]
    ok = [r["fitness"] for r in lines if r["status"] == "ok"]
    return {
        "evaluations": len(lines),
        "wall_s": round(wall, 2),
        "busy_seconds": round(sum(r["seconds"] for r in lines), 2),
        "best_fitness": round(max(ok), 4) if ok else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seconds", type=float, default=30.0, help="wall time of each search")
    parser.add_argument("--strategies", nargs="+", default=["hgapso", "regularized-evolution"])
    parser.add_argument("--modes", nargs="+", default=["sync", "async"])
    parser.add_argument("--scale", type=float, default=1.0, help="candidate times x this (default 0.1-1 s)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import ray

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for slots in args.sizes:
            cpus = math.ceil(slots * CPUS_PER_TRIAL)
            # 2 candidates a slot of 0.2-2 s: every slot holds a candidate at once, so every slot's worker is
            # started (and has imported torch) before the measured search begins
            warm = write_config(folder, f"warmup-{slots}", "random", "async", slots, None, 2 * slots, scale=2.0)
            for strategy in args.strategies:
                for mode in args.modes:
                    name = f"{strategy}-{mode}-{slots}"
                    # A fresh Ray for every search, as `nas search` with its embedded Ray gets: a search stopped
                    # by its hours budget cancels what it has in flight, and a forced cancel ends the worker
                    # running it, so on a shared Ray the next search was measured while Ray restarted workers
                    # (32-slot async runs: 0.61-0.81 busy after a sync run, 0.95-0.96 on a fresh Ray).
                    ray.init(address="local", num_cpus=cpus, num_gpus=slots, include_dashboard=False,
                             logging_level=logging.ERROR)  # fmt: skip
                    shutil.rmtree(folder / f"warmup-{slots}", ignore_errors=True)
                    run_search(warm, folder / f"warmup-{slots}")  # the imports, and the Ray worker of every slot
                    started = time.perf_counter()
                    config = write_config(folder, name, strategy, mode, slots, args.seconds, scale=args.scale)
                    figures = run_search(config, folder / name)
                    ray.shutdown()
                    row = {"strategy": strategy, "mode": mode, "slots": slots, **figures}
                    row["busy_fraction"] = round(figures["busy_seconds"] / (slots * figures["wall_s"]), 3)
                    row["evaluations_per_minute"] = round(60 * figures["evaluations"] / figures["wall_s"], 1)
                    rows.append(row)
                    print(f"  {name:<36} busy {row['busy_fraction']:.3f}  {row['evaluations']:>5} evaluations  "
                          f"{time.perf_counter() - started:5.1f} s", file=sys.stderr)  # fmt: skip
    low, high = 0.1 * args.scale, 1.0 * args.scale
    print(f"\ncluster utilization ({args.seconds:g} s a search, candidates {low:g}-{high:g} s by FLOPs, one GPU each)")
    print(f"{'strategy':<24}{'mode':<7}{'slots':>6}{'busy':>7}{'evals/min':>11}{'evals':>7}{'best':>8}")
    for r in rows:
        best = f"{r['best_fitness']:.4f}" if r["best_fitness"] is not None else "-"
        print(f"{r['strategy']:<24}{r['mode']:<7}{r['slots']:>6}{r['busy_fraction']:>7.3f}"
              f"{r['evaluations_per_minute']:>11.1f}{r['evaluations']:>7}{best:>8}")  # fmt: skip
    summary = {"benchmark": "cluster_utilization", "seconds": args.seconds, "scale": args.scale, "rows": rows}
    print(json.dumps({**summary, **machine()}))


if __name__ == "__main__":
    main()
