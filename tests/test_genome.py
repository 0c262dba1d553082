"""The two encodings and the genome: property tests of the pure functions."""

import random

import yaml
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st

from nas.genome import Genome, load_space
from nas.genome import shortcuts as sc
from nas.genome.architecture import Architecture
from nas.genome.genome import BlockGene

layers_st = st.integers(min_value=1, max_value=12)


@st.composite
def bitstrings(draw, layers=None):
    n = draw(layers_st) if layers is None else layers
    bits = draw(st.text(alphabet="01", min_size=sc.bit_length(n), max_size=sc.bit_length(n)))
    return n, bits


@st.composite
def genomes(draw):
    blocks = []
    for _ in range(draw(st.integers(1, 4))):
        n, bits = draw(bitstrings())
        blocks.append(BlockGene(n, draw(st.integers(1, 64)), bits))
    lr = draw(st.one_of(st.none(), st.floats(1e-5, 1.0)))
    return Genome(tuple(blocks), lr)


@given(layers_st)
def test_bit_layout_is_source_major_and_covers_every_pair_once(layers):
    pairs = sc.pairs(layers)
    assert len(pairs) == sc.bit_length(layers) == layers * (layers + 1) // 2
    assert pairs == sorted(pairs)
    for i, (source, target) in enumerate(pairs):
        assert sc.bit_index(layers, source, target) == i
        assert source <= target - 2 and target <= layers + 1


@given(bitstrings())
def test_inputs_always_hold_the_chain_and_are_ascending(nb):
    layers, bits = nb
    for target in range(1, layers + 2):
        nodes = sc.inputs_of(bits, layers, target)
        assert nodes[-1] == target - 1
        assert nodes == sorted(set(nodes))


@given(bitstrings(), st.integers(1, 12), st.integers(0, 2**32))
def test_resize_keeps_bits_of_surviving_pairs(nb, new_layers, seed):
    old_layers, bits = nb
    out = sc.resize(bits, old_layers, new_layers, random.Random(seed))
    assert len(out) == sc.bit_length(new_layers)
    assert set(out) <= {"0", "1"}
    for source, target in sc.pairs(new_layers):
        if source >= old_layers:
            continue
        if target == new_layers + 1:
            old_target = old_layers + 1
        elif target <= old_layers:
            old_target = target
        else:
            continue
        assert out[sc.bit_index(new_layers, source, target)] == bits[sc.bit_index(old_layers, source, old_target)]


@given(bitstrings(), st.integers(0, 2**32))
def test_resize_to_the_same_depth_is_identity(nb, seed):
    layers, bits = nb
    assert sc.resize(bits, layers, layers, random.Random(seed)) == bits


@given(genomes())
def test_genome_dict_round_trip_and_key(genome):
    again = Genome.from_dict(genome.to_dict())
    assert again == genome
    assert again.key == genome.key
    assert len(genome.key) == 64


@given(genomes(), st.randoms())
def test_canonical_key_is_stable_under_yaml_key_order(genome, rnd):
    data = genome.to_dict()
    shuffled_blocks = []
    for block in data["blocks"]:
        items = list(block.items())
        rnd.shuffle(items)
        shuffled_blocks.append(dict(items))
    items = list({**data, "blocks": shuffled_blocks}.items())
    rnd.shuffle(items)
    text = yaml.safe_dump(dict(items), sort_keys=False)
    assert Genome.from_dict(yaml.safe_load(text)).key == genome.key


@given(st.data())
def test_space_decode_encode_round_trip(data):
    space = load_space(ROOT / "encodings/densenet_cifar.yaml")
    blocks = tuple(
        (data.draw(st.integers(*lay)), data.draw(st.integers(*gro)))
        for lay, gro in zip(space.layers, space.growth_rate, strict=True)
    )
    assert space.decode(space.encode(blocks))[0] == blocks


@given(st.lists(st.floats(-1e6, 1e6), min_size=4, max_size=4))
def test_space_decode_rounds_and_clamps_any_position(position):
    space = load_space(ROOT / "encodings/densenet_small.yaml")
    blocks, lr = space.decode(position)
    assert lr is None
    for (layers, growth), lay, gro in zip(blocks, space.layers, space.growth_rate, strict=True):
        assert lay[0] <= layers <= lay[1] and gro[0] <= growth <= gro[1]


@given(st.data())
def test_bit_length_is_the_sum_over_blocks(data):
    space = load_space(ROOT / "encodings/densenet_cifar.yaml")
    position = [data.draw(st.floats(d.low, d.high)) for d in space.dimensions]
    blocks, _ = space.decode(position)
    bits = tuple(sc.all_ones(n) for n, _ in blocks)
    genome = space.genome(position, bits)
    assert sum(len(b.shortcuts) for b in genome.blocks) == sum(n * (n + 1) // 2 for n, _ in blocks)
    low, high = space.bit_length_range()
    assert low <= sum(len(b) for b in bits) <= high


def test_learning_rate_dimension_is_log_scale():
    space = load_space(ROOT / "encodings/densenet_small.yaml")
    space = type(space)(**{**space.__dict__, "learning_rate": (0.001, 0.1)})
    position = space.encode(((2, 8), (3, 8)), 0.01)
    assert abs(position[-1] - (-2.0)) < 1e-12
    assert abs(space.decode(position)[1] - 0.01) < 1e-12


def test_architecture_file_round_trip(tmp_path):
    from nas.genome import load_architecture, save_architecture

    genome = Genome((BlockGene(2, 4, "101"), BlockGene(1, 8, "1")))
    arch = Architecture(3, 10, 32, 16, 4, 0.5, genome, provenance={"fitness": 0.5})
    save_architecture(arch, tmp_path / "a.yaml")
    again = load_architecture(tmp_path / "a.yaml")
    assert again == arch and again.provenance == {"fitness": 0.5}
