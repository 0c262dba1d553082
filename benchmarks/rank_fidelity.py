"""Rank fidelity: how well a network's validation accuracy after few epochs predicts its rank after the full budget.

For `--archs` random architectures of the config's search space (uniform positions and shortcut bits, as the
`random` strategy draws them), one training each with the schedule of the full `--epochs` budget, stopped at
every rung epoch of `--rungs` to read the validation accuracy and continued from its saved state: exactly what the
rungs of `search.fidelity` see. Prints, for each rung, Kendall's tau between its accuracies and the full-budget
ones and the overlap of the top 10 (how many of the 10 best at the full budget are among the 10 best at that
rung), then one JSON line with the machine and the date. Results go to `--out` one line an architecture, so a
benchmark stopped halfway continues where it was.

    nice -n 10 .venv/bin/python benchmarks/rank_fidelity.py --config search_configs/cifar10_jpeg_lowfi.yaml \
        --epochs 9 --rungs 1 3 --archs 30 --set dataset.train_subset=0.05
"""

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import yaml
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from nas.config import load_config, parse_config  # noqa: E402
from nas.data.loading import load_dataset  # noqa: E402
from nas.evaluate.train_objective import TrainObjective  # noqa: E402
from nas.evaluate.trainer import seeded_model, train_model  # noqa: E402
from nas.genome.space import load_space  # noqa: E402
from nas.strategies.random_search import random_genome  # noqa: E402


def configured(path: Path, overrides: dict) -> object:
    """The config at `path` with dotted overrides applied (validated like any config)."""
    config = load_config(path)
    data = config.to_dict()
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return parse_config(data)


def rung_accuracies(objective: TrainObjective, genome, epochs: int, rungs: list[int]) -> tuple[list[float], float]:
    """Validation accuracy after each rung epoch and at the full budget, one training; and its seconds."""
    config = objective.config
    fitness = config.fitness
    start = time.perf_counter()
    state, accuracies = None, []
    for stop in [*rungs, None]:
        model = seeded_model(objective.architecture(genome), config.seed)
        report = train_model(model, objective.data, fitness, seed=config.seed, epochs=epochs,
                             lr=genome.learning_rate, resume_from=state, stop_after=stop)  # fmt: skip
        accuracies.append(report.val_accuracy)
        state = report.state
    return accuracies, time.perf_counter() - start


def top_overlap(a: list[float], b: list[float], k: int = 10) -> int:
    """How many of the k best by `b` are among the k best by `a` (ties broken by index)."""
    best = lambda v: set(sorted(range(len(v)), key=lambda i: (-v[i], i))[:k])  # noqa: E731
    return len(best(a) & best(b))


def print_ceiling(first: Path, second: Path) -> None:
    """The seed ceiling: Kendall's tau between two training seeds' full-budget accuracies of the architectures
    both files hold (the same `--seed`, so the same architectures), and the accuracy spread, as one JSON line."""
    a, b = ({r["key"]: r for r in map(json.loads, p.read_text().splitlines())} for p in (first, second))
    keys = [k for k in a if k in b]
    x, y = [a[k]["accuracies"][-1] for k in keys], [b[k]["accuracies"][-1] for k in keys]
    seconds = [a[k]["seconds"] for k in keys] + [b[k]["seconds"] for k in keys]
    tau = round(float(kendalltau(x, y).statistic), 3)
    record = {"benchmark": "seed_ceiling", "archs": len(keys), "kendall_tau": tau,
              "accuracy_min": min(x + y), "accuracy_max": max(x + y),
              "mean_abs_seed_difference": round(sum(abs(p - q) for p, q in zip(x, y, strict=True)) / len(keys), 4),
              "seconds_per_training": round(sum(seconds) / len(seconds), 1), **machine()}  # fmt: skip
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="required unless --ceiling")
    parser.add_argument("--epochs", type=int, default=9, help="the full budget (its schedule is followed)")
    parser.add_argument("--rungs", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="draws the architectures")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, dotted.key=yaml_value")
    parser.add_argument("--out", type=Path, help="JSON Lines of per-architecture results (reused)")
    parser.add_argument(
        "--ceiling",
        type=Path,
        nargs=2,
        metavar="JSONL",
        help="only compare two --out files of one --seed and two training seeds: the seed ceiling",
    )
    args = parser.parse_args()
    if args.ceiling:
        return print_ceiling(*args.ceiling)
    if args.config is None:
        parser.error("--config is required")
    torch.set_num_threads(args.threads)
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    config = configured(args.config, {**overrides, "fitness.epochs": args.epochs})
    space = load_space(config.encoding)
    objective = TrainObjective(config, space, load_dataset(config.dataset, config.seed))
    out = args.out or ROOT / "runs" / f"rank-fidelity-{config.name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    rng = random.Random(args.seed)
    genomes = [random_genome(space, rng) for _ in range(args.archs)]
    started = time.time()
    with out.open("a") as f:
        for i, genome in enumerate(genomes[len(done) :], start=len(done)):
            accuracies, seconds = rung_accuracies(objective, genome, args.epochs, args.rungs)
            row = {"index": i, "key": genome.key, "accuracies": accuracies, "seconds": seconds}
            f.write(json.dumps(row) + "\n")
            f.flush()
            done.append(row)
            print(f"  {i:>3}: {' '.join(f'{a:.3f}' for a in accuracies)}  ({seconds:.0f} s)", file=sys.stderr)
    full = [r["accuracies"][-1] for r in done]
    rows = []
    for j, rung in enumerate(args.rungs):
        at = [r["accuracies"][j] for r in done]
        tau = float(kendalltau(at, full).statistic)  # NaN when one side is constant (a saturated task)
        rows.append({"epochs": rung, "kendall_tau": round(tau, 3) if math.isfinite(tau) else None,
                     "top10_overlap": top_overlap(at, full)})  # fmt: skip
    n = len(train := objective.data.y_train)
    print(f"\nrank fidelity: {config.name}, {len(done)} architectures, full budget {args.epochs} epochs, "
          f"{n} training / {len(objective.data.y_val)} validation images")  # fmt: skip
    print(f"{'epochs':>8}{'kendall tau':>13}{'top-10 overlap':>16}")
    for r in rows:
        tau = "n/a" if r["kendall_tau"] is None else f"{r['kendall_tau']:.3f}"
        print(f"{r['epochs']:>8}{tau:>13}{r['top10_overlap']:>13}/10")
    print(f"full-budget accuracy: min {min(full):.3f}, median {sorted(full)[len(full) // 2]:.3f}, max {max(full):.3f}")
    record = {
        "benchmark": "rank_fidelity",
        "config": config.name,
        "archs": len(done),
        "epochs": args.epochs,
        "train_images": len(train),
        "rungs": rows,
        "seconds_per_architecture": round(sum(r["seconds"] for r in done) / max(len(done), 1), 1),
        "seconds": round(time.time() - started, 1),
        "overrides": overrides,
        **machine(),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
