"""The network of DESIGN.md section 2, checked against counts written independently from its formulas."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.genome import shortcuts as sc
from nas.genome.architecture import Architecture
from nas.genome.genome import BlockGene, Genome
from nas.model import architecture_cost, block_channels, build_model, count_params


def bn(c: int) -> int:
    return 2 * c


def densenet_bc_params(in_ch, stem, blocks, bottleneck, compression, classes):
    """Parameters of a DenseNet-BC, written from the DenseNet paper's layer recipe, not from the builder."""
    total = in_ch * stem * 9 + bn(stem)
    c = stem
    for i, (layers, k) in enumerate(blocks):
        for t in range(layers):
            c_in = c + t * k
            total += bn(c_in) + c_in * bottleneck * k + bn(bottleneck * k) + bottleneck * k * k * 9
        c = c + layers * k
        if i < len(blocks) - 1:
            out = math.floor(c * compression)
            total += bn(c) + c * out
            c = out
    return total + bn(c) + c * classes + classes


def arch_of(blocks, bits=None, in_ch=3, stem=16, bottleneck=4, compression=0.5, classes=10, size=32):
    genes = tuple(BlockGene(n, k, bits[i] if bits else sc.all_ones(n)) for i, (n, k) in enumerate(blocks))
    return Architecture(in_ch, classes, size, stem, bottleneck, compression, Genome(genes))


@pytest.mark.parametrize(
    "blocks,in_ch,stem,bottleneck,compression,classes",
    [
        ([(4, 12)], 3, 16, 4, 0.5, 10),
        ([(4, 12), (6, 16), (3, 8)], 3, 24, 4, 0.5, 100),
        ([(1, 4), (2, 5)], 1, 7, 2, 0.7, 3),
        ([(12, 32), (12, 32), (12, 32)], 3, 32, 4, 1.0, 10),
    ],
)
def test_all_ones_is_exactly_densenet_bc(blocks, in_ch, stem, bottleneck, compression, classes):
    arch = arch_of(blocks, in_ch=in_ch, stem=stem, bottleneck=bottleneck, compression=compression, classes=classes)
    expected = densenet_bc_params(in_ch, stem, blocks, bottleneck, compression, classes)
    assert count_params(build_model(arch)) == expected


@given(st.integers(1, 8), st.integers(1, 16), st.integers(1, 40))
def test_all_zeros_is_a_plain_chain(layers, k, stem):
    arch = arch_of([(layers, k)], bits=["0" * sc.bit_length(layers)], stem=stem)
    model = build_model(arch)
    chain = 3 * stem * 9 + bn(stem)
    for t in range(layers):
        c_in = stem if t == 0 else k
        chain += bn(c_in) + c_in * 4 * k + bn(4 * k) + 4 * k * k * 9
    chain += bn(k) + k * 10 + 10
    assert count_params(model) == chain
    assert block_channels(arch) == [(stem, k)]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 7), st.integers(1, 12), st.data())
def test_one_bit_changes_exactly_its_target_inputs(layers, k, data):
    bits = data.draw(st.text(alphabet="01", min_size=sc.bit_length(layers), max_size=sc.bit_length(layers)))
    i = data.draw(st.integers(0, len(bits) - 1))
    flipped = bits[:i] + ("1" if bits[i] == "0" else "0") + bits[i + 1 :]
    source, target = sc.pairs(layers)[i]
    stem = 10
    a = build_model(arch_of([(layers, k)], bits=[bits], stem=stem))
    b = build_model(arch_of([(layers, k)], bits=[flipped], stem=stem))
    delta = stem if source == 0 else k
    sign = 1 if flipped[i] == "1" else -1

    def widths(model):
        block = model.features[0]
        return [layer[0].num_features for layer in block.layers] + [block.out_channels]

    wa, wb = widths(a), widths(b)
    for t in range(1, layers + 2):
        assert wb[t - 1] - wa[t - 1] == (sign * delta if t == target else 0)


@pytest.mark.parametrize("size", [8, 16, 32])
@pytest.mark.parametrize("in_ch", [1, 3])
def test_forward_shapes_channels_last(size, in_ch):
    arch = arch_of([(2, 4), (3, 4)], bits=["101", "000111"], in_ch=in_ch, size=size, classes=7)
    model = build_model(arch).to(memory_format=torch.channels_last)
    x = torch.randn(2, in_ch, size, size).to(memory_format=torch.channels_last)
    out = model(x)
    assert out.shape == (2, 7)
    out.sum().backward()


def test_flops_grow_with_input_size():
    small = architecture_cost(arch_of([(2, 4)], size=8))
    big = architecture_cost(arch_of([(2, 4)], size=16))
    assert small[0] == big[0]
    assert 3.5 < big[1] / small[1] < 4.5
