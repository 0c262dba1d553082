"""Search quality: every strategy at the same evaluation budget, over several seeds.

(a) `--objective synthetic` (default): the smoke config's synthetic objective, >= 20 seeds, seconds per run.
(b) `--objective real`: `search_configs/cifar10_jpeg_lowfi.yaml` with real training (hours on a CPU).
Prints a table (mean, standard deviation, min and max of the best validation fitness per strategy) and one
JSON line with the machine and the date, and writes a PNG of mean best-so-far against evaluations.

    .venv/bin/python benchmarks/search_quality.py --seeds 20 --budget 200
    .venv/bin/python benchmarks/search_quality.py --objective real --seeds 3 --budget 40 --out runs/quality-real
"""

import argparse
import contextlib
import io
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from nas.cli import main as nas_main  # noqa: E402

STRATEGIES = ["hgapso", "pso", "ga", "random", "regularized-evolution"]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", choices=sorted(CONFIGS), default="synthetic")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, dotted.key=yaml_value")
    parser.add_argument(
        "--out", type=Path, help="folder for configs, runs and the PNG (reused: finished runs are kept)"
    )
    args = parser.parse_args()
    out = args.out or ROOT / "runs" / f"quality-{args.objective}"
    out.mkdir(parents=True, exist_ok=True)
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    base = ROOT / CONFIGS[args.objective]
    started = time.time()
    curves: dict[str, list[list[float]]] = {}
    configs = {strategy: write_config(base, out, strategy, args.budget, overrides) for strategy in args.strategies}
    for seed in range(args.seeds):  # seed-major: a long benchmark stopped early still compares every strategy
        for strategy, config in configs.items():
            curve = run_one(config, out / f"{strategy}-seed{seed}", seed, args.workers)
            curves.setdefault(strategy, []).append(curve)
            print(f"  {strategy:<22} seed {seed:>2}: best {curve[-1]:.4f}", file=sys.stderr, flush=True)
    rows = []
    for strategy, runs in curves.items():
        finals = [c[-1] for c in runs]
        rows.append(
            {
                "strategy": strategy,
                "seeds": len(finals),
                "mean": statistics.fmean(finals),
                "std": statistics.pstdev(finals),
                "min": min(finals),
                "max": max(finals),
            }
        )
    png = out / "best_so_far.png"
    plot(curves, png, f"{args.objective} objective, budget {args.budget} evaluations")
    print(f"\nsearch quality: {args.objective} objective, budget {args.budget}, {args.seeds} seeds")
    print(f"{'strategy':<24}{'mean':>8}{'std':>8}{'min':>8}{'max':>8}")
    for r in sorted(rows, key=lambda r: -r["mean"]):
        print(f"{r['strategy']:<24}{r['mean']:>8.4f}{r['std']:>8.4f}{r['min']:>8.4f}{r['max']:>8.4f}")
    print(f"plot: {png}")
    record = {
        "benchmark": "search_quality",
        "objective": args.objective,
        "budget": args.budget,
        "seeds": args.seeds,
        "overrides": overrides,
        "results": rows,
        "seconds": round(time.time() - started, 1),
        **machine(),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
