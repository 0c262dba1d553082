"""The architecture level: a search-space file and the particle that lives in it.

A search space (`encodings/*.yaml`) fixes the number of blocks and the network's fixed parts (stem width,
bottleneck width, compression, and the optional stem stride of `nas.genome.architecture`) and gives, per
block, integer ranges for `layers` and `growth_rate`, plus an optional log-scale learning-rate range. PSO moves
a particle: a vector of real numbers, one per dimension, decoded by rounding and clamping. The shortcut level
is a separate encoding (`shortcuts.py`) whose length follows from the decoded layers.
"""

import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import UserError, shown
from nas.genome import shortcuts
from nas.genome.genome import BlockGene, Genome, positive_int
from nas.yamlfile import load_yaml_mapping

SPACE_FORMAT = "nas-search-space/1"
MAX_FLOAT = sys.float_info.max
STEM_STRIDES = (1, 2, 4)
SPACE_KEYS = ("format", "name", "stem_channels", "stem_stride", "bottleneck_width", "compression", "blocks",
              "learning_rate")  # fmt: skip


@dataclass(frozen=True)
class Dimension:
    """One real-valued coordinate of a particle. Integer dimensions decode by rounding; `log` ones are log10.

    A particle lives in the dimension's `span`: for an integer range [low, high] that is [low - 0.5,
    high + 0.5], so that every integer value, the two ends included, owns a cell of width 1 and a uniform
    position decodes to each value with the same probability (rounding inside [low, high] would give the ends
    half a cell each). Decoding rounds, then clamps to [low, high]."""

    name: str
    low: float
    high: float
    integer: bool = True

    @property
    def width(self) -> float:
        return self.high - self.low

    @property
    def span(self) -> tuple[float, float]:
        """Where a particle may sit (see the class docstring)."""
        return (self.low - 0.5, self.high + 0.5) if self.integer else (self.low, self.high)

    @property
    def span_width(self) -> float:
        low, high = self.span
        return high - low

    def clamp(self, value: float) -> float:
        return min(max(value, self.low), self.high)

    def clamp_span(self, value: float) -> float:
        low, high = self.span
        return min(max(value, low), high)

    def value(self, x: float) -> float:
        """The decoded value of coordinate `x`: rounded (integers) and clamped to [low, high]."""
        return float(self.clamp(round(x))) if self.integer else self.clamp(x)


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the architecture level, plus the fixed parts every candidate of the space shares."""

    name: str
    stem_channels: int
    bottleneck_width: int
    compression: float
    layers: tuple[tuple[int, int], ...]
    growth_rate: tuple[tuple[int, int], ...]
    learning_rate: tuple[float, float] | None = None
    stem_stride: int = 1

    @property
    def num_blocks(self) -> int:
        return len(self.layers)

    @property
    def dimensions(self) -> list[Dimension]:
        """Particle coordinates: layers_b, growth_rate_b for each block b, then log10 learning rate if searched."""
        dims = []
        for b, (lay, gro) in enumerate(zip(self.layers, self.growth_rate, strict=True)):
            dims.append(Dimension(f"blocks[{b}].layers", *lay))
            dims.append(Dimension(f"blocks[{b}].growth_rate", *gro))
        if self.learning_rate is not None:
            lo, hi = self.learning_rate
            dims.append(Dimension("learning_rate", math.log10(lo), math.log10(hi), integer=False))
        return dims

    def bit_length_range(self) -> tuple[int, int]:
        """Smallest and largest total shortcut bit length over the space."""
        return (
            sum(shortcuts.bit_length(lo) for lo, _ in self.layers),
            sum(shortcuts.bit_length(hi) for _, hi in self.layers),
        )

    def clamp(self, position: list[float]) -> list[float]:
        return [d.clamp(x) for d, x in zip(self.dimensions, position, strict=True)]

    def decode(self, position: list[float]) -> tuple[tuple[tuple[int, int], ...], float | None]:
        """Round and clamp a particle into ((layers, growth_rate) per block, learning rate or None)."""
        dims = self.dimensions
        if len(position) != len(dims):
            raise ValueError(f"position has {len(position)} coordinates, the space has {len(dims)}")
        values = [d.value(x) for d, x in zip(dims, position, strict=True)]
        ints = [int(v) for v in values[: 2 * self.num_blocks]]
        blocks = tuple((ints[2 * b], ints[2 * b + 1]) for b in range(self.num_blocks))
        lr = 10 ** values[-1] if self.learning_rate is not None else None
        return blocks, lr

    def encode(self, blocks: tuple[tuple[int, int], ...], learning_rate: float | None = None) -> list[float]:
        """The particle position of a decoded architecture (the inverse of `decode` on valid points)."""
        position = [float(v) for pair in blocks for v in pair]
        if self.learning_rate is not None:
            if learning_rate is None:
                raise ValueError("this space searches the learning rate; give one")
            position.append(math.log10(learning_rate))
        return position

    def random_position(self, rng: random.Random) -> list[float]:
        """A uniform position over every dimension's span: each integer value equally likely, ends included."""
        return [rng.uniform(*d.span) for d in self.dimensions]

    def genome(self, position: list[float], bits: tuple[str, ...]) -> Genome:
        """Pair a particle with one bitstring per block into a genome."""
        blocks, lr = self.decode(position)
        genes = tuple(
            BlockGene(layers, growth, shortcuts.validate(b, layers))
            for (layers, growth), b in zip(blocks, bits, strict=True)
        )
        return Genome(blocks=genes, learning_rate=lr)

    def largest_genome(self) -> Genome:
        """The space's costliest member: most layers, widest growth, every shortcut on (the most channels)."""
        blocks = tuple((lay[1], gro[1]) for lay, gro in zip(self.layers, self.growth_rate, strict=True))
        lr = self.learning_rate[1] if self.learning_rate else None
        return self.genome(self.encode(blocks, lr), tuple(shortcuts.all_ones(layers) for layers, _ in blocks))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": SPACE_FORMAT,
            "name": self.name,
            "stem_channels": self.stem_channels,
            "bottleneck_width": self.bottleneck_width,
            "compression": self.compression,
            "blocks": [
                {"layers": list(lay), "growth_rate": list(gro)}
                for lay, gro in zip(self.layers, self.growth_rate, strict=True)
            ],
        }
        if self.learning_rate is not None:
            out["learning_rate"] = list(self.learning_rate)
        if self.stem_stride != 1:
            out["stem_stride"] = self.stem_stride
        return out


def int_range(value: Any, key: str, maximum: int) -> tuple[int, int]:
    """A `[low, high]` integer range with 1 <= low <= high <= maximum."""
    if not isinstance(value, list) or len(value) != 2:
        raise UserError("must be a range [low, high]", key=key)
    low = positive_int(value[0], f"{key}[0]", maximum)
    high = positive_int(value[1], f"{key}[1]", maximum)
    if low > high:
        raise UserError(f"low {low} is above high {high}", key=key)
    return low, high


def compression_value(value: Any, key: str) -> float:
    """A DenseNet-BC compression factor in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError("must be a number in (0, 1]", key=key)
    if not 0 < value <= 1:
        raise UserError(f"must be in (0, 1], got {value}", key=key)
    return float(value)


def stem_stride_value(value: Any, key: str) -> int:
    """A stem stride: 1, 2 or 4, how much the stem shrinks the image (`nas.genome.architecture`)."""
    if type(value) is not int or value not in STEM_STRIDES:
        raise UserError(f"must be one of {', '.join(map(str, STEM_STRIDES))}, got {shown(value)}", key=key)
    return value


def parse_space(data: dict[str, Any], name: str) -> SearchSpace:
    """Validate a search-space mapping (see `encodings/densenet_cifar.yaml`)."""
    if data.get("format") != SPACE_FORMAT:
        raise UserError(f"must be {SPACE_FORMAT!r}, got {shown(data.get('format'))}", key="format")
    unknown = set(data) - set(SPACE_KEYS)
    if unknown:
        raise UserError("unknown key", key=shown(min(unknown, key=str)).strip("'"))
    for required in ("stem_channels", "bottleneck_width", "compression", "blocks"):
        if required not in data:
            raise UserError("is missing", key=required)
    blocks = data["blocks"]
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 8:
        raise UserError("must be a list of 1 to 8 blocks", key="blocks")
    layers, growth = [], []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or set(block) != {"layers", "growth_rate"}:
            raise UserError("must be a mapping with exactly layers and growth_rate", key=f"blocks[{i}]")
        layers.append(int_range(block["layers"], f"blocks[{i}].layers", 64))
        growth.append(int_range(block["growth_rate"], f"blocks[{i}].growth_rate", 512))
    lr = data.get("learning_rate")
    if lr is not None:
        # a bound beyond float range (10**400) or not finite is refused here, before float() or log10 meet it
        ok = isinstance(lr, list) and len(lr) == 2 and all(type(v) in (int, float) and 0 < v <= MAX_FLOAT for v in lr)
        if not ok or lr[0] > lr[1]:
            raise UserError("must be a range [low, high] of positive numbers", key="learning_rate")
        lr = (float(lr[0]), float(lr[1]))
    space_name = data.get("name", name)
    if not isinstance(space_name, str):
        raise UserError("must be a string", key="name")
    return SearchSpace(
        name=space_name,
        stem_channels=positive_int(data["stem_channels"], "stem_channels", 4096),
        bottleneck_width=positive_int(data["bottleneck_width"], "bottleneck_width", 64),
        compression=compression_value(data["compression"], "compression"),
        layers=tuple(layers),
        growth_rate=tuple(growth),
        learning_rate=lr,
        stem_stride=stem_stride_value(data.get("stem_stride", 1), "stem_stride"),
    )


def load_space(path: str | Path) -> SearchSpace:
    """Load and validate a search-space file; errors name the file and the key."""
    data = load_yaml_mapping(path, "search-space file")
    try:
        return parse_space(data, Path(path).stem)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
