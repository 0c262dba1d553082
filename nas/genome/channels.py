"""Channel bookkeeping of the network an architecture describes, without torch.

The model builder, the analytic cost and the architecture validation all walk the same channels; this is the
one place that walk is written.
"""

import math
from fractions import Fraction
from typing import Protocol

from nas.genome.genome import BlockGene, Genome
from nas.genome.shortcuts import inputs_of


class Widths(Protocol):
    """What the channel walk reads of an architecture (an `Architecture` is one), so that this module needs no
    import of the architecture file's module, which itself validates by this walk."""

    @property
    def stem_channels(self) -> int: ...

    @property
    def compression(self) -> float: ...

    @property
    def genome(self) -> Genome: ...


def layer_input_channels(block: BlockGene, in_channels: int) -> list[int]:
    """Input channels of each target 1..L+1 of a block (the last one is the block output)."""
    node_channels = [in_channels] + [block.growth_rate] * block.layers
    return [
        sum(node_channels[n] for n in inputs_of(block.shortcuts, block.layers, target))
        for target in range(1, block.layers + 2)
    ]


def block_channels(arch: Widths) -> list[tuple[int, int]]:
    """(input channels, output channels) of every block, after the stem and each transition."""
    out, channels = [], arch.stem_channels
    for i, block in enumerate(arch.genome.blocks):
        block_out = layer_input_channels(block, channels)[-1]
        out.append((channels, block_out))
        channels = block_out if i == len(arch.genome.blocks) - 1 else transition_width(block_out, arch.compression)
    return out


def transition_width(channels: int, compression: float) -> int:
    """floor(channels * compression), exactly: the compression as the decimal it was written as.

    In floating point 100 * 0.29 is 28.999999999999996 and the floor was 28, not the 29 the architecture
    contract promises. `repr` gives the shortest decimal that reads back as the same float (0.29), and a
    `Fraction` of it multiplies without rounding.
    """
    return math.floor(channels * Fraction(repr(float(compression))))
