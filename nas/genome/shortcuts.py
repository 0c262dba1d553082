"""The shortcut level: one bitstring a block, as DESIGN.md section 2 fixes it.

A block with L layers has nodes 0..L (node 0 the block input, node t the output of layer t) and targets 1..L+1
(L+1 is the block output). Every target t always takes node t-1 (the chain). The bitstring adds the other
links, source-major: source j = 0..L-1 owns L-j bits, for targets j+2, .., L+1 in that order, so a block has
L(L+1)/2 bits. All ones is a DenseNet block, all zeros a plain chain.

These are pure functions over `str` of '0'/'1', so that the GA and the model builder agree on one layout.
"""

import random

from nas.errors import UserError


def bit_length(layers: int) -> int:
    """Number of shortcut bits of a block with `layers` layers: L(L+1)/2."""
    return layers * (layers + 1) // 2


def pairs(layers: int) -> list[tuple[int, int]]:
    """The (source, target) pair of every bit, in bitstring order."""
    return [(j, t) for j in range(layers) for t in range(j + 2, layers + 2)]


def bit_index(layers: int, source: int, target: int) -> int:
    """Position of the bit linking `source` to `target` (source <= target - 2)."""
    if not 0 <= source <= target - 2 or target > layers + 1:
        raise ValueError(f"no shortcut bit from node {source} to target {target} in a block of {layers}")
    before = source * layers - source * (source - 1) // 2  # the bits of sources 0..source-1: sum of (L - j)
    return before + (target - source - 2)


def validate(bits: str, layers: int, key: str | None = None) -> str:
    """Return `bits` if it is a valid shortcut string for `layers` layers, else raise `UserError`."""
    if not isinstance(bits, str):
        raise UserError(f"must be a string of 0 and 1, not {type(bits).__name__}", key=key)
    want = bit_length(layers)
    if len(bits) != want:
        raise UserError(f"has {len(bits)} bits, a block of {layers} layers needs {want}", key=key)
    bad = set(bits) - {"0", "1"}
    if bad:
        raise UserError(f"may hold only 0 and 1, found {''.join(sorted(bad))!r}", key=key)
    return bits


def inputs_of(bits: str, layers: int, target: int) -> list[int]:
    """Nodes concatenated (ascending) into `target`: the chain node t-1 plus every source whose bit is 1."""
    nodes = [j for j in range(target - 1) if bits[bit_index(layers, j, target)] == "1"]
    return nodes + [target - 1]


def all_ones(layers: int) -> str:
    """The DenseNet block of `layers` layers."""
    return "1" * bit_length(layers)


def random_bits(layers: int, rng: random.Random, p_one: float = 0.5) -> str:
    """A random shortcut string, each bit 1 with probability `p_one`."""
    return "".join("1" if rng.random() < p_one else "0" for _ in range(bit_length(layers)))


def resize(bits: str, old_layers: int, new_layers: int, rng: random.Random) -> str:
    """Re-lay `bits` for a block whose layer count changed from `old_layers` to `new_layers`.

    A (source, target) pair that exists in both shapes keeps its bit; the block output keeps its identity (it
    is target L+1 in either shape, so links into the output survive a change of depth); every new pair draws
    a fresh random bit. This keeps what the GA learned about a block when PSO moves the particle.
    """
    old = dict(zip(pairs(old_layers), bits, strict=True))
    out = []
    for source, target in pairs(new_layers):
        if target == new_layers + 1:
            old_target: int | None = old_layers + 1
        else:
            old_target = target if target <= old_layers else None
        bit = old.get((source, old_target)) if old_target is not None else None
        out.append(bit if bit is not None else ("1" if rng.random() < 0.5 else "0"))
    return "".join(out)
