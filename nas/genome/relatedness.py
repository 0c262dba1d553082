"""How far apart two genomes are, as weight inheritance sees them, so that a caller can start a candidate from
its nearest evaluated relative (`nas.model.inherit.transplant` copies the weights).

A block is read as its set of links (source node, target): every chain link and every shortcut whose bit is 1,
with the block output one target whatever the depth, as `shortcuts.resize` aligns it (target L+1 of a block of
L layers is the same target as L'+1 of one of L'). Layers are matched by index, as the transplant matches them.
"""

import math

from nas.genome.genome import BlockGene, Genome
from nas.genome.shortcuts import inputs_of

OUTPUT = -1  # the block output, a target of its own whatever the number of layers


def links(block: BlockGene) -> frozenset[tuple[int, int]]:
    """Every (source, target) link of `block`, chain included, with the block output as target `OUTPUT`."""
    out: set[tuple[int, int]] = set()
    for target in range(1, block.layers + 2):
        name = OUTPUT if target == block.layers + 1 else target
        out.update((source, name) for source in inputs_of(block.shortcuts, block.layers, target))
    return frozenset(out)


def block_distance(a: BlockGene, b: BlockGene) -> float:
    """Links only one block has, plus the share of a node's channels the narrower growth rate lacks.

    For equal depths the first term is the Hamming distance of the shortcut strings (chains are common to
    both); a layer one block has and the other lacks counts each link into or out of it. The second term,
    |k_a - k_b| / max(k_a, k_b), is below 1: a growth change costs less than one link.
    """
    growth = abs(a.growth_rate - b.growth_rate) / max(a.growth_rate, b.growth_rate)
    return len(links(a) ^ links(b)) + growth


def distance(a: Genome, b: Genome) -> float:
    """Sum of `block_distance` over blocks matched by index; `math.inf` when the numbers of blocks differ.

    0 exactly when the blocks are equal (the learning rate is not counted: it holds no weights). Symmetric, and
    it obeys the triangle inequality (a sum of a set's symmetric difference and of |x - y| / max(x, y), both
    metrics), so a nearest relative is well defined.
    """
    if len(a.blocks) != len(b.blocks):
        return math.inf
    return sum(block_distance(x, y) for x, y in zip(a.blocks, b.blocks, strict=True))
