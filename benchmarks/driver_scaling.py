"""Driver cost per candidate as a search grows: 100, 1,000 and 10,000 zero-cost synthetic candidates.

Runs the real driver (`nas search`, in this process) with the synthetic objective at zero cost, after a warm-up
run that pays the one-off imports and worker start-up, (a) through the in-process evaluator and (b) through Ray
on a simulated cluster declaring 100 GPUs (`gpus_per_trial: 1`, a quarter CPU each: 8 at once on 2 cores).
Everything the driver does per candidate is in the figure: ask, cache lookup, dispatch, the fsynced log
append, tell, the atomic checkpoint per step, TensorBoard scalars. The figure must stay flat as the run
grows: nothing in the log, the cache or the checkpoint may cost O(n) per candidate.

    .venv/bin/python benchmarks/driver_scaling.py [--sizes 100 1000 10000] [--strategy random]
"""

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from nas.cli import main as nas_main  # noqa: E402


def write_config(folder: Path, size: int, strategy: str) -> Path:
    data = {
        "name": f"scaling-{size}",
        "seed": 0,
        "encoding": str(ROOT / "encodings/densenet_cifar.yaml"),
        "dataset": {"name": "cifar10"},
        "fitness": {"objective": "synthetic"},
        "search": {
            "strategy": strategy,
            "batch_size": 100,
            "budget": {"evaluations": size},
            "pso": {"swarm_size": 20},
            "ga": {"population": 5, "generations": 2},
            "regularized_evolution": {"population": 100, "sample_size": 10},
        },
        # 100 GPUs declared, but a quarter CPU a candidate: at most 8 worker processes on a 2-core host (one Ray
        # worker process per running task; a hundred of them, each a Python interpreter, would measure the host's
        # memory, not the driver)
        "resources": {"gpus_per_trial": 1, "cpus_per_trial": 0.25},
    }
    path = folder / f"scaling-{size}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(config: Path, run_dir: Path, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = nas_main(["search", str(config), "--run-dir", str(run_dir), "--workers", str(workers)])
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"search failed with exit code {code}")
    lines = sum(1 for _ in open(run_dir / "evaluations.jsonl"))
    return seconds, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        modes = [("in-process", 0)] + ([] if args.no_ray else [("ray, 100 simulated GPUs", 100)])
        for mode, workers in modes:
            if workers:
                import ray

                ray.init(num_cpus=2, num_gpus=100, include_dashboard=False, logging_level=logging.ERROR)
            run(write_config(folder, 20, args.strategy), folder / f"warmup-{workers}", workers)  # imports, Ray workers
            for size in args.sizes:
                config = write_config(folder, size, args.strategy)
                seconds, n = run(config, folder / f"{workers}-{size}", workers)
                rows.append(
                    {
                        "mode": mode,
                        "candidates": n,
                        "seconds": round(seconds, 2),
                        "ms_per_candidate": round(1000 * seconds / n, 3),
                    }
                )
                print(
                    f"  {mode:<26}{n:>8} candidates {seconds:>8.1f} s {1000 * seconds / n:>8.2f} ms each",
                    file=sys.stderr,
                )
            if workers:
                ray.shutdown()
    print(f"\ndriver scaling ({args.strategy}, batches of 100, zero-cost synthetic candidates)")
    print(f"{'mode':<28}{'candidates':>11}{'seconds':>10}{'ms/candidate':>14}")
    for r in rows:
        print(f"{r['mode']:<28}{r['candidates']:>11}{r['seconds']:>10.1f}{r['ms_per_candidate']:>14.2f}")
    for mode in dict.fromkeys(r["mode"] for r in rows):
        mine = [r for r in rows if r["mode"] == mode]
        growth = mine[-1]["ms_per_candidate"] / mine[0]["ms_per_candidate"]
        print(f"{mode}: ms/candidate at {mine[-1]['candidates']} / at {mine[0]['candidates']} = {growth:.2f}")
    print(json.dumps({"benchmark": "driver_scaling", "strategy": args.strategy, "rows": rows, **machine()}))


if __name__ == "__main__":
    main()
