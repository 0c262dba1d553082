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
`fitness.seconds_per_evaluation` sleeps to emulate training cost. The network's fixed parts come from the
dataset's known shape (`SHAPES`), so no data is loaded; params and FLOPs are exact (`analytic_cost`).
"""

import math
import time

from nas.config import Config
from nas.evaluate.landscapes import Landscape, ideal_bits
from nas.evaluate.objective import OBJECTIVES
from nas.evaluate.result import Result
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


class SyntheticObjective:
    def __init__(self, space: SearchSpace, shape: tuple[int, int, int], seconds: float, landscape: str = "bump"):
        self.space = space
        self.shape = shape
        self.seconds = seconds
        self.targets = [
            (round(lay[0] + 0.8 * (lay[1] - lay[0])), round(gro[0] + 0.2 * (gro[1] - gro[0])))
            for lay, gro in zip(space.layers, space.growth_rate, strict=True)
        ]
        self.landscape = Landscape(landscape, space, self.largest_params() if landscape == "cost" else 1)

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
        if params is None and self.landscape.name == "cost":
            params = analytic_cost(self.architecture(genome))[0]
        return self.landscape.fitness(genome, params or 0)

    def optimum(self) -> Genome:
        """The genome of fitness exactly 1 on the `bump` landscape (the targets are whole numbers)."""
        blocks = tuple(self.targets)
        lr = math.sqrt(self.space.learning_rate[0] * self.space.learning_rate[1]) if self.space.learning_rate else None
        return self.space.genome(self.space.encode(blocks, lr), tuple(ideal_bits(layers) for layers, _ in blocks))

    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        start = time.perf_counter()
        if self.seconds:
            time.sleep(self.seconds)
        params, flops = analytic_cost(self.architecture(genome))
        return Result(
            key=genome.key,
            genome=genome.to_dict(),
            status="ok",
            fitness=self.fitness(genome, params),
            params=params,
            flops=flops,
            seconds=time.perf_counter() - start,
        )


@OBJECTIVES.register("synthetic")
def build_synthetic(config: Config, space: SearchSpace) -> SyntheticObjective:
    name = config.dataset.name
    in_channels, num_classes, size = SHAPES.get(name, (3, 10, 32))
    return SyntheticObjective(
        space,
        (in_channels, num_classes, config.dataset.resize or size),
        config.fitness.seconds_per_evaluation,
        landscape=config.fitness.landscape,
    )
