"""Surrogate table: real trainings of many networks of a config's space, the data of a NAS-Bench-301-style surrogate.

Each network of a deterministic schedule of `--networks` is trained once with the config's seed for `--epochs`
(default `fitness.epochs`), stopped after every epoch to read its validation accuracy and continued from its
saved state (`rank_fidelity.rung_accuracies` with a rung at every epoch: one training, following the schedule of
the whole budget). `--second-seed` of them are trained again with the next seed, which measures the noise a
surrogate cannot predict. One CSV row a training (`benchmarks/surrogate_model.py` describes the columns),
appended and synced one at a time: a build killed at any instant continues where it stopped, a partly written
last line dropped and trained again. `benchmarks/surrogate_fit.py` fits and scores a surrogate on the table.

Which networks, index i of the schedule (so a resumed build makes the choices the uninterrupted one made):
- i % 5 in {0, 2, 4} (60%): random, `random_genome` with a `random.Random` seeded by (`--seed`, i), drawn
  again while the table already holds the genome.
- i % 5 in {1, 3} (40%): proposed by a strategy, in turn hgapso, regularized-evolution, pso. The strategy
  (`build_strategy` on the config's `search` section, its budget set to its share of the schedule) is replayed
  from scratch with the table as its evaluation cache: it asks batches, a batch whose genomes the table holds
  all is told their final accuracies at the config's seed, and its first asked genome not in the table is the
  proposal. Each strategy thus walks one search trajectory, one new genome per index it is given, and learns
  from what it proposed before (and from random rows it happens to ask). A strategy that stops (`done`) is
  replayed again with the next seed, up to `RESTARTS` times; after that the index is a random network.
- The second seed goes to one index drawn at random in each of `--second-seed` equal strata of the schedule:
  spread over it, with both sources in their proportions. Changing `--networks` or `--second-seed` on a
  resumed build changes this choice for the indices not trained yet.

A training that raises (a network over `limits`, out of GPU memory) is a row with empty accuracy cells, and the
build goes on; delete its line to train it again. The validation carve is the config seed's for both seeds:
only the initialisation and the batch order change. Prints progress to stderr, then a summary table and one
JSON line with the machine and the date.

    nice -n 10 .venv/bin/python benchmarks/surrogate_build.py --config search_configs/cifar10_jpeg_lowfi.yaml \
        --set dataset.train_subset=0.01 --epochs 2 --networks 4 --second-seed 1 --out /tmp/sb.csv
"""

import argparse
import csv
import dataclasses
import io
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Container
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from benchmarks.rank_fidelity import configured, rung_accuracies  # noqa: E402
from benchmarks.surrogate_model import Row, columns, complete_lines, parse_lines, parse_row, row_values  # noqa: E402
from nas.config import Config, SearchConfig  # noqa: E402
from nas.data.loading import load_dataset  # noqa: E402
from nas.errors import UserError  # noqa: E402
from nas.evaluate.result import Result  # noqa: E402
from nas.evaluate.train_objective import TrainObjective  # noqa: E402
from nas.genome.genome import Genome  # noqa: E402
from nas.genome.space import SearchSpace, load_space  # noqa: E402
from nas.model.analytic_cost import analytic_cost, check_cost  # noqa: E402
from nas.strategies import build_strategy  # noqa: E402
from nas.strategies.random_search import random_genome  # noqa: E402
from nas.strategies.strategy import Strategy  # noqa: E402

PATTERN = ("random", "strategy", "random", "strategy", "random")  # 60% random, 40% proposed, interleaved
STRATEGY_CYCLE = ("hgapso", "regularized-evolution", "pso")
RANDOM_DRAWS = 1000  # redraws of a random network the table already holds (only a tiny space runs out)
RESTARTS = 20  # replays of a strategy with a new seed after it stops


class Table:
    """The CSV on disk and its rows in memory: which trainings are done, and what a replayed strategy is told."""

    def __init__(self, path: Path, epochs: int, base_seed: int):
        self.path, self.epochs, self.base_seed = path, epochs, base_seed
        self.rows: list[Row] = []
        self.base: dict[str, Row] = {}  # key -> the row at the config's seed
        self.done: set[tuple[int, int]] = set()  # (index, train_seed)
        self.genomes: dict[int, Row] = {}  # index -> its first row (genome and source)

    def open(self) -> None:
        """Read what a previous build wrote, dropping a partly written last line, or start the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = self.path.read_bytes() if self.path.exists() else b""
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) < len(data):
            os.truncate(self.path, len(whole))
            print(f"dropped a partly written last line of {self.path}", file=sys.stderr)
        lines = complete_lines(whole.decode("utf-8"))
        if not lines:
            self.write(columns(self.epochs))
            return
        epochs, rows = parse_lines(lines)
        if epochs != self.epochs:
            raise UserError(f"{self.path} holds {epochs}-epoch trainings; pass --epochs {epochs} or another --out")
        for row in rows:
            self.add(row)

    def add(self, row: Row) -> None:
        if (row.index, row.train_seed) in self.done:
            raise UserError(f"{self.path}: index {row.index} seed {row.train_seed} is there twice")
        if row.train_seed not in (self.base_seed, self.base_seed + 1):
            raise UserError(f"{self.path}: training seed {row.train_seed} is not the config's seed or the next")
        self.rows.append(row)
        self.done.add((row.index, row.train_seed))
        self.genomes.setdefault(row.index, row)
        if row.train_seed == self.base_seed:
            self.base[row.key] = row

    def write(self, values: list[str]) -> None:
        """One CSV line, flushed and synced: a kill leaves whole lines and at most one partial last line."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(values)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())

    def append(self, row: Row) -> None:
        """Write `row`, and keep it as it reads back, so a resumed build replays the same numbers."""
        values = row_values(row)
        self.write(values)
        self.add(parse_row(values, self.epochs))

    def result(self, genome: Genome) -> Result:
        """What a replayed strategy is told for a genome of the table: its final accuracy at the config's seed."""
        row = self.base[genome.key]
        if row.final is None:
            return Result.failure(genome.key, genome.to_dict(), "training failed", params=row.params)
        return Result(key=genome.key, genome=genome.to_dict(), status="ok", fitness=row.final, params=row.params)


def source_of(index: int) -> str:
    """`random`, or the name of the strategy that proposes the network at `index` (module docstring)."""
    slot = index % len(PATTERN)
    if PATTERN[slot] == "random":
        return "random"
    ordinal = PATTERN[: slot + 1].count("strategy") - 1 + PATTERN.count("strategy") * (index // len(PATTERN))
    return STRATEGY_CYCLE[ordinal % len(STRATEGY_CYCLE)]


def second_seed_indices(networks: int, count: int, seed: int) -> set[int]:
    """One index drawn in each of `count` equal strata of the schedule: spread, both sources in proportion."""
    rng = random.Random(f"surrogate-second-seed:{seed}")
    count = min(count, networks)
    return {rng.randrange(j * networks // count, (j + 1) * networks // count) for j in range(count)}


def random_network(space: SearchSpace, index: int, seed: int, taken: Container[str]) -> Genome:
    """The random network of `index`: drawn from (`seed`, `index`) alone, again while its key is `taken`."""
    rng = random.Random(f"surrogate:{seed}:{index}")
    for _ in range(RANDOM_DRAWS):
        genome = random_genome(space, rng)
        if genome.key not in taken:
            return genome
    raise UserError(f"no new random network in {RANDOM_DRAWS} draws: the space is nearly exhausted")


def first_new(strategy: Strategy, table: Table) -> Genome | None:
    """Replay `strategy` with the table as its cache: its first asked genome the table lacks, None if it stops."""
    while not strategy.done():
        batch = strategy.ask()
        if not batch:
            return None
        for genome in batch:
            if genome.key not in table.base:
                return genome
        strategy.tell([table.result(g) for g in batch])
    return None


def proposed(name: str, search: SearchConfig, space: SearchSpace, table: Table, seed: int) -> Genome | None:
    """The next genome strategy `name` proposes given the table (module docstring), None if every replay stops."""
    for restart in range(RESTARTS):
        genome = first_new(build_strategy(search, space, seed * RESTARTS + restart), table)
        if genome is not None:
            return genome
    return None


def strategy_search(config: Config, name: str, networks: int) -> SearchConfig:
    """The config's `search` section for strategy `name`, its budget the indices the schedule gives it."""
    share = max(1, sum(source_of(i) == name for i in range(networks)))
    budget = dataclasses.replace(config.search.budget, evaluations=share, hours=None)
    return dataclasses.replace(config.search, strategy=name, budget=budget)


def network(index: int, args: argparse.Namespace, config: Config, space: SearchSpace,
            table: Table) -> tuple[Genome, str]:  # fmt: skip
    """The genome and source of `index`: from the table when it has a row, else chosen as the docstring says."""
    if index in table.genomes:
        row = table.genomes[index]
        return Genome.from_dict(row.genome), row.source
    source = source_of(index)
    if source != "random":
        genome = proposed(source, strategy_search(config, source, args.networks), space, table, args.seed)
        if genome is not None:
            return genome, source
    return random_network(space, index, args.seed, table.base), "random"


def train(objective: TrainObjective, genome: Genome, seed: int, epochs: int) -> tuple[tuple[float | None, ...], float]:
    """Validation accuracy after each epoch of one training with `seed`, and its seconds; None cells if it fails."""
    config = dataclasses.replace(objective.config, seed=seed)
    seeded = TrainObjective(config, objective.space, objective.data)  # the same data: the carve stays the same
    start = time.perf_counter()
    try:
        check_cost(seeded.architecture(genome), config.limits, config.fitness.batch_size, "the network")
        accuracies, seconds = rung_accuracies(seeded, genome, epochs, list(range(1, epochs)))
        return tuple(float(a) for a in accuracies), seconds
    except Exception as exc:  # a failed training is a row of the table, not the end of the build
        print(f"    failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return (None,) * epochs, time.perf_counter() - start


def build(args: argparse.Namespace, config: Config, epochs: int, table: Table) -> int:
    """Train every missing (index, seed) of the schedule in order; the number trained by this run."""
    space = load_space(config.encoding)
    check_seed(args, space, table)
    objective = TrainObjective(config, space, load_dataset(config.dataset, config.seed))
    second = second_seed_indices(args.networks, args.second_seed, args.seed)
    trained = 0
    for index in range(args.networks):
        seeds = [config.seed, config.seed + 1] if index in second else [config.seed]
        missing = [s for s in seeds if (index, s) not in table.done]
        if not missing:
            continue
        genome, source = network(index, args, config, space, table)
        params, flops = analytic_cost(objective.architecture(genome))
        for seed in missing:
            accuracies, seconds = train(objective, genome, seed, epochs)
            table.append(Row(index, genome.key, source, seed, genome.to_dict(), params, flops, seconds, accuracies))
            trained += 1
            shown = " ".join("-" if a is None else f"{a:.3f}" for a in accuracies)
            print(f"  {index:>4} {source:<22} seed {seed}: {shown}  ({seconds:.0f} s)", file=sys.stderr)
    return trained


def check_seed(args: argparse.Namespace, space: SearchSpace, table: Table) -> None:
    """Refuse to continue a table that another `--seed` or search space began: index 0 is random, and must be the
    network this build would draw there."""
    row = table.genomes.get(0)
    if row is not None and row.source == "random":
        if random_network(space, 0, args.seed, set()).key != row.key:
            raise UserError(f"{table.path} was built with another --seed or search space; pass another --out")


def spread(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 4), "median": round(statistics.median(values), 4), "max": round(max(values), 4)}


def summary(table: Table) -> dict[str, object]:
    """Networks done, seconds a training and final accuracies, overall and by source."""
    base = [r for r in table.rows if r.train_seed == table.base_seed]
    finals = [r.final for r in base if r.final is not None]
    by_source: dict[str, dict[str, object]] = {}
    for source in sorted({r.source for r in base}):
        values = [r.final for r in base if r.source == source and r.final is not None]
        by_source[source] = {"networks": sum(r.source == source for r in base), **(spread(values) if values else {})}
    return {
        "networks": len(base),
        "second_seed_networks": len(table.rows) - len(base),
        "failed": sum(r.final is None for r in table.rows),
        "seconds_per_training": round(statistics.mean(r.seconds for r in table.rows), 1) if table.rows else None,
        "final_accuracy": spread(finals) if finals else None,
        "by_source": by_source,
    }


def print_summary(name: str, epochs: int, stats: dict) -> None:
    print(f"\nsurrogate table: {name}, {epochs}-epoch trainings")
    print(f"networks {stats['networks']}, of which with a second seed {stats['second_seed_networks']}, "
          f"failed trainings {stats['failed']}, seconds a training {stats['seconds_per_training']}")  # fmt: skip
    print(f"{'source':<24}{'networks':>9}{'min':>8}{'median':>8}{'max':>8}  (final validation accuracy)")
    for source, s in {"all": {"networks": stats["networks"], **(stats["final_accuracy"] or {})},
                      **stats["by_source"]}.items():  # fmt: skip
        cells = "".join(f"{s[k]:>8.3f}" if k in s else f"{'-':>8}" for k in ("min", "median", "max"))
        print(f"{source:<24}{s['networks']:>9}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "search_configs" / "cifar10_bench.yaml")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, dotted.key=yaml_value")
    parser.add_argument("--epochs", type=int, help="epochs a training (default: the config's fitness.epochs)")
    parser.add_argument("--networks", type=int, default=500, help="networks in the schedule")
    parser.add_argument("--second-seed", type=int, default=100, help="networks also trained with the next seed")
    parser.add_argument("--out", type=Path, help="the CSV (default benchmarks/data/surrogate_<config name>.csv)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="draws the networks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    started = time.time()
    try:
        config = configured(args.config, overrides)
        epochs = args.epochs or config.fitness.epochs
        config = configured(args.config, {**overrides, "fitness.epochs": epochs})
        out = args.out or ROOT / "benchmarks" / "data" / f"surrogate_{config.name}.csv"
        table = Table(out, epochs, config.seed)
        table.open()
        trained = build(args, config, epochs, table)
    except UserError as exc:
        sys.exit(f"error: {exc}")
    stats = summary(table)
    print_summary(config.name, epochs, stats)
    record = {"benchmark": "surrogate_build", "config": config.name, "epochs": epochs, "out": str(out),
              "trained_this_run": trained, **stats, "seed": args.seed, "overrides": overrides,
              "seconds": round(time.time() - started, 1), **machine()}  # fmt: skip
    print(json.dumps(record))


if __name__ == "__main__":
    main()
