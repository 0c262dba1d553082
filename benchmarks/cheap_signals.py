"""Cheap signals: how well signals that cost a fraction of a training rank networks by another training seed's
full-budget validation accuracy, against the seed ceiling (two seeds' full-budget accuracies against each other).

Two sets of networks, each trained twice at the full budget:
- `ceiling`: the networks of `rank_fidelity.py --ceiling` (`--arch-seed` draws them, one file a config seed,
  which draws the initialisation *and* the data sample; accuracies after the `--rungs` epochs and at the end);
- `pairs`: the networks of the surrogate table trained with two training seeds on one data sample (accuracy
  after every epoch).
Every signal of one training (seed s) is scored against the full-budget accuracy of the *other* training, never
against its own continuation, and the two directions are averaged: Kendall's tau and the overlap of the top k
(10, or a quarter of the set when it holds under 30 networks). The signals:
- the run's own full-budget accuracy: the seed ceiling, the first row;
- `params` and `flops` (by formula, free) and the zero-cost proxies of `nas.evaluate.proxies` at the seed's
  initialisation on one mini-batch of `--batch` training images of the seed's data;
- the accuracy after epoch e of the full schedule (a run stopped early: a one-cycle schedule still at a high
  learning rate) and its extrapolation to the last epoch from epochs 1 and 2, linear in log(epoch);
- on the ceiling set, one epoch of real training two ways, as `search.fidelity.signal` ranks a 1-epoch rung:
  epoch 1 of the 4-epoch schedule (`truncated`: the validation accuracy, which the ceiling files also hold, and
  SoTL-E, the negated mean training loss of that epoch, Ru et al. NeurIPS 2021) and a complete 1-epoch schedule
  (`restart`: its validation accuracy and its SoTL-E). These trainings are cached one a line in `--rung-cache`
  (a killed `--train-rungs` run continues where it stopped); without `--train-rungs` the table reads the cache;
- a random forest on the surrogate's genome features (+ proxies, + the epoch-1 accuracy) fitted on the final
  accuracies of the surrogate table's other networks (leave the scored network out): an online predictor, whose
  cost is the features' plus the trainings it is fitted on (a search has those from its earlier evaluations).
Prints a table, then one JSON line with the machine and the date. About 3 minutes on one core of a loaded
2-core machine (the proxies of some 150 networks; the trainings are read, not run). `--below` freezes the table,
which a running build appends to:

    nice -n 10 .venv/bin/python benchmarks/cheap_signals.py --below 62
    nice -n 15 .venv/bin/python benchmarks/cheap_signals.py --below 62 --train-rungs   # fill the rung cache first
"""

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch
from scipy.stats import kendalltau
from sklearn.ensemble import RandomForestRegressor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.jsonl_cache import read_lines  # noqa: E402
from benchmarks.machine import machine  # noqa: E402
from benchmarks.rank_fidelity import configured, top_overlap  # noqa: E402
from benchmarks.surrogate_model import Row, base_rows, features, read_table  # noqa: E402
from nas.data.loading import load_dataset  # noqa: E402
from nas.errors import UserError  # noqa: E402
from nas.evaluate.proxies import PROXIES, proxy_scores, sample_batch  # noqa: E402
from nas.evaluate.trainer import seeded_model, train_model  # noqa: E402
from nas.genome.architecture import Architecture  # noqa: E402
from nas.genome.genome import Genome  # noqa: E402
from nas.genome.space import load_space  # noqa: E402
from nas.strategies.random_search import random_genome  # noqa: E402

DATA = ROOT / "benchmarks" / "data"


@dataclass
class Run:
    """One full-budget training of one network, and the signals computed for it."""

    key: str
    genome: Genome
    seed: int  # the training's seed: its initialisation, and the proxies'
    data_seed: int  # the config seed that drew its data sample
    accuracies: dict[int, float]  # epoch -> validation accuracy, the last epoch included
    seconds: float
    signals: dict[str, float] = field(default_factory=dict)


Pair = tuple[Run, Run]


class Context:
    """The config's space and data samples, loaded once a seed."""

    def __init__(self, config_path: Path, batch: int):
        self.config_path, self.batch = config_path, batch
        self.config = configured(config_path, {})
        self.space = load_space(self.config.encoding)
        self.epochs = self.config.fitness.epochs

    @cache  # noqa: B019 (one context a process)
    def data(self, seed: int):
        config = configured(self.config_path, {"seed": seed})
        return load_dataset(config.dataset, seed)

    def architecture(self, genome: Genome, data_seed: int) -> Architecture:
        d = self.data(data_seed)
        return Architecture.from_space(self.space, genome, d.in_channels, d.num_classes, d.input_size)


def ceiling_pairs(ctx: Context, files: list[Path], seeds: list[int], rungs: list[int], arch_seed: int) -> list[Pair]:
    """The networks of two `rank_fidelity.py` files of one `--seed`, drawn again to get their genomes."""
    records = [{r["key"]: r for r in map(json.loads, p.read_text().splitlines())} for p in files]
    rng = random.Random(arch_seed)
    genomes = {g.key: g for g in (random_genome(ctx.space, rng) for _ in range(max(map(len, records))))}
    if missing := [k for k in records[0] if k not in genomes]:
        raise UserError(f"{len(missing)} networks of {files[0]} are not drawn by --arch-seed {arch_seed}")
    epochs = [*rungs, ctx.epochs]
    pairs = []
    for key in (k for k in records[0] if k in records[1]):
        runs = [Run(key, genomes[key], s, s, dict(zip(epochs, r[key]["accuracies"], strict=True)), r[key]["seconds"])
                for r, s in zip(records, seeds, strict=True)]  # fmt: skip
        pairs.append((runs[0], runs[1]))
    return pairs


# The one-epoch trainings of a ceiling network: (kind, epochs of the schedule, epoch it stops after).
RUNG_TRAININGS = {"truncated": lambda budget: (budget, 1), "restart": lambda budget: (1, None)}


def read_rung_cache(path: Path) -> dict[tuple[str, int, str], dict]:
    """{(key, seed, kind): line} of the cache; an incomplete last line (a killed run) is left out."""
    return {(r["key"], r["seed"], r["kind"]): r for r in read_lines(path)}


def train_rung(ctx: Context, run: Run, kind: str) -> dict:
    """One epoch of `run`'s network under its config seed, as the `kind` rung trains it (`RUNG_TRAININGS`)."""
    config = configured(ctx.config_path, {"seed": run.data_seed})
    epochs, stop = RUNG_TRAININGS[kind](ctx.epochs)
    start = time.perf_counter()
    model = seeded_model(ctx.architecture(run.genome, run.data_seed), run.seed)
    report = train_model(model, ctx.data(run.data_seed), config.fitness, seed=run.seed, epochs=epochs,
                         lr=run.genome.learning_rate, stop_after=stop)  # fmt: skip
    return {"key": run.key, "seed": run.seed, "kind": kind, "schedule_epochs": epochs, "epochs": 1,
            "val_accuracy": report.val_accuracy, "train_loss": report.train_loss,
            "seconds": time.perf_counter() - start}  # fmt: skip


def add_rung_signals(ctx: Context, runs: list[Run], cache: Path, train: bool) -> dict[str, float]:
    """The four one-epoch rung signals of each run, from the cache, training the missing ones when `train` (each
    appended the moment it finishes); the mean seconds of each kind's training."""
    known = read_rung_cache(cache)
    seconds: dict[str, list[float]] = {kind: [] for kind in RUNG_TRAININGS}
    for i, run in enumerate(runs):
        for kind in RUNG_TRAININGS:
            line = known.get((run.key, run.seed, kind))
            if line is None and train:
                line = train_rung(ctx, run, kind)
                with cache.open("a") as f:
                    f.write(json.dumps(line) + "\n")
                print(f"  {i:>3} {run.key[:12]} seed {run.seed} {kind}: acc {line['val_accuracy']:.4f} "
                      f"loss {line['train_loss']:.4f} ({line['seconds']:.0f} s)", file=sys.stderr)  # fmt: skip
            if line is not None:
                run.signals[f"{kind}_acc_e1"] = line["val_accuracy"]
                run.signals[f"{kind}_sotl_e1"] = -line["train_loss"]
                seconds[kind].append(line["seconds"])
    return {kind: sum(s) / len(s) if s else math.nan for kind, s in seconds.items()}


def table_run(row: Row, data_seed: int) -> Run:
    accs = {e: a for e, a in enumerate(row.accuracies, start=1)}
    return Run(row.key, Genome.from_dict(row.genome), row.train_seed, data_seed, accs, row.seconds)


def table_pairs(rows: list[Row]) -> list[Pair]:
    """The networks of the surrogate table trained with its two training seeds, both finished."""
    base = min(r.train_seed for r in rows)
    by_seed = {s: {r.key: r for r in rows if r.train_seed == s and r.final is not None} for s in (base, base + 1)}
    return [(table_run(by_seed[base][k], base), table_run(r, base)) for k, r in by_seed[base + 1].items()
            if k in by_seed[base]]  # fmt: skip


def add_proxies(ctx: Context, runs: list[Run]) -> list[dict[str, float]]:
    """The proxies of each run (its initialisation, a batch of its data sample drawn by its seed), computed once
    for a network, seed and sample that two runs share; the seconds of each computation."""
    done: dict[tuple[str, int, int], dict[str, float]] = {}
    seconds = []
    for run in runs:
        ident = (run.key, run.seed, run.data_seed)
        if ident not in done:
            batch = sample_batch(ctx.data(run.data_seed), ctx.batch, run.seed)
            done[ident], spent = proxy_scores(ctx.architecture(run.genome, run.data_seed), batch, run.seed)
            seconds.append(spent)
        run.signals.update(done[ident])
    return seconds


def add_curve_signals(run: Run, epochs: int) -> None:
    """The accuracy after each early epoch, and the extrapolation from epochs 1 and 2, linear in log(epoch)."""
    for e in range(1, epochs):
        if e in run.accuracies:
            run.signals[f"acc_e{e}"] = run.accuracies[e]
    a1, a2 = run.accuracies.get(1), run.accuracies.get(2)
    if a1 is not None and a2 is not None:
        run.signals["extrap_e1e2"] = a2 + (a2 - a1) * math.log(epochs / 2) / math.log(2)


def finite_log(v: float) -> float:
    return math.log(v) if v > 0 else -1e3


def predictor_features(run: Run, extra: tuple[str, ...]) -> list[float]:
    """The surrogate's genome features (per-block layers, growth, shortcut density, log params and FLOPs), then
    the `extra` signals: proxies in log where positive (synflow spans 20 decades), NASWOT as it is."""
    s = run.signals
    base = features(run.genome.to_dict(), int(s["params"]), int(s["flops"]))
    more = [finite_log(s[n]) if n in ("synflow", "grad_norm", "snip") else s[n] for n in extra]
    return base + [v if math.isfinite(v) else -1e3 for v in more]


PREDICTORS = {
    "forest(genome)": (),
    "forest(genome+proxies)": PROXIES,
    "forest(genome+proxies+acc_e1)": (*PROXIES, "acc_e1"),
}


def add_predictions(pool: list[Run], runs: list[Run], epochs: int) -> float:
    """Each predictor's forecast of each run's final accuracy, fitted on the `pool` runs of other networks (one
    fit per left-out key, cached); the mean seconds of one fit."""
    fits: dict[tuple[str, str], RandomForestRegressor] = {}
    spent: list[float] = []
    for run in runs:
        for name, extra in PREDICTORS.items():
            if (name, run.key) not in fits:
                start = time.perf_counter()
                train = [p for p in pool if p.key != run.key]
                model = RandomForestRegressor(n_estimators=300, min_samples_leaf=2, random_state=0, n_jobs=1)
                model.fit([predictor_features(p, extra) for p in train], [p.accuracies[epochs] for p in train])
                fits[(name, run.key)] = model
                spent.append(time.perf_counter() - start)
            run.signals[name] = float(fits[(name, run.key)].predict([predictor_features(run, extra)])[0])
    return sum(spent) / len(spent)


def top_k(n: int) -> int:
    """10 from 30 networks up (as `rank_fidelity.py` on its 30), a quarter of a smaller set."""
    return 10 if n >= 30 else max(1, round(n / 4))


def null_tau_error(n: int) -> float:
    """The standard error of Kendall's tau of n independent pairs: the scale of a difference that means nothing."""
    return math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))


def score(pairs: list[Pair], signal: Callable[[Run, Run], float | None], epochs: int) -> dict[str, float] | None:
    """Tau and top-k overlap of `signal(run, other)` against the other run's final accuracy, both directions
    averaged; None where a run lacks the signal."""
    taus, overlaps = [], []
    for first, second in ((0, 1), (1, 0)):
        values = [signal(p[first], p[second]) for p in pairs]
        if any(v is None for v in values):
            return None
        target = [p[second].accuracies[epochs] for p in pairs]
        taus.append(float(kendalltau(values, target).statistic))
        overlaps.append(top_overlap(values, target, top_k(len(pairs))))
    return {"kendall_tau": round(sum(taus) / 2, 3), "top_overlap": sum(overlaps) / 2}


def signal_table(sets: dict[str, list[Pair]], costs: dict[str, tuple[float, float]], epochs: int) -> list[dict]:
    """One row a signal: its cost (epochs, seconds a network) and its score on every set."""

    def reader(name: str) -> Callable[[Run, Run], float | None]:
        if name == "ceiling":  # the run's own final accuracy, scored against the other seed's
            return lambda run, other: run.accuracies[epochs]
        return lambda run, other: run.signals.get(name)

    return [{"signal": name, "epochs": costs[name][0], "seconds": round(costs[name][1], 2),
             **{s: score(pairs, reader(name), epochs) for s, pairs in sets.items()}}
            for name in costs]  # fmt: skip


def print_table(rows: list[dict], sets: dict[str, list[Pair]]) -> None:
    heads = "".join(f"{f'{s} ({len(p)}) tau':>20}{f'top-{top_k(len(p))}':>8}" for s, p in sets.items())
    print(f"{'signal':<32}{'epochs':>7}{'s/network':>10}{heads}")
    for r in rows:
        cells = ""
        for s in sets:
            v = r[s]
            cells += f"{'n/a':>20}{'':>8}" if v is None else f"{v['kendall_tau']:>20.3f}{v['top_overlap']:>8.1f}"
        print(f"{r['signal']:<32}{r['epochs']:>7.2f}{r['seconds']:>10.2f}{cells}")


def cost_of(proxy_seconds: list[dict], training: float, fit: float, epochs: int,
            rung_seconds: dict[str, float]) -> dict[str, tuple[float, float]]:  # fmt: skip
    """(epochs, seconds a network) of each signal, in table order: a proxy's measured mean; a truncated run's share
    of the mean full training; a predictor's features plus one fit (its training data is the search's own)."""
    proxy = {name: sum(s[name] for s in proxy_seconds) / len(proxy_seconds) for name in (*PROXIES, "params")}
    every_proxy = sum(proxy[p] for p in PROXIES)
    share = training / epochs
    return {
        "ceiling": (float(epochs), training),
        "params": (0.0, 0.0),
        "flops": (0.0, 0.0),
        **{p: (0.0, proxy[p]) for p in PROXIES},
        **{f"acc_e{e}": (float(e), e * share) for e in range(1, epochs)},
        "extrap_e1e2": (2.0, 2 * share),
        **{f"{kind}_{what}_e1": (1.0, rung_seconds[kind]) for kind in RUNG_TRAININGS for what in ("acc", "sotl")},
        "forest(genome)": (0.0, fit),
        "forest(genome+proxies)": (0.0, every_proxy + fit),
        "forest(genome+proxies+acc_e1)": (1.0, every_proxy + fit + share),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "search_configs" / "cifar10_bench.yaml")
    parser.add_argument(
        "--ceiling",
        type=Path,
        nargs=2,
        metavar="JSONL",
        default=[DATA / "ceiling_bench4ep_seed0.jsonl", DATA / "ceiling_bench4ep_seed1.jsonl"],
    )
    parser.add_argument("--ceiling-seeds", type=int, nargs=2, default=[0, 1], help="the config seed of each file")
    parser.add_argument("--rungs", type=int, nargs="+", default=[1, 2], help="the rungs the ceiling files hold")
    parser.add_argument("--arch-seed", type=int, default=7, help="rank_fidelity.py's --seed of the ceiling files")
    parser.add_argument("--table", type=Path, default=DATA / "surrogate_cifar10_bench.csv")
    parser.add_argument("--below", type=int, help="only the table's rows of index below this (the table grows)")
    parser.add_argument("--batch", type=int, default=128, help="images of the proxies' mini-batch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--rung-cache",
        type=Path,
        default=DATA / "cheap_signals_rungs_bench4ep.jsonl",
        help="the one-epoch rung trainings of the ceiling set, one a line",
    )
    parser.add_argument("--train-rungs", action="store_true", help="train the rungs the cache lacks (resumable)")
    args = parser.parse_args()  # fmt: skip
    torch.set_num_threads(args.threads)
    started = time.time()
    ctx = Context(args.config, args.batch)
    table = [r for r in read_table(args.table) if args.below is None or r.index < args.below]
    sets = {"ceiling": ceiling_pairs(ctx, args.ceiling, args.ceiling_seeds, args.rungs, args.arch_seed),
            "pairs": table_pairs(table)}  # fmt: skip
    base_seed = min(r.train_seed for r in table)
    pool = [table_run(r, base_seed) for r in base_rows(table)]
    runs = [run for pairs in sets.values() for pair in pairs for run in pair]
    rung_seconds = add_rung_signals(ctx, [run for pair in sets["ceiling"] for run in pair], args.rung_cache,
                                    args.train_rungs)  # fmt: skip
    proxy_seconds = add_proxies(ctx, [*runs, *pool])
    for run in [*runs, *pool]:
        add_curve_signals(run, ctx.epochs)
    fit_seconds = add_predictions(pool, runs, ctx.epochs)
    training = sum(r.seconds for r in runs) / len(runs)
    costs = cost_of(proxy_seconds, training, fit_seconds, ctx.epochs, rung_seconds)
    rows = signal_table(sets, costs, ctx.epochs)
    print(
        f"\ncheap signals: {ctx.config.name}, {ctx.epochs}-epoch budget, scored against the other seed's final "
        f"accuracy (both directions averaged); predictors fitted on {len(pool)} table networks, leave-one-out"
    )
    print_table(rows, sets)
    print("standard error of tau between unrelated rankings: "
          + ", ".join(f"{s} {null_tau_error(len(p)):.2f}" for s, p in sets.items()))  # fmt: skip
    record = {"benchmark": "cheap_signals", "config": ctx.config.name, "epochs": ctx.epochs,
              "networks": {s: len(p) for s, p in sets.items()}, "predictor_pool": len(pool),
              "table_below": args.below, "batch": args.batch,
              "seconds_per_training": round(training, 1), "fit_seconds": round(fit_seconds, 2), "signals": rows,
              "seconds": round(time.time() - started, 1), **machine()}  # fmt: skip
    print(json.dumps(record))


if __name__ == "__main__":
    main()
