"""The `synthetic` objective: a deterministic, cheap function of the genome with a known optimum.

For tests, for trying the command line, and for comparing strategies at scale (benchmarks/search_quality.py).
It mimics what the real task rewards, after the measurement in DESIGN.md section 3, but with cost in the
fitness, so that dense-everywhere is not optimal:

- architecture level: a Gaussian bump around a target per block at 80% of the `layers` range and 20% of the
  `growth_rate` range, rounded: deep and narrow, away from the centre of the space (where the `ga` peer's fixed
  architecture sits, so that fixing the architecture is not rewarded by construction); bigger or smaller is
  worse, so size is penalised; and, when the space searches the learning rate, a bump around the geometric mean
  of its range;
- shortcut level: the fraction of bits that match the "input and output links" pattern (every link from the
  block input, every link into the block output, nothing else), which the measurement found the best sparse
  pattern.

fitness = 0.6 * architecture score + 0.4 * pattern score, in [0, 1], exactly 1 at the optimum (`optimum()`).
That is the `bump` landscape, the default of `fitness.landscape`; `nas.evaluate.landscapes` holds the others
(`epistatic`, `noisy`, `cost`), so strategies are compared on a family of problems, not one.
It sleeps to emulate training cost: `fitness.seconds_per_evaluation + flops / 1e9 * fitness.seconds_per_gflop`,
so with `seconds_per_gflop` set a big candidate costs more than a small one, as in real training (what the
dispatch order and the async driver are measured against). The network's fixed parts come from the dataset's
known shape (`SHAPES`), so no data is loaded; params and FLOPs are exact (`analytic_cost`).

Under `search.fidelity` a rung of e of the E = `fitness.epochs` epochs sees `fidelity_fitness`: the fitness
shrunk by a bias and blurred by a noise that both vanish at e = E, and it sleeps (e - e0) / E of that cost
when it continues from a rung state at e0 (cost proportional to epochs). A rung of `restart` (a complete
schedule of e epochs, `full_epochs` = e) is measured against E all the same, so it is no better than e of E.
Each rung result carries a training loss in its metrics (`fidelity_loss`), for `search.fidelity.signal: loss`.

Under `search.inherit` it stands in for weight inheritance without training anything: every ok result carries a
tensor-free weights blob (`nas.evaluate.weightsfile.stand_in_weights`), which the driver stores, checks and ships
as it would real weights, and a candidate that inherits gets its ordinary fitness (inheritance is assumed to
recover what full training reaches, so a search's trajectory is the one it has without `search.inherit`: only
the parents and the epochs differ), sleeps `inherit.epochs` / `fitness.epochs` of its cost, and records the
parent (`inherited_from`, `distance`) and `epochs` in its metrics as the `train` objective does. A parent blob
that is not the parent's (damaged, another key) is refused and the candidate costs a whole training, with the
reason in `inherit_refused`. Every result of such a search has `epochs` in its metrics, so compute sums.

When the search ranks or caps by latency, every result (and every rung's) carries the deterministic stand-in of
a measured latency in its metrics (`nas.evaluate.latency.analytic_latency`, linear in the FLOPs).
"""

import math
import random
import time
from collections.abc import Callable
from typing import Any

from nas.config import Config
from nas.errors import UserError
from nas.evaluate.landscape_family import FAMILIES, GeneratedLandscape, parse_name
from nas.evaluate.landscapes import LANDSCAPES, Landscape, ideal_bits
from nas.evaluate.latency import analytic_latency, wants_latency
from nas.evaluate.objective import OBJECTIVES
from nas.evaluate.parent import Parent
from nas.evaluate.result import Result
from nas.evaluate.rungfile import metadata_only, read_header
from nas.evaluate.weightsfile import check, stand_in_weights
from nas.genome import shortcuts
from nas.genome.architecture import Architecture
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.model.analytic_cost import analytic_cost

# (in_channels, num_classes, input_size) of each dataset kind, for building the candidate's fixed parts.
SHAPES = {
    "digits": (1, 10, 8),
    "cifar10": (3, 10, 32),
    "cifar100": (3, 100, 32),
    "svhn": (3, 10, 32),
    "imagefolder": (3, 10, 32),
    "bbbc021": (3, 12, 64),
    "bbbc014": (3, 2, 64),
}


def make_landscape(name: str, space: SearchSpace, largest_params: Callable[[], int]) -> Landscape | GeneratedLandscape:
    """A named landscape (`nas.evaluate.landscapes`) or a generated instance `<family>/<instance>`;
    `largest_params` is called only for one that weighs the parameter count."""
    if name in LANDSCAPES:
        return Landscape(name, space, largest_params() if name == "cost" else 1)
    if parse_name(name) is None:
        families = ", ".join(f"{f}/<instance>" for f in FAMILIES)
        raise UserError(f"must be one of {', '.join(LANDSCAPES)} or a generated {families}; got {name!r}",
                        key="fitness.landscape")  # fmt: skip
    landscape = GeneratedLandscape(name, space, 1)
    if landscape.needs_params:
        landscape.largest_params = max(largest_params(), 1)
    return landscape


class SyntheticObjective:
    trains_networks = False  # no tensors to free after a candidate (`nas.evaluate.ray_evaluator.run_candidate`)

    def __init__(
        self,
        space: SearchSpace,
        shape: tuple[int, int, int],
        seconds: float,
        landscape: str = "bump",
        seconds_per_gflop: float = 0.0,
        latency_batch: int | None = None,
        budget_epochs: int | None = None,
        inherits: bool = False,
    ):
        self.inherits = inherits  # `search.inherit`: results carry stand-in weights and their epochs
        self.space = space
        self.budget_epochs = budget_epochs  # E, what a rung's fidelity is measured against; None: its full_epochs
        self.latency_batch = latency_batch  # the batch of `latency_ms_batch`; None: no latency in the metrics
        self.shape = shape
        self.seconds = seconds
        self.seconds_per_gflop = seconds_per_gflop
        self.targets = [
            (round(lay[0] + 0.8 * (lay[1] - lay[0])), round(gro[0] + 0.2 * (gro[1] - gro[0])))
            for lay, gro in zip(space.layers, space.growth_rate, strict=True)
        ]
        self.landscape = make_landscape(landscape, space, self.largest_params)

    def largest_params(self) -> int:
        """Parameters of the space's largest network (most layers, widest growth, every shortcut on)."""
        blocks = tuple((lay[1], gro[1]) for lay, gro in zip(self.space.layers, self.space.growth_rate, strict=True))
        lr = self.space.learning_rate[0] if self.space.learning_rate else None
        genome = self.space.genome(self.space.encode(blocks, lr), tuple(shortcuts.all_ones(n) for n, _ in blocks))
        return analytic_cost(self.architecture(genome))[0]

    def architecture(self, genome: Genome) -> Architecture:
        in_channels, num_classes, input_size = self.shape
        return Architecture.from_space(self.space, genome, in_channels, num_classes, input_size)

    def fitness(self, genome: Genome, params: int | None = None) -> float:
        """The configured landscape's score (the parameter count is computed when the landscape needs it)."""
        if params is None and self.landscape.needs_params:
            params = analytic_cost(self.architecture(genome))[0]
        return self.landscape.fitness(genome, params or 0)

    def cost_seconds(self, flops: int) -> float:
        """The emulated training time of a candidate of `flops` FLOPs."""
        return self.seconds + flops / 1e9 * self.seconds_per_gflop

    def latency(self, flops: int) -> dict[str, float]:
        """The latency metrics of a candidate of `flops` FLOPs: the analytic stand-in, or none when not asked."""
        return {} if self.latency_batch is None else analytic_latency(flops, self.latency_batch)

    def optimum(self) -> Genome:
        """The genome of fitness exactly 1 on the `bump` landscape (the targets are whole numbers)."""
        blocks = tuple(self.targets)
        lr = math.sqrt(self.space.learning_rate[0] * self.space.learning_rate[1]) if self.space.learning_rate else None
        return self.space.genome(self.space.encode(blocks, lr), tuple(ideal_bits(layers) for layers, _ in blocks))

    def train_rung(
        self, genome: Genome, epochs: int, full_epochs: int, state: bytes | None, device: str | None
    ) -> Result:
        """`search.fidelity`: see `synthetic_rung`; a state that is not this candidate's is a failed result."""
        try:
            return synthetic_rung(self, genome, epochs, full_epochs, state)
        except ValueError as exc:
            return Result.failure(genome.key, genome.to_dict(), f"ValueError: {exc}", epochs=epochs)

    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        return self.whole(genome, time.perf_counter())

    def whole(self, genome: Genome, start: float, epochs: int | None = None, **extra: Any) -> Result:
        """A whole evaluation of `epochs` (None: all `fitness.epochs`) with `extra` metrics; under
        `search.inherit` it carries stand-in weights and its epochs."""
        params, flops = analytic_cost(self.architecture(genome))
        budget = self.budget_epochs or 1
        delay = self.cost_seconds(flops) * (1 if epochs is None else epochs / budget)
        if delay:
            time.sleep(delay)
        fitness = self.fitness(genome, params)
        if not self.inherits:
            return ok_result(genome, fitness, params, flops, start, metrics=self.latency(flops))
        trained = budget if epochs is None else epochs
        metrics = {**self.latency(flops), **extra, "epochs": trained}
        return ok_result(genome, fitness, params, flops, start, metrics=metrics,
                         weights=stand_in_weights(genome.key, trained, fitness))  # fmt: skip

    def inherit(self, genome: Genome, parent: Parent, device: str | None = None) -> Result:
        """`search.inherit`'s stand-in (module docstring): the ordinary fitness at `parent.epochs` of the cost."""
        start = time.perf_counter()
        try:
            meta = check(parent.weights)
            if meta["key"] != parent.key:
                raise ValueError(f"they are the weights of {meta['key'][:12]}, not of the parent")
        except ValueError as exc:
            return self.whole(genome, start, inherit_refused=str(exc))
        return self.whole(genome, start, parent.epochs, inherited_from=parent.key, distance=parent.distance)


# At 0 of E epochs the observed fitness would be (1 - BIAS) of the true one plus noise of NOISE standard
# deviation; both shrink linearly to zero at E. NOISE is set from the rank-fidelity measurement on low-fidelity
# CIFAR-10 (benchmarks/RESULTS.md, multi-fidelity): over random genomes of `densenet_small` (fitness spread
# 0.12) it gives Kendall's tau 0.28 after 1 of 9 epochs and 0.46 after 3, where real training gave 0.27 and 0.36.
FIDELITY_BIAS = 0.3
FIDELITY_NOISE = 0.15


# The synthetic training loss starts near chance cross-entropy for ten classes and falls with the rung's observed
# quality; its noise is drawn apart from the accuracy's, so that loss and accuracy rank rungs alike but not equally.
LOSS_AT_CHANCE = math.log(10)


def fidelity_loss(fitness: float, key: str, epochs: int, full_epochs: int) -> float:
    """The mean training loss of the last epoch of a rung of `epochs` of `full_epochs`, for a genome of true
    `fitness`: high and noisy early, lower for better genomes, a pure function of (key, epochs) like
    `fidelity_fitness`."""
    gap = 1.0 - min(epochs, full_epochs) / full_epochs
    noise = random.Random(f"{key}:{epochs}:loss").gauss(0.0, 1.0)
    seen = fitness * (1.0 - FIDELITY_BIAS * gap) + FIDELITY_NOISE * gap * noise
    return LOSS_AT_CHANCE * max(0.05, 1.0 - seen)


def fidelity_fitness(fitness: float, key: str, epochs: int, full_epochs: int) -> float:
    """The synthetic fitness seen after `epochs` of `full_epochs`: biased low and noisy, exact at the top.

    The noise is a pure function of (key, epochs) (`random.Random` seeds strings by SHA-512, the same in every
    process), so a rung gives the same number whenever and wherever it is evaluated."""
    gap = 1.0 - min(epochs, full_epochs) / full_epochs
    noise = random.Random(f"{key}:{epochs}").gauss(0.0, 1.0)
    return min(1.0, max(0.0, fitness * (1.0 - FIDELITY_BIAS * gap) + FIDELITY_NOISE * gap * noise))


def synthetic_rung(
    objective: "SyntheticObjective", genome: Genome, epochs: int, full_epochs: int, state: bytes | None
) -> Result:
    """One rung of the synthetic objective: continue from `state` (epochs done) to `epochs`, sleeping the cost
    of the epochs trained; the result carries its own tensor-free rung state."""
    start = time.perf_counter()
    meta = read_header(state) if state is not None else None
    if state is not None and (meta is None or meta.get("key") != genome.key):
        raise ValueError("the rung state is not this candidate's")
    done = meta["epochs_done"] if meta is not None else 0
    budget = objective.budget_epochs or full_epochs
    params, flops = analytic_cost(objective.architecture(genome))
    delay = objective.cost_seconds(flops) * max(epochs - done, 0) / budget
    if delay:
        time.sleep(delay)
    true = objective.fitness(genome)
    fitness = fidelity_fitness(true, genome.key, epochs, budget)
    metrics = {**objective.latency(flops), "epochs_trained": epochs - done,
               "train_loss": fidelity_loss(true, genome.key, epochs, budget)}  # fmt: skip
    return ok_result(genome, fitness, params, flops, start, metrics=metrics,
                     epochs=epochs, state=metadata_only({"epochs_done": epochs, "key": genome.key}))  # fmt: skip


def ok_result(genome: Genome, fitness: float, params: int, flops: int, start: float, **extra: Any) -> Result:
    """The synthetic objective's answer: a whole evaluation's, or (with `extra`) one rung's."""
    return Result(key=genome.key, genome=genome.to_dict(), status="ok", fitness=fitness, params=params, flops=flops,
                  seconds=time.perf_counter() - start, **extra)  # fmt: skip


@OBJECTIVES.register("synthetic")
def build_synthetic(config: Config, space: SearchSpace) -> SyntheticObjective:
    name = config.dataset.name
    in_channels, num_classes, size = SHAPES.get(name, (3, 10, 32))
    return SyntheticObjective(
        space,
        (in_channels, num_classes, config.dataset.resize or size),
        config.fitness.seconds_per_evaluation,
        landscape=config.fitness.landscape,
        seconds_per_gflop=config.fitness.seconds_per_gflop,
        latency_batch=config.fitness.batch_size if wants_latency(config) else None,
        budget_epochs=config.fitness.epochs,
        inherits=config.search.inherit is not None,
    )
