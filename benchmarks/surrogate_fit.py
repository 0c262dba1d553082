"""Surrogate fit: how well a model of the genome predicts a network's real accuracy, against the training noise.

Reads a table of `surrogate_build.py`, fits `surrogate_model.fit` (gradient-boosted trees over per-block
layers, growth rate and shortcut bits, log params, log FLOPs and the learning rate) on the final-epoch
validation accuracy of the build's training seed, holding out `--test-fraction` of the networks (a seeded
shuffle), and reports Kendall's tau and Spearman's rho between its predictions and the real accuracies of the
held-out networks; beside it, the same for the parameter count alone (what a surrogate must beat to know
anything), and the noise: over the networks trained with two seeds, the standard deviation of the difference
of their two final accuracies (sqrt(2) times one training's) and the seed-to-seed Kendall tau, the ceiling of
any predictor's tau. Prints a table, then one JSON line with the machine and the date.

    .venv/bin/python benchmarks/surrogate_fit.py benchmarks/data/surrogate_cifar10_bench.csv
"""

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

from scipy.stats import kendalltau, spearmanr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.surrogate_model import Row, base_rows, fit, predict, read_table  # noqa: E402

MIN_NETWORKS = 20  # below this a held-out fifth is a handful of networks, and its tau says nothing


def rank_agreement(a: list[float], b: list[float]) -> dict[str, float | None]:
    """Kendall's tau and Spearman's rho of two paired lists; None where undefined (under 3 pairs, a constant)."""
    if len(a) < 3:
        return {"kendall_tau": None, "spearman": None}
    out = {"kendall_tau": float(kendalltau(a, b).statistic), "spearman": float(spearmanr(a, b).statistic)}
    return {k: round(v, 3) if math.isfinite(v) else None for k, v in out.items()}


def split(rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """(fitted, held out): a seeded shuffle of the networks, the first `fraction` of it held out (at least 1)."""
    shuffled = sorted(rows, key=lambda r: r.index)
    random.Random(seed).shuffle(shuffled)
    held = max(1, math.ceil(fraction * len(shuffled)))
    return shuffled[held:], shuffled[:held]


def seed_pairs(rows: list[Row]) -> list[tuple[float, float]]:
    """(first seed, second seed) final accuracies of every network trained, successfully, with both."""
    first = {r.index: r.final for r in base_rows(rows)}
    seed = min(r.train_seed for r in rows)
    return [(first[r.index], r.final) for r in rows
            if r.train_seed == seed + 1 and r.final is not None and r.index in first]  # fmt: skip


def noise(rows: list[Row]) -> dict[str, object]:
    """The training noise over networks with two seeds: std (and mean absolute) of the difference, agreement."""
    pairs = seed_pairs(rows)
    diffs = [a - b for a, b in pairs]
    return {
        "pairs": len(pairs),
        "std_difference": round(statistics.stdev(diffs), 4) if len(diffs) >= 2 else None,
        "mean_abs_difference": round(statistics.mean(abs(d) for d in diffs), 4) if diffs else None,
        **rank_agreement([a for a, _ in pairs], [b for _, b in pairs]),
    }


def evaluate(rows: list[Row], fraction: float, seed: int) -> dict[str, object]:
    """Fit on the kept networks, score on the held-out ones; with the params-alone baseline and fit seconds."""
    fitted, held = split(base_rows(rows), fraction, seed)
    start = time.perf_counter()
    model = fit(fitted, seed)
    seconds = time.perf_counter() - start
    real = [r.final for r in held]
    predicted = predict(model, held)
    rmse = math.sqrt(statistics.mean((p - y) ** 2 for p, y in zip(predicted, real, strict=True)))
    return {
        "fitted": len(fitted),
        "held_out": len(held),
        "surrogate": rank_agreement(predicted, real),
        "params_alone": rank_agreement([float(r.params) for r in held], real),
        "rmse": round(rmse, 4),
        "fit_seconds": round(seconds, 2),
    }


def cell(value: object) -> str:
    return f"{'n/a':>12}" if value is None else f"{value:>12.3f}"


def print_report(path: Path, networks: int, epochs: int, scores: dict, spread: dict) -> None:
    print(f"\nsurrogate fit: {path}, {networks} networks, final accuracy after {epochs} epochs")
    print(f"fitted on {scores['fitted']}, held out {scores['held_out']}; fit in {scores['fit_seconds']} s, "
          f"held-out RMSE {scores['rmse']:.4f}")  # fmt: skip
    print(f"{'':<34}{'kendall tau':>12}{'spearman':>12}")
    lines = [("surrogate vs real (held out)", scores["surrogate"]), ("params alone vs real (held out)",
             scores["params_alone"]), (f"seed vs seed ({spread['pairs']} networks)", spread)]  # fmt: skip
    for name, s in lines:
        print(f"{name:<34}{cell(s['kendall_tau'])}{cell(s['spearman'])}")
    std = "n/a" if spread["std_difference"] is None else f"{spread['std_difference']:.4f}"
    print(f"seed-to-seed final accuracy difference: std {std}, mean absolute {spread['mean_abs_difference']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path, help="a CSV of surrogate_build.py")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="networks held out")
    parser.add_argument("--seed", type=int, default=0, help="the split and the model's seed")
    args = parser.parse_args()
    if not 0 < args.test_fraction < 1:
        sys.exit(f"error: --test-fraction must be in (0, 1), got {args.test_fraction}")
    try:
        rows = read_table(args.table)
    except (OSError, ValueError) as exc:
        sys.exit(f"error: cannot read {args.table}: {exc}")
    networks = len(base_rows(rows))
    if networks < MIN_NETWORKS:
        sys.exit(f"error: {args.table} has {networks} networks with a final accuracy; a fit needs at least "
                 f"{MIN_NETWORKS} (train more with benchmarks/surrogate_build.py)")  # fmt: skip
    epochs = len(rows[0].accuracies)
    scores, spread = evaluate(rows, args.test_fraction, args.seed), noise(rows)
    print_report(args.table, networks, epochs, scores, spread)
    record = {"benchmark": "surrogate_fit", "table": str(args.table), "networks": networks, "epochs": epochs,
              **scores, "noise": spread, "test_fraction": args.test_fraction, "seed": args.seed,
              **machine()}  # fmt: skip
    print(json.dumps(record))


if __name__ == "__main__":
    main()
