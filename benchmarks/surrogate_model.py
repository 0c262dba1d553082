"""The surrogate's table and model: the CSV schema `surrogate_build.py` writes, and `features` / `fit` over it.

Kept apart from the two scripts so that a landscape can re-fit the surrogate from the CSV when it loads (a
second or so for a few hundred rows) instead of loading a pickled model: a pickle runs code when read and ties
the file to one scikit-learn version, the CSV does neither.

A row is one training of one network: `index` (its place in the build's schedule), `key` (the genome's key),
`source` (`random` or the strategy that proposed it), `train_seed`, `genome` (the JSON of `Genome.to_dict()`),
`params`, `flops`, `seconds` (the training's wall time, the per-epoch validation included) and `acc_e1` ..
`acc_eE`, the validation accuracy after each epoch of one training of E epochs. A training that failed has
empty accuracy cells. Every network has a row at the build's training seed (the smallest `train_seed` of the
table); some have a second at the next seed, which measures the training noise.

    from benchmarks.surrogate_model import fit, features, read_table, base_rows
    model = fit(base_rows(read_table(path)))
    model.predict([features(genome.to_dict(), params, flops)])
"""

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

FIXED_COLUMNS = ["index", "key", "source", "train_seed", "genome", "params", "flops", "seconds"]


def columns(epochs: int) -> list[str]:
    """The header of a table of `epochs`-epoch trainings."""
    return [*FIXED_COLUMNS, *(f"acc_e{e}" for e in range(1, epochs + 1))]


@dataclass(frozen=True)
class Row:
    """One training of one network, as one CSV line holds it."""

    index: int
    key: str
    source: str
    train_seed: int
    genome: dict[str, Any]
    params: int
    flops: int
    seconds: float
    accuracies: tuple[float | None, ...]  # after epoch 1..E; None where the training failed

    @property
    def final(self) -> float | None:
        """The validation accuracy after the last epoch, None when the training failed."""
        return self.accuracies[-1] if self.accuracies else None


def parse_row(values: list[str], epochs: int) -> Row:
    """A `Row` from one CSV record's cells (the inverse of `row_values`: the same text gives the same floats)."""
    if len(values) != len(FIXED_COLUMNS) + epochs:
        raise ValueError(f"a row has {len(values)} cells, the header {len(FIXED_COLUMNS) + epochs}")
    index, key, source, seed, genome, params, flops, seconds, *accs = values
    return Row(
        index=int(index),
        key=key,
        source=source,
        train_seed=int(seed),
        genome=json.loads(genome),
        params=int(params),
        flops=int(flops),
        seconds=float(seconds),
        accuracies=tuple(float(a) if a else None for a in accs),
    )


def row_values(row: Row) -> list[str]:
    """The CSV cells of `row`: accuracies to 6 decimals, seconds to 2 (no per-step logs: the table stays small)."""
    genome = json.dumps(row.genome, sort_keys=True, separators=(",", ":"))
    accs = ["" if a is None else f"{a:.6f}" for a in row.accuracies]
    fixed = [row.index, row.key, row.source, row.train_seed, genome, row.params, row.flops, f"{row.seconds:.2f}"]
    return [str(v) for v in fixed] + accs


def epochs_of(header: list[str]) -> int:
    """E of a header written by `columns(E)`; a ValueError for any other header."""
    epochs = len(header) - len(FIXED_COLUMNS)
    if epochs < 1 or header != columns(epochs):
        raise ValueError(f"not a surrogate table header: {','.join(header)[:200]}")
    return epochs


def complete_lines(text: str) -> list[str]:
    """The lines of `text` that end with a newline: a line cut by a kill in the middle of its write is dropped."""
    lines = text.split("\n")
    return lines[:-1]  # the part after the last newline is empty, or a partial line


def parse_lines(lines: list[str]) -> tuple[int, list[Row]]:
    """(E, rows) of a table's complete lines, header first."""
    records = list(csv.reader(lines))
    epochs = epochs_of(records[0])
    return epochs, [parse_row(r, epochs) for r in records[1:]]


def read_table(path: Path) -> list[Row]:
    """Every complete row of the table at `path`."""
    lines = complete_lines(path.read_text(encoding="utf-8"))
    if not lines:
        raise ValueError(f"{path} holds no complete line")
    return parse_lines(lines)[1]


def base_rows(rows: list[Row]) -> list[Row]:
    """The rows of the build's training seed (the smallest one; the second seed is the next) that finished."""
    if not rows:
        return []
    seed = min(r.train_seed for r in rows)
    return [r for r in rows if r.train_seed == seed and r.final is not None]


def features(genome: dict[str, Any], params: int, flops: int) -> list[float]:
    """Per block: layers, growth rate, shortcut bits on and their density; then log params, log FLOPs and log10 of
    the learning rate, 0 when the space does not search it (a table holds one space: a constant column, which the
    trees never split on; NaN there would make an all-missing column, which the binning refuses).

    Params and FLOPs come as arguments because they depend on the space's fixed parts (stem, compression) and
    the input size, which a genome alone does not hold (`nas.model.analytic_cost` gives both)."""
    out: list[float] = []
    for block in genome["blocks"]:
        bits = block["shortcuts"]
        on = bits.count("1")
        out += [block["layers"], block["growth_rate"], on, on / len(bits) if bits else 0.0]
    lr = genome.get("learning_rate")
    return [*out, math.log(params), math.log(flops), math.log10(lr) if lr else 0.0]


def feature_matrix(rows: list[Row]) -> list[list[float]]:
    return [features(r.genome, r.params, r.flops) for r in rows]


class Surrogate:
    """A fitted model whose `predict` takes rows of `features`, run on one thread.

    One thread, for fitting too: on hundreds of rows OpenMP's threads gain nothing and, on a machine whose other
    cores are busy, spin against each other: a fit of 240 rows took 44 s with every thread of a loaded 2-core
    machine and 1 s with one."""

    def __init__(self, model: HistGradientBoostingRegressor):
        self.model = model

    def predict(self, rows: list[list[float]]) -> list[float]:
        with threadpool_limits(limits=1):
            return [float(v) for v in self.model.predict(rows)]


def fit(rows: list[Row], seed: int = 0) -> Surrogate:
    """A gradient-boosted tree model of the final validation accuracy, fitted on `rows` (those that finished).

    Leaves of 5 rather than the default 20 because a table holds hundreds of networks, not thousands; more,
    slower steps and an L2 penalty keep the smaller leaves from chasing the training noise. Deterministic for
    a given `seed` and rows."""
    rows = [r for r in rows if r.final is not None]
    if not rows:
        raise ValueError("no row with a final accuracy to fit on")
    model = HistGradientBoostingRegressor(
        learning_rate=0.05, max_iter=300, min_samples_leaf=5, l2_regularization=1.0, random_state=seed
    )
    with threadpool_limits(limits=1):
        model.fit(feature_matrix(rows), [r.final for r in rows])
    return Surrogate(model)


def predict(model: Surrogate, rows: list[Row]) -> list[float]:
    """The surrogate's final accuracy for each of `rows`."""
    return model.predict(feature_matrix(rows))


def seed_noise(rows: list[Row]) -> float:
    """The training noise of one accuracy: the standard deviation of the difference of two seeds' final
    accuracies over the networks trained twice, divided by sqrt(2) (each side carries one seed's noise)."""
    by_key: dict[str, list[float]] = {}
    for r in rows:
        if r.final is not None:
            by_key.setdefault(r.key, []).append(r.final)
    diffs = [v[0] - v[1] for v in by_key.values() if len(v) >= 2]
    if len(diffs) < 2:
        raise ValueError("the table holds fewer than 2 networks trained with two seeds: no noise estimate")
    mean = sum(diffs) / len(diffs)
    return math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / 2)


class SurrogateLandscape:
    """The surrogate as a landscape of the synthetic objective (`fitness`, `true_fitness`): the predicted final
    accuracy of a genome, plus a Gaussian of the measured seed noise drawn from its key (one genome, one value,
    as a run log assumes), so that a search on it meets the winner's curse that real training gives.

    `cost(genome)` gives (params, FLOPs) of the genome's network on the table's task (the space's fixed parts and
    input size); predictions are cached by key, a tree ensemble's one-row predict being the slow part."""

    name = "surrogate"
    needs_params = False

    def __init__(self, rows: list[Row], cost: Any, noise: float | None = None):
        self.model = fit(base_rows(rows))
        self.noise = seed_noise(rows) if noise is None else noise
        self.cost = cost
        self.cache: dict[str, float] = {}

    def true_fitness(self, genome: Any, params: int = 0) -> float:
        if genome.key not in self.cache:
            p, f = self.cost(genome)
            self.cache[genome.key] = min(max(self.model.predict([features(genome.to_dict(), p, f)])[0], 0.0), 1.0)
        return self.cache[genome.key]

    def fitness(self, genome: Any, params: int = 0) -> float:
        from nas.evaluate.landscapes import key_noise

        return min(max(self.true_fitness(genome) + key_noise(genome, self.noise), 0.0), 1.0)
