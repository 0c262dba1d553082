"""The landscapes of the `synthetic` objective (`fitness.landscape`): a family of deterministic, cheap
functions of the genome, so that a strategy's defaults are chosen on several shapes of problem, not one.

Each landscape scores a genome in [0, 1]; all are deterministic (the same genome always scores the same, as the
run's log assumes).

- `bump` (the default): a Gaussian bump around a target per block at 80% of the `layers` range and 20% of the
  `growth_rate` range (deep and narrow, away from the centre of the space); the shortcut level scores the
  fraction of bits matching the "input and output links" pattern. 0.6 architecture + 0.4 pattern, 1 at the
  optimum.
- `epistatic`: another optimum (30% of the layers range, 70% of the growth range: shallow and wide) and
  interacting shortcut bits: a layer scores only when its whole column of incoming links matches the target
  ("skip-one" links, source = target - 2, plus the block input into the block output), so single bit flips are
  often neutral and pairs of flips pay. 0.5 architecture + 0.1 bit matches + 0.4 whole columns.
- `noisy`: `bump` plus seed-like noise: a Gaussian of standard deviation `NOISE_STD` drawn from the genome's key
  (what another training seed does to validation accuracy), clipped to [0, 1]. The measured best of a search
  is then partly luck (the winner's curse); the benchmark also reports the noise-free value of what was found.
- `cost`: accuracy that saturates with capacity (layers x growth rate per block, and the input/output pattern)
  minus a cost term proportional to the parameter count (exact, `analytic_cost`), so fewer parameters are
  rewarded and the optimum is an interior trade-off, not the largest network.
"""

import hashlib
import math
import random
from collections.abc import Callable

from nas.genome import shortcuts
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace

NOISE_STD = 0.03  # about the seed-to-seed spread of validation accuracy in the real-training runs
COST_WEIGHT = 0.35  # fitness lost by the largest network of the space through its parameter count


def ideal_bits(layers: int) -> str:
    """The rewarded pattern: links from the block input (source 0) and into the block output (target L+1)."""
    return "".join("1" if s == 0 or t == layers + 1 else "0" for s, t in shortcuts.pairs(layers))


def skip_bits(layers: int) -> str:
    """The `epistatic` target: links that skip exactly one layer, and the block input into the block output."""
    return "".join("1" if t - s == 2 or (s == 0 and t == layers + 1) else "0" for s, t in shortcuts.pairs(layers))


def targets(space: SearchSpace, layers_at: float, growth_at: float) -> list[tuple[int, int]]:
    """The optimum's (layers, growth_rate) per block, at fractions of each range (whole numbers)."""
    return [
        (round(lay[0] + layers_at * (lay[1] - lay[0])), round(gro[0] + growth_at * (gro[1] - gro[0])))
        for lay, gro in zip(space.layers, space.growth_rate, strict=True)
    ]


def architecture_score(space: SearchSpace, genome: Genome, goal: list[tuple[int, int]]) -> float:
    """A Gaussian bump around `goal` (and the geometric mean of the learning rate range, when searched)."""
    distance = 0.0
    for block, (t_layers, t_growth), lay, gro in zip(genome.blocks, goal, space.layers, space.growth_rate, strict=True):
        distance += ((block.layers - t_layers) / max(lay[1] - lay[0], 1)) ** 2
        distance += ((block.growth_rate - t_growth) / max(gro[1] - gro[0], 1)) ** 2
    if space.learning_rate is not None and genome.learning_rate is not None:
        lo, hi = space.learning_rate
        distance += ((math.log10(genome.learning_rate) - math.log10(math.sqrt(lo * hi))) / 2) ** 2
    return math.exp(-8 * distance / len(genome.blocks))


def pattern_score(genome: Genome, pattern: Callable[[int], str]) -> float:
    """The fraction of all shortcut bits that match `pattern(layers)` block by block."""
    matches = sum(
        a == b for block in genome.blocks for a, b in zip(block.shortcuts, pattern(block.layers), strict=True)
    )
    return matches / sum(len(block.shortcuts) for block in genome.blocks)


def column_score(genome: Genome, pattern: Callable[[int], str]) -> float:
    """The fraction of layers (and block outputs) whose whole column of incoming links matches `pattern`."""
    right = total = 0
    for block in genome.blocks:
        target = pattern(block.layers)
        columns: dict[int, list[bool]] = {}
        for bit, want, (_, t) in zip(block.shortcuts, target, shortcuts.pairs(block.layers), strict=True):
            columns.setdefault(t, []).append(bit == want)
        right += sum(all(c) for c in columns.values())
        total += len(columns)
    return right / total


def key_noise(genome: Genome, std: float) -> float:
    """A Gaussian drawn from the genome's key: the same genome, the same noise."""
    seed = int.from_bytes(hashlib.sha256(b"noise:" + genome.key.encode()).digest()[:8], "big")
    return random.Random(seed).gauss(0.0, std)


class Landscape:
    """One member of the family for one space; `cost` needs the parameter count, others ignore it."""

    def __init__(self, name: str, space: SearchSpace, largest_params: int):
        if name not in LANDSCAPES:
            raise ValueError(f"unknown landscape {name!r}")
        self.name = name
        self.needs_params = name == "cost"
        self.space = space
        self.largest_params = max(largest_params, 1)
        self.bump_goal = targets(space, 0.8, 0.2)
        self.epistatic_goal = targets(space, 0.3, 0.7)

    def true_fitness(self, genome: Genome, params: int) -> float:
        """The landscape without its noise (what `noisy` would score with a perfect training)."""
        space = self.space
        if self.name in ("bump", "noisy"):
            return 0.6 * architecture_score(space, genome, self.bump_goal) + 0.4 * pattern_score(genome, ideal_bits)
        if self.name == "epistatic":
            arch = architecture_score(space, genome, self.epistatic_goal)
            return 0.5 * arch + 0.1 * pattern_score(genome, skip_bits) + 0.4 * column_score(genome, skip_bits)
        return self.cost_fitness(genome, params)

    def cost_fitness(self, genome: Genome, params: int) -> float:
        capacity = sum(b.layers * b.growth_rate for b in genome.blocks)
        largest = sum(lay[1] * gro[1] for lay, gro in zip(self.space.layers, self.space.growth_rate, strict=True))
        accuracy = 0.6 * (1 - math.exp(-4 * capacity / largest)) + 0.4 * pattern_score(genome, ideal_bits)
        return min(max(accuracy - COST_WEIGHT * params / self.largest_params, 0.0), 1.0)

    def fitness(self, genome: Genome, params: int) -> float:
        value = self.true_fitness(genome, params)
        if self.name == "noisy":
            value = min(max(value + key_noise(genome, NOISE_STD), 0.0), 1.0)
        return value


LANDSCAPES = ("bump", "epistatic", "noisy", "cost")
