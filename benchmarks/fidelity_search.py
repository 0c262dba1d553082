"""Multi-fidelity search: best validation accuracy against compute, hgapso with and without `search.fidelity`.

Both arms run the same config (`search_configs/cifar10_jpeg_lowfi.yaml` by default, real training) over the
same seeds; the fidelity arm adds `search.fidelity: {min_epochs, eta}` and, so that the comparison is at equal
compute, a larger candidate budget (`--fidelity-budget`). Compute is the sum of the `seconds` of every log line
(each candidate's, or each rung's, training and validation on one torch thread), or with `--compute epochs`
the training epochs themselves (a rung continued from epoch e0 to e counts e - e0): on a CPU shared with other
work a candidate's seconds vary with the load (2x here), its epochs do not, but epochs leave out the model
build and the validation pass that every rung repeats. The best accuracy counts only
full-budget results (the top rung of the fidelity arm), since lower rungs are not comparable. Prints a table
(best accuracy at fractions of the baseline's compute, mean over seeds) and one JSON line with the machine and
the date; the runs stay under `--out`, and a benchmark stopped halfway resumes them.

    nice -n 10 .venv/bin/python benchmarks/fidelity_search.py --seeds 3 --budget 18 --fidelity-budget 72 \
        --set fitness.epochs=9 dataset.train_subset=0.04 dataset.validation_fraction=0.2
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
from nas.evaluate import synthetic  # noqa: E402

FRACTIONS = (0.25, 1 / 3, 0.5, 1.0)


def write_config(base: Path, path: Path, budget: int, overrides: dict, fidelity: dict | None) -> Path:
    data = yaml.safe_load(base.read_text())
    data["encoding"] = str((base.parent / data["encoding"]).resolve())
    if data.get("dataset", {}).get("root"):
        data["dataset"]["root"] = str((base.parent / data["dataset"]["root"]).resolve())
    data.setdefault("search", {})["budget"] = {"evaluations": budget}
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    if fidelity is not None:
        data["search"]["fidelity"] = fidelity
    path.write_text(yaml.safe_dump(data))
    return path


def run_one(config: Path, run: Path, seed: int) -> None:
    """One search to its end, resumed when its folder holds a checkpoint."""
    if (run / "checkpoint.json").exists():
        argv = ["resume", str(run)]
    else:
        shutil.rmtree(run, ignore_errors=True)
        argv = ["search", str(config), "--run-dir", str(run), "--seed", str(seed)]
    with contextlib.redirect_stdout(io.StringIO()):
        code = nas_main([*argv, "--workers", "0"])
    if code != 0:
        raise SystemExit(f"search {run} failed with exit code {code}")


def curve(run: Path, full_epochs: int, compute: str = "seconds") -> list[tuple[float, float]]:
    """(compute so far, best full-budget accuracy so far) after every log line."""
    out, spent, best = [], 0.0, 0.0
    for line in (run / "evaluations.jsonl").read_text().splitlines():
        r = json.loads(line)
        if compute == "epochs":
            spent += r["metrics"].get("epochs_trained", r.get("epochs", full_epochs))
        else:
            spent += r["seconds"]
        if r["status"] == "ok" and r.get("epochs", full_epochs) == full_epochs:
            best = max(best, r["fitness"])
        out.append((spent, best))
    return out


def best_at(points: list[tuple[float, float]], compute: float) -> float:
    """Best accuracy reached within `compute` seconds."""
    return max((b for c, b in points if c <= compute), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "search_configs/cifar10_jpeg_lowfi.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="several processes may share --out")
    parser.add_argument("--budget", type=int, default=18, help="candidates of the full-fidelity arm")
    parser.add_argument("--fidelity-budget", type=int, default=72, help="candidates of the fidelity arm")
    parser.add_argument("--min-epochs", type=int, default=1)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=["full", "fidelity"])
    parser.add_argument("--compute", choices=["seconds", "epochs"], default="seconds")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, dotted.key=yaml_value")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "fidelity-search")
    noise_help = "the synthetic objective's rung noise (0.15, the default, ranks as low-fidelity CIFAR-10 does)"
    parser.add_argument("--fidelity-noise", type=float, help=noise_help)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.fidelity_noise is not None:  # the searches run in this process (`--workers 0`)
        synthetic.FIDELITY_NOISE = args.fidelity_noise
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    fidelity = {"min_epochs": args.min_epochs, "eta": args.eta}
    budgets = {"full": (args.budget, None), "fidelity": (args.fidelity_budget, fidelity)}
    started = time.time()
    curves: dict[str, list[list[tuple[float, float]]]] = {arm: [] for arm in args.arms}
    full_epochs = 0
    for seed in args.seeds:
        for arm in args.arms:
            run = args.out / f"{arm}-seed{seed}"
            config = write_config(args.config, args.out / f"{arm}-seed{seed}.yaml", *budgets[arm][:1], overrides,
                                  budgets[arm][1])  # fmt: skip
            full_epochs = yaml.safe_load(config.read_text())["fitness"]["epochs"]
            run_one(config, run, seed)
            curves[arm].append(curve(run, full_epochs, args.compute))
            spent, best = curves[arm][-1][-1]
            print(f"  {arm:<9} seed {seed}: best {best:.4f} after {spent:.0f} {args.compute}", file=sys.stderr)
    rows = []
    if "full" in curves and curves["full"]:
        reference = statistics.fmean(c[-1][0] for c in curves["full"])
        for arm, runs in curves.items():
            at = {f"{f:.2f}": statistics.fmean(best_at(c, f * reference) for c in runs) for f in FRACTIONS}
            rows.append({
                "arm": arm,
                "seeds": len(runs),
                "compute_s": statistics.fmean(c[-1][0] for c in runs),
                "final_best": statistics.fmean(c[-1][1] for c in runs),
                "final_best_std": statistics.pstdev(c[-1][1] for c in runs),
                "best_at_fraction_of_full_compute": at,
            })  # fmt: skip
        print(f"\nbest validation accuracy (mean over seeds) within a fraction of the full arm's {reference:.0f} "
              f"{args.compute}")  # fmt: skip
        print(f"{'arm':<10}" + "".join(f"{f'x{f:.2f}':>9}" for f in FRACTIONS) + f"{'final':>9}{args.compute:>11}")
        for r in rows:
            cells = "".join(f"{v:>9.4f}" for v in r["best_at_fraction_of_full_compute"].values())
            print(f"{r['arm']:<10}{cells}{r['final_best']:>9.4f}{r['compute_s']:>11.0f}")
    record = {
        "benchmark": "fidelity_search",
        "seeds": args.seeds,
        "budget": args.budget,
        "fidelity_budget": args.fidelity_budget,
        "fidelity": fidelity,
        "compute": args.compute,
        "fidelity_noise": synthetic.FIDELITY_NOISE,
        "overrides": overrides,
        "results": rows,
        "seconds": round(time.time() - started, 1),
        **machine(),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
