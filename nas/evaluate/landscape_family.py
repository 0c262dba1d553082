"""Generated landscapes: families of synthetic problems drawn from an instance seed, `<family>/<instance>`.

The four hand-written landscapes (`nas.evaluate.landscapes`) are single functions; defaults chosen on them fit
them. Black-box optimisation benchmarks (COCO/BBOB, IOHprofiler's PBO suite) instead draw many instances of a
problem class and report on instances never used for tuning. This module does that for the genome of a search
space, both levels:

- architecture level: the position (per block `layers` and `growth_rate`, and the log learning rate when
  searched) normalised to [0, 1]; one or more Gaussian peaks at random centres with random widths and heights
  (the highest exactly 1); the score is the highest peak's value there.
- shortcut level: an NK landscape (Kauffman) over each block's bits. A bit is a link (source, target), the
  target of a link into the block output named "out" whatever the depth, so a link keeps its meaning when the
  depth changes; its contribution is a uniform draw that depends on its own value and the values of K other
  links of the block (chosen per link from the instance seed). K = 0 is separable, larger K rugged. Contribution
  tables are never stored: each entry is a hash of (instance, block, link, values), so any depth works.
- noise: a Gaussian of the instance's standard deviation drawn from the genome's key (one genome, one value,
  as the run log assumes), the size of another training seed's effect at most (0.03).
- cost: an optional term proportional to the parameter count, so the biggest network is not best.

fitness = clip(a * architecture + (1 - a) * shortcuts - cost * params / largest + noise, 0, 1).

Families (`FAMILIES`) set the ranges an instance's parameters are drawn from. Instances below `TEST_FROM` are
the tuning set; instances from `TEST_FROM` on are the test set: defaults are chosen on the first and reported
on the second (benchmarks/search_quality.py `--family`, `--instances`).
"""

import hashlib
import math
import random
import re
import struct
from dataclasses import dataclass

from nas.evaluate.landscapes import key_noise
from nas.genome import shortcuts
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace

TEST_FROM = 1000  # instance seeds from here on form the test set; below, the tuning set
NAME = re.compile(r"^([a-z]+)/(\d{1,9})$")


@dataclass(frozen=True)
class Family:
    """The ranges an instance's parameters are drawn from (inclusive)."""

    peaks: tuple[int, int] = (1, 1)  # number of architecture peaks
    width: tuple[float, float] = (0.2, 0.4)  # the global peak's width (std over the normalised position)
    local_width: tuple[float, float] = (0.2, 0.4)  # the other peaks' widths
    local_height: tuple[float, float] = (0.6, 0.85)  # the other peaks' heights (the global one is 1)
    k: tuple[int, int] = (0, 1)  # NK epistasis: other links a link's contribution depends on
    arch_weight: tuple[float, float] = (0.5, 0.7)
    noise: tuple[float, float] = (0.0, 0.0)
    cost: tuple[float, float] = (0.0, 0.0)


FAMILIES = {
    # one broad peak, nearly separable links: where a careful local search wins
    "smooth": Family(),
    # one peak, strongly interacting links
    "rugged": Family(peaks=(1, 2), k=(2, 4)),
    # a narrow global peak beside broad local ones nearly as high
    "deceptive": Family(
        peaks=(2, 3), width=(0.08, 0.15), local_width=(0.3, 0.5), local_height=(0.75, 0.9), k=(1, 3)
    ),  # fmt: skip
    # seed-like noise on a moderately rugged landscape: the measured best is partly luck
    "noisy": Family(peaks=(1, 2), k=(0, 2), noise=(0.01, 0.03)),
    # accuracy against parameter count: an interior trade-off
    "costly": Family(peaks=(1, 2), k=(0, 2), cost=(0.15, 0.35)),
}


def parse_name(name: str) -> tuple[str, int] | None:
    """(family, instance) of a generated landscape's name, or None when `name` is not one."""
    match = NAME.match(name)
    if match is None or match.group(1) not in FAMILIES:
        return None
    return match.group(1), int(match.group(2))


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) that is a pure function of `parts` (the same in every process)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return struct.unpack(">Q", digest)[0] / 2**64


@dataclass(frozen=True)
class Peak:
    centre: tuple[float, ...]
    width: float
    height: float

    def value(self, x: list[float]) -> float:
        mean_square = sum((a - b) ** 2 for a, b in zip(x, self.centre, strict=True)) / len(x)
        return self.height * math.exp(-mean_square / (2 * self.width**2))


class GeneratedLandscape:
    """One instance of a family over one space: the `Landscape` interface (`fitness`, `true_fitness`)."""

    def __init__(self, name: str, space: SearchSpace, largest_params: int):
        parsed = parse_name(name)
        if parsed is None:
            raise ValueError(f"not a generated landscape: {name!r}")
        self.name = name
        self.family, self.instance = parsed
        self.space = space
        self.largest_params = max(largest_params, 1)
        family = FAMILIES[self.family]
        rng = random.Random(f"landscape:{self.family}:{self.instance}")
        dims = 2 * len(space.layers) + (space.learning_rate is not None)
        count = rng.randint(*family.peaks)
        self.peaks = [
            Peak(
                tuple(rng.random() for _ in range(dims)),
                rng.uniform(*(family.width if i == 0 else family.local_width)),
                1.0 if i == 0 else rng.uniform(*family.local_height),
            )
            for i in range(count)
        ]
        self.k = rng.randint(*family.k)
        self.arch_weight = rng.uniform(*family.arch_weight)
        self.noise = rng.uniform(*family.noise)
        self.cost = rng.uniform(*family.cost)
        self.needs_params = self.cost > 0
        self.neighbours: dict[tuple[int, int], list[int]] = {}

    def position(self, genome: Genome) -> list[float]:
        """The genome's architecture position, each dimension scaled to [0, 1] over its range."""
        x = []
        for block, lay, gro in zip(genome.blocks, self.space.layers, self.space.growth_rate, strict=True):
            x.append((block.layers - lay[0]) / max(lay[1] - lay[0], 1))
            x.append((block.growth_rate - gro[0]) / max(gro[1] - gro[0], 1))
        if self.space.learning_rate is not None and genome.learning_rate is not None:
            lo, hi = (math.log10(v) for v in self.space.learning_rate)
            x.append((math.log10(genome.learning_rate) - lo) / max(hi - lo, 1e-12))
        return x

    def architecture_score(self, genome: Genome) -> float:
        x = self.position(genome)
        return max(peak.value(x) for peak in self.peaks)

    def links(self, layers: int) -> list[tuple[int, int | str]]:
        """Each bit's link: (source, target), a link into the block output named (source, "out")."""
        return [(s, "out" if t == layers + 1 else t) for s, t in shortcuts.pairs(layers)]

    def neighbours_of(self, block: int, layers: int) -> list[list[int]]:
        """For each bit of a block of `layers` layers, the positions of the K bits its contribution depends on."""
        cached = self.neighbours.get((block, layers))
        if cached is None:
            links = self.links(layers)
            cached = []
            for i, link in enumerate(links):
                others = [j for j in range(len(links)) if j != i]
                random.Random(f"nk:{self.family}:{self.instance}:{block}:{link}:{layers}").shuffle(others)
                cached.append(sorted(others[: self.k]))
            self.neighbours[(block, layers)] = cached
        return cached

    def shortcut_score(self, genome: Genome) -> float:
        """The NK value: the mean contribution of every bit of every block."""
        total, count = 0.0, 0
        for b, block in enumerate(genome.blocks):
            bits, links = block.shortcuts, self.links(block.layers)
            for i, around in enumerate(self.neighbours_of(b, block.layers)):
                context = "".join(bits[j] for j in around)
                total += unit(self.family, self.instance, b, links[i], bits[i], context)
                count += 1
        return total / max(count, 1)

    def true_fitness(self, genome: Genome, params: int) -> float:
        """The landscape without its noise."""
        value = self.arch_weight * self.architecture_score(genome)
        value += (1 - self.arch_weight) * self.shortcut_score(genome)
        value -= self.cost * params / self.largest_params
        return min(max(value, 0.0), 1.0)

    def fitness(self, genome: Genome, params: int) -> float:
        value = self.true_fitness(genome, params)
        if self.noise:
            value = min(max(value + key_noise(genome, self.noise), 0.0), 1.0)
        return value


def instances(family: str, which: str, count: int) -> list[str]:
    """`count` landscape names of `family` from the tuning set (`which="tuning"`) or the test set."""
    start = 0 if which == "tuning" else TEST_FROM
    return [f"{family}/{start + i}" for i in range(count)]
