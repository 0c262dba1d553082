"""Inheritance quality: does a child that inherits its parent's weights and trains k epochs (`search.inherit`) reach
the accuracy, and the ranking, of the same child trained from scratch for the full budget, and at what compute?

`--parents` networks drawn from the surrogate table's random ones of index below `--below` (a shuffle seeded by
`--seed`, so a smaller `--parents` is a prefix of a larger one; `--below` freezes the pool, which a running build
appends to, and its default is the pool the cache's families were drawn from) are each trained for the config's
full budget by the train objective, exactly as a search evaluates a candidate (`TrainObjective`, the config's
seed: the table's recipe, so a parent's accuracy is its table accuracy at seed 0). Each parent gets two children
by one small mutation (`child_of`), within `distance` <= `MAX_DISTANCE` of it: the first only adds (shortcut bits
0 -> 1, a layer at the end of a block whose output keeps reading the old last layer, a wider growth rate), so the
transplant preserves the parent's function; the second is any such mutation (bits flipped either way, a layer
added or removed with fresh random bits, a growth rate up or down). Each child is trained
- `scratch`: from its seeded initialisation for the full budget (the reference: what a search without
  inheritance measures);
- `inherit k`, for each `--k`: from the parent's weights, `TrainObjective.inherit` with a `Parent` of k epochs
  (the search's own code path: transplant into the seeded model, then a complete k-epoch schedule);
- `scratch seed 1` with `--ceiling`: from scratch again with the next training seed on the same data carve (as
  the surrogate table's second seed), the seed ceiling of these children.
Reported per arm: its epochs and mean wall and CPU seconds a network; the mean and std of (accuracy - scratch
accuracy) over the children, and over the function-preserving ones alone; Kendall's tau of its accuracies
against the scratch ones; and how many parents' two children it orders as scratch does. Rows for scale: the
parent's own accuracy as the children's prediction (the free baseline an inherited child must beat), and the
seed ceiling of the table's networks trained at both seeds.

Every training is one line of `--cache` (appended and flushed the moment it ends; an incomplete last line is
dropped), the parents' trained weights are files of `--weights` (a missing one is trained again: same seed, same
weights), so a killed run continues where it stopped and a later run with more `--parents` reuses the work done.
`--cached-only` prints the table of what the cache holds. Prints a table, then one JSON line with the machine and
the date. At 1 thread a full training takes 5-60 s (about 30 s on average) on a loaded 2-core machine; 12 parents
are 12 + 24 x (1 + sum of k / 4) full trainings, about half an hour (8 parents took 19 minutes), and `--ceiling`
24 more, some 12 minutes:

    nice -n 10 .venv/bin/python benchmarks/inherit_quality.py --parents 12
    nice -n 10 .venv/bin/python benchmarks/inherit_quality.py --parents 12 --ceiling   # the children's seed ceiling
"""

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.jsonl_cache import read_lines  # noqa: E402
from benchmarks.machine import machine  # noqa: E402
from benchmarks.rank_fidelity import configured  # noqa: E402
from benchmarks.surrogate_model import Row, base_rows, read_table  # noqa: E402
from nas.atomicfile import atomic_write_bytes  # noqa: E402
from nas.data.loading import load_dataset  # noqa: E402
from nas.errors import UserError  # noqa: E402
from nas.evaluate.parent import Parent  # noqa: E402
from nas.evaluate.result import Result  # noqa: E402
from nas.evaluate.train_objective import TrainObjective  # noqa: E402
from nas.genome import shortcuts  # noqa: E402
from nas.genome.genome import BlockGene, Genome  # noqa: E402
from nas.genome.relatedness import distance  # noqa: E402
from nas.genome.space import SearchSpace, load_space  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
MAX_DISTANCE = 4.0  # `search.inherit.max_distance`'s scale: a few links
DRAWS = 200  # redraws of a mutation that leaves the bound or changes nothing


# --- mutations: pure functions of a genome, the space's bounds and a seeded rng ---


def flip_bits(genome: Genome, space: SearchSpace, rng: random.Random, additive: bool) -> Genome | None:
    """1-3 shortcut bits flipped anywhere in the genome; `additive`: only 0 -> 1 (new links)."""
    spots = [(b, i) for b, block in enumerate(genome.blocks) for i, bit in enumerate(block.shortcuts)
             if bit == "0" or not additive]  # fmt: skip
    if not spots:
        return None
    chosen = rng.sample(spots, min(len(spots), rng.randint(1, 3)))
    bits = [list(block.shortcuts) for block in genome.blocks]
    for b, i in chosen:
        bits[b][i] = "1" if bits[b][i] == "0" else "0"
    return with_blocks(genome, [replace(block, shortcuts="".join(bits[b])) for b, block in enumerate(genome.blocks)])


def change_depth(genome: Genome, space: SearchSpace, rng: random.Random, additive: bool) -> Genome | None:
    """One layer added at the end of a block (or, unless `additive`, removed), within the space's bounds. New
    bits are random (`shortcuts.resize`); an additive child's output also reads the old last layer, which its
    parent's output read by the chain, so the transplant keeps the parent's function."""
    steps = [1] if additive else [1, -1]
    options = [(b, s) for b, block in enumerate(genome.blocks) for s in steps
               if space.layers[b][0] <= block.layers + s <= space.layers[b][1]]  # fmt: skip
    if not options:
        return None
    b, step = rng.choice(options)
    block = genome.blocks[b]
    layers = block.layers + step
    bits = shortcuts.resize(block.shortcuts, block.layers, layers, rng)
    if additive:  # the old last layer (node L) into the new output (target L + 2)
        i = shortcuts.bit_index(layers, block.layers, layers + 1)
        bits = bits[:i] + "1" + bits[i + 1 :]
    blocks = list(genome.blocks)
    blocks[b] = BlockGene(layers, block.growth_rate, bits)
    return with_blocks(genome, blocks)


def change_growth(genome: Genome, space: SearchSpace, rng: random.Random, additive: bool) -> Genome | None:
    """One block's growth rate moved by 1-4 within the space's bounds; `additive`: only wider."""
    b = rng.randrange(len(genome.blocks))
    block = genome.blocks[b]
    low, high = space.growth_rate[b]
    steps = (1, 2, 3, 4) if additive else (1, 2, 3, 4, -1, -2, -3, -4)
    valid = [s for s in steps if low <= block.growth_rate + s <= high]
    if not valid:
        return None
    blocks = list(genome.blocks)
    blocks[b] = replace(block, growth_rate=block.growth_rate + rng.choice(valid))
    return with_blocks(genome, blocks)


MUTATIONS = {"bits": flip_bits, "depth": change_depth, "growth": change_growth}


def with_blocks(genome: Genome, blocks: list[BlockGene]) -> Genome:
    return Genome(blocks=tuple(blocks), learning_rate=genome.learning_rate)


def child_of(genome: Genome, space: SearchSpace, rng: random.Random, additive: bool) -> tuple[Genome, str]:
    """A child by one mutation of a kind drawn uniformly, redrawn until it differs from `genome` and lies within
    `MAX_DISTANCE` of it; (child, kind). A `UserError` when no mutation of the space gets there."""
    for _ in range(DRAWS):
        kind = rng.choice(sorted(MUTATIONS))
        child = MUTATIONS[kind](genome, space, rng, additive)
        if child is not None and 0 < distance(genome, child) <= MAX_DISTANCE:
            return child, kind
    raise UserError(f"no mutation of {genome.key[:12]} within distance {MAX_DISTANCE} in {DRAWS} draws")


# --- the experiment ---


@dataclass(frozen=True)
class Family:
    """One parent of the table and its children, each with the kind of mutation that made it."""

    parent: Genome
    table_accuracy: float  # the parent's full-budget accuracy at seed 0 in the surrogate table
    children: tuple[tuple[Genome, str, bool], ...]  # (child, kind, additive)


def families(rows: list[Row], space: SearchSpace, count: int, seed: int) -> list[Family]:
    """`count` random networks of the table (a seeded shuffle: a prefix of any larger count) and their children,
    each child from an rng seeded by (seed, parent key, child index)."""
    pool = sorted((r for r in base_rows(rows) if r.source == "random"), key=lambda r: r.key)
    random.Random(f"inherit-quality:{seed}").shuffle(pool)
    if count > len(pool):
        raise UserError(f"the table holds {len(pool)} random networks, fewer than {count}", key="--parents")
    out = []
    for row in pool[:count]:
        parent = Genome.from_dict(row.genome)
        children = []
        for i, additive in enumerate((True, False)):
            child, kind = child_of(parent, space, random.Random(f"inherit-quality:{seed}:{parent.key}:{i}"), additive)
            children.append((child, kind, additive))
        out.append(Family(parent, row.final or math.nan, tuple(children)))
    return out


def read_cache(path: Path) -> dict[tuple[str, str, int], dict]:
    """{(arm, key, epochs): line}; an incomplete last line (a killed run) is left out."""
    return {(r["arm"], r["key"], r["epochs"]): r for r in read_lines(path)}


class Lab:
    """The objectives (the config's seed, and the next seed on the same data), the cache and the weights."""

    def __init__(self, config_path: Path, cache: Path, weights: Path):
        self.config = configured(config_path, {})
        self.space = load_space(self.config.encoding)
        data = load_dataset(self.config.dataset, self.config.seed)
        self.objective = TrainObjective(self.config, self.space, data)
        seeded = replace(self.config, seed=self.config.seed + 1)  # the same data: the carve stays the same
        self.next_seed = TrainObjective(seeded, self.space, data)
        self.epochs = self.config.fitness.epochs
        self.cache_path, self.weights = cache, weights
        self.cache = read_cache(cache)

    def record(self, arm: str, genome: Genome, epochs: int, run: Callable[[], Result]) -> dict:
        """The cached line of (arm, genome, epochs), running `run()` -> `Result` first when the cache lacks it."""
        known = self.cache.get((arm, genome.key, epochs))
        if known is not None:
            return known
        cpu = time.process_time()
        result: Result = run()
        cpu = time.process_time() - cpu
        if not result.ok:
            raise RuntimeError(f"{arm} {genome.key[:12]} failed: {result.error}")
        inheritance = result.metrics.get("inheritance") or {}
        line = {"arm": arm, "key": genome.key, "epochs": epochs, "genome": genome.to_dict(),
                "accuracy": result.fitness, "seconds": round(result.seconds, 2), "cpu_seconds": round(cpu, 2),
                "inherited_from": result.metrics.get("inherited_from"), "distance": result.metrics.get("distance"),
                "preserves_function": inheritance.get("preserves_function"),
                "fraction_copied": inheritance.get("fraction_copied")}  # fmt: skip
        if "inherit_refused" in result.metrics:
            raise RuntimeError(f"{genome.key[:12]}: inheritance refused: {result.metrics['inherit_refused']}")
        if arm == "parent":
            atomic_write_bytes(self.weights_file(genome), result.weights)
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with self.cache_path.open("a") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
        self.cache[(arm, genome.key, epochs)] = line
        print(f"  {arm:<14} {genome.key[:12]} {epochs} ep: acc {line['accuracy']:.4f} "
              f"({line['seconds']:.0f} s, {line['cpu_seconds']:.0f} cpu s)", file=sys.stderr)  # fmt: skip
        return line

    def weights_file(self, genome: Genome) -> Path:
        return self.weights / f"{genome.key}.safetensors"

    def parent_weights(self, parent: Genome) -> bytes:
        """The parent's trained weights: its file, or a training again when the file is gone."""
        path = self.weights_file(parent)
        if not path.exists():
            result = self.objective(parent)
            if not result.ok or result.weights is None:
                raise RuntimeError(f"parent {parent.key[:12]} failed: {result.error}")
            atomic_write_bytes(path, result.weights)
        return path.read_bytes()

    def run_family(self, family: Family, ks: list[int], ceiling: bool) -> None:
        """Every training of one family the cache lacks: the parent, then each child's arms."""
        self.weights.mkdir(parents=True, exist_ok=True)
        self.record("parent", family.parent, self.epochs, partial(self.objective, family.parent))
        for child, _, _ in family.children:
            self.record("scratch", child, self.epochs, partial(self.objective, child))
            for k in ks:
                self.record("inherit", child, k, partial(self.inherit, child, family.parent, k))
            if ceiling:
                self.record("scratch_seed1", child, self.epochs, partial(self.next_seed, child))

    def inherit(self, child: Genome, parent: Genome, epochs: int) -> Result:
        """The search's path: `TrainObjective.inherit` with the parent's weights and `epochs` to train."""
        weights = self.parent_weights(parent)
        return self.objective.inherit(child, Parent(parent, weights, epochs, distance(child, parent)))


def tau(x: list[float], y: list[float]) -> float:
    value = float(kendalltau(x, y).statistic) if len(x) > 1 else math.nan
    return round(value, 3) if math.isfinite(value) else math.nan


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def sibling_agreement(pairs: list[tuple[tuple[float, float], tuple[float, float]]]) -> str:
    """How many parents' two children an arm orders as scratch does: (arm a, arm b), (scratch a, scratch b); a
    tie on either side counts as no agreement. "-" for an arm that ties every pair (the parent's accuracy)."""
    if all(a == b for (a, b), _ in pairs):
        return "-"
    same = sum((a - b) * (s - t) > 0 for (a, b), (s, t) in pairs)
    return f"{same}/{len(pairs)}"


def table_ceiling(rows: list[Row]) -> tuple[float, int]:
    """Kendall's tau between the table's two training seeds over the networks trained at both."""
    base = min(r.train_seed for r in rows)
    first = {r.key: r.final for r in rows if r.train_seed == base and r.final is not None}
    second = {r.key: r.final for r in rows if r.train_seed == base + 1 and r.final is not None and r.key in first}
    return tau([first[k] for k in second], list(second.values())), len(second)


def arm_rows(lab: Lab, done: list[Family], ks: list[int], ceiling: bool) -> list[dict]:
    """One row an arm over the families whose every training is cached."""
    cache, full = lab.cache, lab.epochs
    children = [(f, c) for f in done for c, _, _ in f.children]
    scratch = [cache[("scratch", c.key, full)]["accuracy"] for _, c in children]
    # the independent reference: another training seed shares no noise with the seed-0 arms
    seed1 = [cache[("scratch_seed1", c.key, full)]["accuracy"] for _, c in children] if ceiling else None
    arms = [("parent's accuracy", lambda f, c: cache[("parent", f.parent.key, full)], 0)]
    arms += [(f"inherit {k}", lambda f, c, k=k: cache[("inherit", c.key, k)], k) for k in ks]
    arms += [("scratch", lambda f, c: cache[("scratch", c.key, full)], full)]
    if ceiling:
        arms += [("scratch seed 1", lambda f, c: cache[("scratch_seed1", c.key, full)], full)]
    out = []
    for name, line_of, epochs in arms:
        lines = [line_of(f, c) for f, c in children]
        acc = [line["accuracy"] for line in lines]
        diffs = [a - s for a, s in zip(acc, scratch, strict=True)]
        kept = [d for d, (_, c) in zip(diffs, children, strict=True) if preserving(lab, c)]
        pairs = [((acc[2 * i], acc[2 * i + 1]), (scratch[2 * i], scratch[2 * i + 1])) for i in range(len(done))]
        cost = [] if name == "parent's accuracy" else lines
        out.append({"arm": name, "epochs": epochs,
                    "seconds": round(statistics.fmean(x["seconds"] for x in cost), 1) if cost else 0.0,
                    "cpu_seconds": round(statistics.fmean(x["cpu_seconds"] for x in cost), 1) if cost else 0.0,
                    "mean_diff": mean_std(diffs), "mean_diff_preserving": mean_std(kept),
                    "kendall_tau": tau(acc, scratch), "siblings": sibling_agreement(pairs),
                    "kendall_tau_seed1": tau(acc, seed1) if seed1 else math.nan,
                    "mean_accuracy": round(statistics.fmean(acc), 4)})  # fmt: skip
    return out


def preserving(lab: Lab, child: Genome) -> bool:
    """Whether the transplant kept the parent's function (any k's line says; they agree)."""
    return any(
        v.get("preserves_function") for (arm, key, _), v in lab.cache.items() if arm == "inherit" and key == child.key
    )


def print_table(rows: list[dict], n_children: int, n_preserving: int) -> None:
    print(f"{'arm':<18}{'epochs':>7}{'s/net':>7}{'cpu s/net':>10}{'acc':>8}{'acc - scratch':>18}"
          f"{f'preserving ({n_preserving})':>20}{'tau vs scratch':>16}{'vs seed 1':>10}{'siblings':>10}")  # fmt: skip
    for r in rows:
        d, p = r["mean_diff"], r["mean_diff_preserving"]
        print(
            f"{r['arm']:<18}{r['epochs']:>7}{r['seconds']:>7.1f}{r['cpu_seconds']:>10.1f}{r['mean_accuracy']:>8.4f}"
            f"{d[0]:>+10.4f} ± {d[1]:.4f}{p[0]:>+12.4f} ± {p[1]:.4f}{r['kendall_tau']:>16.3f}"
            f"{r['kendall_tau_seed1']:>10.3f}{r['siblings']:>10}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "search_configs" / "cifar10_bench.yaml")
    parser.add_argument("--table", type=Path, default=DATA / "surrogate_cifar10_bench.csv")
    parser.add_argument("--below", type=int, default=94, help="only the table's rows of index below this")
    parser.add_argument("--parents", type=int, default=12)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2], help="epochs of the inheriting trainings")
    parser.add_argument("--seed", type=int, default=0, help="draws the parents and the mutations")
    parser.add_argument("--ceiling", action="store_true", help="also train each child from scratch at the next seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=DATA / "inherit_quality_bench4ep.jsonl")
    parser.add_argument("--weights", type=Path, default=ROOT / "runs" / "inherit-quality-weights",
                        help="the parents' trained weights (a missing file is trained again)")  # fmt: skip
    parser.add_argument("--cached-only", action="store_true", help="train nothing: the table of the cache")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    lab = Lab(args.config, args.cache, args.weights)
    rows = [r for r in read_table(args.table) if r.index < args.below]
    work = families(rows, lab.space, args.parents, args.seed)
    done = []
    for i, family in enumerate(work):
        if not args.cached_only:
            print(f"family {i}: parent {family.parent.key[:12]}", file=sys.stderr)
            lab.run_family(family, args.k, args.ceiling)
        if is_done(lab, family, args.k, args.ceiling):
            done.append(family)
    if not done:
        raise UserError(f"{args.cache} holds no complete family yet", key="--cache")
    table = arm_rows(lab, done, args.k, args.ceiling)
    n_children = 2 * len(done)
    n_preserving = sum(preserving(lab, c) for f in done for c, _, _ in f.children)
    ceiling, n_ceiling = table_ceiling(rows)
    print(f"\ninheritance quality: {lab.config.name}, {lab.epochs}-epoch budget, {len(done)} parents of "
          f"{args.parents}, {n_children} children (distance <= {MAX_DISTANCE:g}), "
          f"{n_preserving} function-preserving")  # fmt: skip
    print_table(table, n_children, n_preserving)
    parents = [lab.cache[("parent", f.parent.key, lab.epochs)]["accuracy"] for f in done]
    drift = max(abs(a - f.table_accuracy) for a, f in zip(parents, done, strict=True))
    print(f"seed ceiling of the table ({n_ceiling} networks at two training seeds): tau {ceiling:.3f}; "
          f"parents' accuracy here vs the table's: largest difference {drift:.4f}")  # fmt: skip
    kinds = [(kind, additive) for f in done for _, kind, additive in f.children]
    record = {"benchmark": "inherit_quality", "config": lab.config.name, "epochs": lab.epochs, "k": args.k,
              "parents": len(done), "children": n_children, "preserving": n_preserving,
              "mutations": {f"{k}_{'additive' if a else 'any'}": kinds.count((k, a)) for k in MUTATIONS
                            for a in (True, False)},
              "arms": table, "table_seed_ceiling": {"kendall_tau": ceiling, "networks": n_ceiling},
              "table_below": args.below,
              "parent_vs_table_max_diff": round(drift, 4), "seconds": round(time.time() - started, 1),
              **machine()}  # fmt: skip
    print(json.dumps(record))


def is_done(lab: Lab, family: Family, ks: list[int], ceiling: bool) -> bool:
    need = [("parent", family.parent.key, lab.epochs)]
    for child, _, _ in family.children:
        need += [("scratch", child.key, lab.epochs), *(("inherit", child.key, k) for k in ks)]
        need += [("scratch_seed1", child.key, lab.epochs)] if ceiling else []
    return all(n in lab.cache for n in need)


if __name__ == "__main__":
    main()
