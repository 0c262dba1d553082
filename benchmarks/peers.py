"""External peers for `benchmarks/search_quality.py`: Optuna's TPE and nevergrad's DiscreteOnePlusOne and NGOpt
over the same search space as the strategies, with the same budget definition (distinct genomes evaluated).

Benchmark-only (the `bench` extra); `nas/` never imports them. A peer sees the genome as flat integer
variables: per block its layers and growth rate, then the shortcut bits of the block's deepest layout
(`bit_length(max layers)` bits); a genome with fewer layers takes the bits of the same (source, target) links,
the block output's links taken from the deepest layout's output column. So every genome of the space is
reachable and a peer's variables mean the same thing whatever the depth. A repeated genome costs no budget
and is answered from the cache; a peer that keeps proposing repeats stops after `MAX_ASKS_PER_EVALUATION`
asks per evaluation.
"""

import logging
import math
import warnings
from collections.abc import Callable

from nas.genome import shortcuts
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace

MAX_ASKS_PER_EVALUATION = 20
PEERS = ("optuna-tpe", "ng-discrete-1+1", "ng-ngopt")


def variables(space: SearchSpace) -> list[tuple[str, int, int]]:
    """(name, low, high) of every integer variable a peer searches."""
    out = []
    for b, (lay, gro) in enumerate(zip(space.layers, space.growth_rate, strict=True)):
        out += [(f"b{b}.layers", *lay), (f"b{b}.growth", *gro)]
        out += [(f"b{b}.bit{i}", 0, 1) for i in range(shortcuts.bit_length(lay[1]))]
    return out


def genome_of(space: SearchSpace, values: dict[str, int]) -> Genome:
    blocks, bits = [], []
    for b, (lay, _) in enumerate(zip(space.layers, space.growth_rate, strict=True)):
        layers, deepest = values[f"b{b}.layers"], lay[1]
        flat = {pair: values[f"b{b}.bit{i}"] for i, pair in enumerate(shortcuts.pairs(deepest))}
        chosen = [flat[(s, t if t <= layers else deepest + 1)] for s, t in shortcuts.pairs(layers)]
        blocks.append((layers, values[f"b{b}.growth"]))
        bits.append("".join(str(v) for v in chosen))
    lr = math.sqrt(space.learning_rate[0] * space.learning_rate[1]) if space.learning_rate else None
    return space.genome(space.encode(tuple(blocks), lr), tuple(bits))


def run_peer(name: str, space: SearchSpace, evaluate: Callable[[Genome], float], budget: int, seed: int,
             workers: int = 1) -> None:  # fmt: skip
    """Drive peer `name` until `budget` distinct genomes were evaluated (`evaluate` caches and counts), asking
    `workers` candidates before telling them (1: one at a time; more: batches, as a cluster of that many slots
    runs them, in each library's own parallel mode)."""
    {"optuna-tpe": run_optuna, "ng-discrete-1+1": run_nevergrad, "ng-ngopt": run_nevergrad}[name](
        name, space, evaluate, budget, seed, workers
    )


def ask_and_tell(ask: Callable[[], tuple[object, Genome]], tell: Callable[[object, float], None],
                 evaluate: Callable[[Genome], float], budget: int, workers: int) -> None:  # fmt: skip
    """The one loop every peer runs: ask up to `workers` candidates (a batch a cluster of that many slots would
    run at once), then tell each its fitness, until `budget` distinct genomes were asked or a peer that keeps
    proposing repeats has had `MAX_ASKS_PER_EVALUATION` batches an evaluation."""
    seen: set[str] = set()
    for _ in range(budget * MAX_ASKS_PER_EVALUATION):
        if len(seen) >= budget:
            return
        batch = []
        for _ in range(min(workers, budget - len(seen))):
            handle, genome = ask()
            seen.add(genome.key)
            batch.append((handle, genome))
        for handle, genome in batch:
            tell(handle, evaluate(genome))


def run_optuna(name: str, space: SearchSpace, evaluate: Callable[[Genome], float], budget: int, seed: int,
               workers: int) -> None:  # fmt: skip
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # constant_liar: Optuna's own way of spreading the trials that run at once
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=workers > 1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    specs = variables(space)

    def ask() -> tuple[object, Genome]:
        trial = study.ask()
        return trial, genome_of(space, {n: trial.suggest_int(n, lo, hi) for n, lo, hi in specs})

    ask_and_tell(ask, lambda trial, value: study.tell(trial, value), evaluate, budget, workers)


def run_nevergrad(name: str, space: SearchSpace, evaluate: Callable[[Genome], float], budget: int,
                  seed: int, workers: int) -> None:  # fmt: skip
    import nevergrad as ng

    logging.getLogger("nevergrad").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="nevergrad")
    specs = variables(space)
    # one integer array (a discrete mutation per coordinate): nevergrad's fast path for discrete variables; a
    # dict of `Choice`s means the same space but is 10x slower per ask
    lower = [float(lo) - 0.499 for _, lo, _ in specs]
    upper = [float(hi) + 0.499 for _, _, hi in specs]
    param = ng.p.Array(shape=(len(specs),), lower=lower, upper=upper).set_integer_casting()
    param.random_state.seed(seed)
    optimizer_class = ng.optimizers.DiscreteOnePlusOne if name == "ng-discrete-1+1" else ng.optimizers.NGOpt
    optimizer = optimizer_class(parametrization=param, budget=budget, num_workers=workers)

    def ask() -> tuple[object, Genome]:
        candidate = optimizer.ask()
        values = [min(max(round(v), lo), hi) for v, (_, lo, hi) in zip(candidate.value, specs, strict=True)]
        return candidate, genome_of(space, {n: v for (n, _, _), v in zip(specs, values, strict=True)})

    ask_and_tell(ask, lambda candidate, value: optimizer.tell(candidate, -value), evaluate, budget, workers)
