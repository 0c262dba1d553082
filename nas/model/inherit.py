"""Weight inheritance: a child network starts from a trained parent's weights, channel by channel.

After Prellberg and Kramer (2018) and LEMONADE's function-preserving network morphisms. Each channel of the
child is matched to the parent channel with the same meaning: a layer's input is the concatenation of source
nodes (node 0 the block input, node t the output of layer t), so a child segment takes the same node's segment
of the parent when the matched parent layer reads that node too (the first channels, for a node whose width
changed). Layers and blocks are matched by index; the block output is one target whatever the depth.

Where a child input channel has no parent counterpart (a new shortcut, the output of a new layer, the extra
channels of a wider growth rate or transition) the consuming conv 1x1, conv 3x3 or Linear gets zero weights
on it. The new channel then contributes nothing, so a child that only adds (shortcuts, layers at the end of a
block, growth; a wider stem, bottleneck or transition) computes exactly its parent's function, in eval mode and
in a train-mode forward alike (BatchNorm is per channel, so a new channel's BatchNorm keeps its fresh
initialisation), until its first update. Channels the parent had and the child lacks are dropped. Everything
without a counterpart keeps the child's fresh initialisation.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from nas.genome import shortcuts
from nas.genome.architecture import Architecture
from nas.genome.channels import block_channels
from nas.genome.genome import BlockGene
from nas.model.network import build_model

Index = list[int | None]  # child channel -> parent channel, None where the parent has no counterpart
State = dict[str, torch.Tensor]
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class Link:
    """One child module (a `state_dict` prefix) and the parent module it inherits from.

    `out` maps dimension 0 of every tensor of the module (a BatchNorm's channels, a conv's or Linear's
    outputs); `inp` maps dimension 1 of a conv's or Linear's weight (None for a BatchNorm).
    """

    child: str
    parent: str
    out: Index
    inp: Index | None = None


@dataclass(frozen=True)
class Inheritance:
    """What `transplant` copied, so that a caller can decide how long to train the child.

    Tensors are `state_dict` entries: whole (every element is the parent's), partial (some elements copied
    from the parent or zeroed as a new input, the rest fresh) or fresh. Parameter counts are elements of the
    trainable tensors only (not BatchNorm's running statistics). `preserves_function` is true when the child
    only adds to the parent, so that it computes the parent's function until it trains; `reasons` says why not.
    """

    tensors_whole: int
    tensors_partial: int
    tensors_fresh: int
    params_copied: int
    params_zeroed: int
    params_fresh: int
    preserves_function: bool
    reasons: tuple[str, ...] = ()

    @property
    def fraction_copied(self) -> float:
        """Share of the child's parameters that come from the parent."""
        total = self.params_copied + self.params_zeroed + self.params_fresh
        return self.params_copied / total if total else 0.0


def transplant(
    parent: Architecture,
    parent_state: dict[str, torch.Tensor],
    child: Architecture,
    init: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], Inheritance]:
    """A full `state_dict` for `build_model(child)`, holding every parent weight that has a counterpart.

    `init` is the child's fresh state (default: a new `build_model(child)`); it is not modified. `parent_state`
    must be a `state_dict` of `build_model(parent)`; a missing key or a wrong shape raises `ValueError`.
    """
    fresh = init if init is not None else build_model(child).state_dict()
    state = {key: value.detach().clone() for key, value in fresh.items()}
    copied = {key: torch.zeros(value.shape, dtype=torch.bool) for key, value in state.items()}
    zeroed = {key: torch.zeros(value.shape, dtype=torch.bool) for key, value in state.items()}
    covered: dict[str, int] = {}
    for link in plan(parent, child):
        for suffix in ("weight", "bias", *BUFFERS):
            key, parent_key = f"{link.child}.{suffix}", f"{link.parent}.{suffix}"
            if key in state:
                covered[parent_key] = inherit(state, copied, zeroed, key, parent_state, parent_key, link)
    record = account(state, copied, zeroed, parent_state, covered, why_not_preserved(parent, child))
    return state, record


def inherit(
    state: State, copied: State, zeroed: State, key: str, parent_state: State, parent_key: str, link: Link
) -> int:
    """Copy the mapped elements of one tensor and zero the new inputs of its mapped outputs; returns how many
    parent elements were copied."""
    if parent_key not in parent_state:
        raise ValueError(f"the parent state has no {parent_key!r}")
    source, target = parent_state[parent_key], state[key]
    if target.dim() == 0:  # num_batches_tracked, the module's count of batches: copied with any of its channels
        if any(o is not None for o in link.out):
            target.copy_(source)
            copied[key].fill_(True)
        return 0
    rows, parent_rows = pairs(link.out, source.shape[0], parent_key)
    if target.dim() == 1 or link.inp is None:
        target[rows] = source[torch.tensor(parent_rows, dtype=torch.long)].to(target)
        copied[key][rows] = True
        return len(rows)
    cols, parent_cols = pairs(link.inp, source.shape[1], parent_key)
    if not cols:  # nothing of the input is the parent's: nothing to preserve, the tensor stays fresh
        return 0
    new_cols = torch.tensor([i for i, p in enumerate(link.inp) if p is None], dtype=torch.long)
    r, c = torch.tensor(rows, dtype=torch.long)[:, None], torch.tensor(cols, dtype=torch.long)
    target[r, c] = source[torch.tensor(parent_rows, dtype=torch.long)[:, None], torch.tensor(parent_cols)].to(target)
    copied[key][r, c] = True
    if len(new_cols):
        target[r, new_cols] = 0
        zeroed[key][r, new_cols] = True
    return len(rows) * len(cols) * source[0, 0].numel()


def pairs(index: Index, parent_size: int, parent_key: str) -> tuple[list[int], list[int]]:
    """(child positions, parent positions) of the mapped entries of `index`, checked against the parent's size."""
    child = [i for i, p in enumerate(index) if p is not None]
    parent = [p for p in index if p is not None]
    if (max(parent) + 1 if parent else 0) > parent_size:
        raise ValueError(f"the parent state's {parent_key!r} has {parent_size} channels, its architecture more")
    return child, parent


def account(
    state: State, copied: State, zeroed: State, parent_state: State, covered: dict[str, int], reasons: list[str]
) -> Inheritance:
    """Count what was copied, and add to `reasons` each parent weight the child lost."""
    whole = partial = fresh = p_copied = p_zeroed = p_fresh = 0
    for key, value in state.items():
        n_copied, n_zeroed = int(copied[key].sum()), int(zeroed[key].sum())
        if n_copied == value.numel():
            whole += 1
        elif n_copied or n_zeroed:
            partial += 1
        else:
            fresh += 1
        if not key.endswith(BUFFERS):
            p_copied, p_zeroed = p_copied + n_copied, p_zeroed + n_zeroed
            p_fresh += value.numel() - n_copied - n_zeroed
    lost = [k for k, v in parent_state.items() if v.dim() and covered.get(k, 0) < v.numel()]
    if lost:
        reasons.append(f"the child lacks parent weights of {len(lost)} tensors, the first {lost[0]}")
    return Inheritance(whole, partial, fresh, p_copied, p_zeroed, p_fresh, not reasons, tuple(reasons))


def why_not_preserved(parent: Architecture, child: Architecture) -> list[str]:
    """What differs between the two beyond what the weights show: the number of blocks, fixed parts."""
    out = []
    if len(parent.genome.blocks) != len(child.genome.blocks):
        out.append(f"the child has {len(child.genome.blocks)} blocks, the parent {len(parent.genome.blocks)}")
    for name in ("in_channels", "num_classes", "stem_stride"):
        if getattr(parent, name) != getattr(child, name):
            out.append(f"{name} differs: {getattr(parent, name)} -> {getattr(child, name)}")
    return out


def plan(parent: Architecture, child: Architecture) -> Iterator[Link]:
    """Every child module with a parent counterpart: the stem, the common prefix of blocks and the transitions
    between them, and the head when the numbers of blocks agree."""
    yield from stem_links(parent, child)
    p_channels, c_channels = block_channels(parent), block_channels(child)
    common = min(len(p_channels), len(c_channels))
    for i in range(common):
        p_block, c_block = parent.genome.blocks[i], child.genome.blocks[i]
        widths = (c_channels[i][0], p_channels[i][0], child.bottleneck_width, parent.bottleneck_width)
        yield from block_links(f"features.{2 * i}", c_block, p_block, *widths)
        output = target_index(c_block, p_block, c_channels[i][0], p_channels[i][0], c_block.layers + 1)
        if i < common - 1:
            conv = first(c_channels[i + 1][0], p_channels[i + 1][0])
            yield Link(f"features.{2 * i + 1}.0", f"features.{2 * i + 1}.0", output)
            yield Link(f"features.{2 * i + 1}.2", f"features.{2 * i + 1}.2", conv, output)
        elif len(p_channels) == len(c_channels):
            yield Link("head.0", "head.0", output)
            classes = first(child.num_classes, parent.num_classes if parent.num_classes == child.num_classes else 0)
            yield Link("classifier", "classifier", classes, output)


def stem_links(parent: Architecture, child: Architecture) -> Iterator[Link]:
    """The stem conv and its BatchNorm, when both read images of the same number of channels."""
    if parent.in_channels != child.in_channels:
        return
    out = first(child.stem_channels, parent.stem_channels)
    yield Link("stem.0", "stem.0", out, first(child.in_channels, parent.in_channels))
    yield Link("stem.1", "stem.1", out)


def block_links(
    prefix: str, child: BlockGene, parent: BlockGene, c_in: int, p_in: int, c_w: int, p_w: int
) -> Iterator[Link]:
    """The layers both blocks have (1..min depth), each input segment mapped to the same node's segment."""
    c_mid, p_mid = c_w * child.growth_rate, p_w * parent.growth_rate
    for t in range(1, min(child.layers, parent.layers) + 1):
        layer = f"{prefix}.layers.{t - 1}"
        inputs = target_index(child, parent, c_in, p_in, t)
        mid = first(c_mid, p_mid)
        yield Link(f"{layer}.0", f"{layer}.0", inputs)
        yield Link(f"{layer}.2", f"{layer}.2", mid, inputs)
        yield Link(f"{layer}.3", f"{layer}.3", mid)
        yield Link(f"{layer}.5", f"{layer}.5", first(child.growth_rate, parent.growth_rate), mid)


def target_index(child: BlockGene, parent: BlockGene, c_in: int, p_in: int, target: int) -> Index:
    """The input channels of child target `target` mapped to the parent's matching target: the same layer, or
    the block output when `target` is the child's output."""
    p_target = parent.layers + 1 if target == child.layers + 1 else target
    offsets, offset = {}, 0
    for node in shortcuts.inputs_of(parent.shortcuts, parent.layers, p_target):
        offsets[node] = offset
        offset += p_in if node == 0 else parent.growth_rate
    out: Index = []
    for node in shortcuts.inputs_of(child.shortcuts, child.layers, target):
        width, p_width = (c_in, p_in) if node == 0 else (child.growth_rate, parent.growth_rate)
        if node in offsets:
            out += [offsets[node] + ch if ch < p_width else None for ch in range(width)]
        else:
            out += [None] * width
    return out


def first(child_size: int, parent_size: int) -> Index:
    """The first channels of a space matched one to one: what a narrower or wider layer keeps of its parent."""
    return [i if i < parent_size else None for i in range(child_size)]
