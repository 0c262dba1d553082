"""Weight inheritance (nas.model.inherit) and genome relatedness (nas.genome.relatedness), over small random
architectures: a child that only adds computes its parent's function, an identical child gets the parent's state,
any child gets a state that loads and runs, and the record counts what the tensors show."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.genome import shortcuts as sc
from nas.genome.architecture import Architecture
from nas.genome.genome import BlockGene, Genome
from nas.genome.relatedness import distance
from nas.model import build_model, count_params
from nas.model.inherit import transplant

SIZE = 8
FAST = settings(max_examples=20, deadline=None)


@pytest.fixture(autouse=True)
def one_thread():
    """A loaded 2-core machine: torch's spinning threads only slow these tiny networks down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@st.composite
def blocks(draw, max_layers: int = 3) -> BlockGene:
    n = draw(st.integers(1, max_layers))
    bits = draw(st.text(alphabet="01", min_size=sc.bit_length(n), max_size=sc.bit_length(n)))
    return BlockGene(n, draw(st.integers(2, 4)), bits)


@st.composite
def architectures(draw, num_blocks: tuple[int, int] = (1, 2), fixed_parts: bool = True) -> Architecture:
    """A tiny network for 8x8 inputs; with `fixed_parts` the stem, bottleneck, compression, classes vary too."""
    genome = Genome(tuple(draw(blocks()) for _ in range(draw(st.integers(*num_blocks)))))
    if not fixed_parts:
        return Architecture(3, 3, SIZE, 4, 2, 0.5, genome)
    return Architecture(
        in_channels=draw(st.integers(1, 3)),
        num_classes=draw(st.integers(2, 3)),
        input_size=SIZE,
        stem_channels=draw(st.integers(2, 5)),
        bottleneck_width=draw(st.integers(1, 2)),
        compression=draw(st.sampled_from([0.5, 1.0])),
        genome=genome,
        stem_stride=draw(st.sampled_from([1, 2, 4])),
    )


@st.composite
def additive_children(draw, parent: Architecture) -> Architecture:
    """A child that only adds: every parent link kept, layers appended, shortcuts turned on, growth, stem,
    bottleneck and transitions widened."""
    out = []
    for block in parent.genome.blocks:
        layers = block.layers + draw(st.integers(0, 2))
        bits = []
        for source, target in sc.pairs(layers):
            p_target = block.layers + 1 if target == layers + 1 else target if target <= block.layers else None
            kept = p_target is not None and source in sc.inputs_of(block.shortcuts, block.layers, p_target)
            bits.append("1" if kept else draw(st.sampled_from("01")))
        out.append(BlockGene(layers, block.growth_rate + draw(st.integers(0, 2)), "".join(bits)))
    wider = {
        "stem_channels": parent.stem_channels + draw(st.integers(0, 2)),
        "bottleneck_width": parent.bottleneck_width + draw(st.integers(0, 1)),
        "compression": max(parent.compression, draw(st.sampled_from([0.5, 1.0]))),
    }
    return Architecture(**{**vars(parent), **wider, "genome": Genome(tuple(out)), "provenance": {}})


def randomised(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Every tensor drawn anew (no zeros, no ones), so that no copied or zeroed value can equal a fresh one."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if value.dim() == 0:
            out[key] = torch.tensor(seed % 1000 + 1, dtype=value.dtype)
        elif value.dim() > 1:
            out[key] = torch.randn(value.shape, generator=gen) * math.sqrt(2 / value[0].numel())
        elif key.endswith(("running_var", "weight")):
            out[key] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            out[key] = torch.randn(value.shape, generator=gen) * 0.2
    return out


def trained_parent(parent: Architecture, seed: int) -> dict[str, torch.Tensor]:
    return randomised(build_model(parent).state_dict(), seed)


def outputs(arch: Architecture, state: dict[str, torch.Tensor], x: torch.Tensor) -> dict[bool, torch.Tensor]:
    """The network's outputs on `x` in eval mode (False) and in train mode (True)."""
    model = build_model(arch)
    model.load_state_dict(state, strict=True)
    out = {}
    with torch.no_grad():
        for train in (False, True):
            out[train] = model.train(train)(x)
    return out


@FAST
@given(architectures(), st.data(), st.integers(0, 2**16))
def test_a_child_that_only_adds_computes_the_parents_function(parent, data, seed):
    child = data.draw(additive_children(parent))
    parent_state = trained_parent(parent, seed)
    init = randomised(build_model(child).state_dict(), seed + 1)
    state, record = transplant(parent, parent_state, child, init=init)
    assert record.preserves_function, record.reasons
    x = torch.randn(4, parent.in_channels, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    # in train mode too: BatchNorm normalises each channel by its own batch statistics
    child_out, parent_out = outputs(child, state, x), outputs(parent, parent_state, x)
    for train in (False, True):
        torch.testing.assert_close(child_out[train], parent_out[train], atol=1e-5, rtol=1e-5)


@FAST
@given(architectures(), st.integers(0, 2**16))
def test_an_identical_child_gets_the_parents_state(parent, seed):
    parent_state = trained_parent(parent, seed)
    child = Architecture(**{**vars(parent), "provenance": {"other": 1}})
    state, record = transplant(parent, parent_state, child, init=randomised(parent_state, seed + 1))
    assert state.keys() == parent_state.keys()
    for key, value in parent_state.items():
        assert torch.equal(state[key], value), key
    assert (record.tensors_whole, record.tensors_partial, record.tensors_fresh) == (len(state), 0, 0)
    assert (record.params_zeroed, record.params_fresh) == (0, 0)
    assert record.preserves_function and record.fraction_copied == 1.0


@FAST
@given(architectures(), architectures(), st.integers(0, 2**16))
def test_any_child_gets_a_state_that_loads_and_runs(parent, child, seed):
    state, _ = transplant(parent, trained_parent(parent, seed), child)
    model = build_model(child)
    model.load_state_dict(state, strict=True)
    model.eval()
    out = model(torch.randn(2, child.in_channels, SIZE, SIZE))
    assert out.shape == (2, child.num_classes) and torch.isfinite(out).all()


@FAST
@given(architectures(), st.data(), st.integers(0, 2**16))
def test_the_record_counts_what_the_tensors_show(parent, data, seed):
    child = data.draw(st.one_of(architectures(), additive_children(parent)))
    parent_state = trained_parent(parent, seed)
    init = randomised(build_model(child).state_dict(), seed + 1)
    state, record = transplant(parent, parent_state, child, init=init)
    params = {name for name, _ in build_model(child).named_parameters()}
    fresh_tensors = sum(torch.equal(state[k], init[k]) for k in state)
    fresh_params = sum(int((state[k] == init[k]).sum()) for k in params)
    zero_params = sum(int((state[k] == 0).sum()) for k in params)
    same = sum(k in parent_state and torch.equal(state[k], parent_state[k]) for k in state)
    assert record.tensors_whole + record.tensors_partial + record.tensors_fresh == len(state)
    assert record.tensors_fresh == fresh_tensors
    assert record.tensors_whole >= same
    assert record.params_copied + record.params_zeroed + record.params_fresh == count_params(build_model(child))
    assert record.params_fresh == fresh_params and record.params_zeroed == zero_params
    assert record.preserves_function == (not record.reasons)
    if record.preserves_function:  # every parent weight has exactly one place in the child
        assert record.params_copied == count_params(build_model(parent))
        x = torch.randn(2, parent.in_channels, SIZE, SIZE)
        torch.testing.assert_close(outputs(child, state, x)[False], outputs(parent, parent_state, x)[False])


@FAST
@given(architectures(fixed_parts=False), st.data())
def test_dropping_a_parent_link_is_not_function_preserving(parent, data):
    block = data.draw(st.integers(0, len(parent.genome.blocks) - 1))
    bits = parent.genome.blocks[block].shortcuts
    ones = [i for i, b in enumerate(bits) if b == "1"]
    if not ones:
        return
    i = data.draw(st.sampled_from(ones))
    genes = list(parent.genome.blocks)
    genes[block] = BlockGene(genes[block].layers, genes[block].growth_rate, bits[:i] + "0" + bits[i + 1 :])
    child = Architecture(**{**vars(parent), "genome": Genome(tuple(genes))})
    _, record = transplant(parent, trained_parent(parent, 0), child)
    assert not record.preserves_function and record.reasons


def test_a_narrower_growth_keeps_the_first_channels():
    parent = Architecture(3, 3, SIZE, 4, 2, 0.5, Genome((BlockGene(1, 4, "1"),)))
    child = Architecture(3, 3, SIZE, 4, 2, 0.5, Genome((BlockGene(1, 2, "1"),)))
    parent_state = trained_parent(parent, 0)
    state, record = transplant(parent, parent_state, child)
    conv = "features.0.layers.0.5.weight"  # (k, 2k, 3, 3): the first k outputs of the first 2k mid channels
    assert torch.equal(state[conv], parent_state[conv][:2, :4])
    # the classifier reads node 0 (4 channels) then node 1: the first 2 of node 1's 4 columns are kept
    assert torch.equal(state["classifier.weight"], parent_state["classifier.weight"][:, :6])
    assert not record.preserves_function


def test_a_child_with_another_block_inherits_the_common_prefix_and_not_the_head():
    parent = Architecture(3, 3, SIZE, 4, 2, 0.5, Genome((BlockGene(2, 3, "101"),)))
    child = Architecture(3, 3, SIZE, 4, 2, 0.5, Genome((BlockGene(2, 3, "101"), BlockGene(1, 2, "1"))))
    parent_state = trained_parent(parent, 0)
    init = randomised(build_model(child).state_dict(), 1)
    state, record = transplant(parent, parent_state, child, init=init)
    for key in parent_state:
        kept = key.startswith(("stem.", "features.0."))
        assert torch.equal(state[key], parent_state[key] if kept else init[key]), key
    assert all(torch.equal(state[k], init[k]) for k in state if k.startswith(("features.1.", "features.2.")))
    assert not record.preserves_function and "blocks" in record.reasons[0]


# --- relatedness --------------------------------------------------------------------------------------------------

genomes = architectures(num_blocks=(2, 2), fixed_parts=False).map(lambda a: a.genome)


@given(genomes, genomes, genomes)
def test_distance_is_a_metric(a, b, c):
    assert distance(a, a) == 0
    assert distance(a, b) == distance(b, a) >= 0
    assert (distance(a, b) == 0) == (a.blocks == b.blocks)
    assert distance(a, c) <= distance(a, b) + distance(b, c) + 1e-9


@given(blocks(), st.data())
def test_distance_of_equal_shapes_is_the_hamming_distance(block, data):
    n = sc.bit_length(block.layers)
    other = data.draw(st.text(alphabet="01", min_size=n, max_size=n))
    a, b = Genome((block,)), Genome((BlockGene(block.layers, block.growth_rate, other),))
    assert distance(a, b) == sum(x != y for x, y in zip(block.shortcuts, other, strict=True))


@given(genomes, blocks())
def test_different_numbers_of_blocks_are_infinitely_far(genome, extra):
    assert distance(genome, Genome((*genome.blocks, extra))) == math.inf


def test_growth_counts_less_than_a_link():
    a = Genome((BlockGene(2, 4, "000"),))
    assert distance(a, Genome((BlockGene(2, 12, "000"),))) < distance(a, Genome((BlockGene(2, 4, "001"),)))
