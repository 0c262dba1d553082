"""The encodings' files and values, pinned by example: every refused input with its exact one-line error, the
accepted edges of every range, and decoded values worked out by hand (the property tests are in test_genome.py).
"""

import copy
import hashlib
import math
import random
from collections import Counter

import pytest

from nas.errors import UserError
from nas.genome import shortcuts as sc
from nas.genome.architecture import Architecture, load_architecture, save_architecture
from nas.genome.channels import block_channels, layer_input_channels
from nas.genome.genome import BlockGene, Genome, positive_int
from nas.genome.space import Dimension, SearchSpace, load_space, parse_space

SPACE = {
    "format": "nas-search-space/1",
    "name": "s",
    "stem_channels": 16,
    "bottleneck_width": 4,
    "compression": 0.5,
    "blocks": [{"layers": [1, 6], "growth_rate": [4, 16]}, {"layers": [2, 3], "growth_rate": [8, 8]}],
}

ARCH = {
    "format": "nas-architecture/1",
    "in_channels": 3,
    "num_classes": 10,
    "input_size": 8,
    "stem_channels": 4,
    "bottleneck_width": 2,
    "compression": 0.5,
    "blocks": [{"layers": 2, "growth_rate": 3, "shortcuts": "101"}, {"layers": 1, "growth_rate": 2, "shortcuts": "1"}],
}


def edited(base: dict, path: str, value=...) -> dict:
    """A deep copy of `base` with `path` (dotted, with list indices) set to `value`, or deleted without one."""
    out = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key = int(last) if last.isdigit() else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return out


def message(fn, *args) -> str:
    with pytest.raises(UserError) as info:
        fn(*args)
    return str(info.value)


SPACE_ERRORS = [
    (("format", "x"), "format: must be 'nas-search-space/1', got 'x'"),
    (("format",), "format: must be 'nas-search-space/1', got None"),
    (("zeta", 1), "zeta: unknown key"),
    (("stem_channels",), "stem_channels: is missing"),
    (("bottleneck_width",), "bottleneck_width: is missing"),
    (("compression",), "compression: is missing"),
    (("blocks",), "blocks: is missing"),
    (("blocks", "x"), "blocks: must be a list of 1 to 8 blocks"),
    (("blocks", []), "blocks: must be a list of 1 to 8 blocks"),
    (("blocks", [{"layers": [1, 2], "growth_rate": [1, 2]}] * 9), "blocks: must be a list of 1 to 8 blocks"),
    (("blocks.1", [1]), "blocks[1]: must be a mapping with exactly layers and growth_rate"),
    (("blocks.1.extra", 1), "blocks[1]: must be a mapping with exactly layers and growth_rate"),
    (("blocks.0.layers", [0, 3]), "blocks[0].layers[0]: must be in [1, 64], got 0"),
    (("blocks.0.layers", [1, 65]), "blocks[0].layers[1]: must be in [1, 64], got 65"),
    (("blocks.1.growth_rate", [1, 513]), "blocks[1].growth_rate[1]: must be in [1, 512], got 513"),
    (("blocks.0.layers", [5, 3]), "blocks[0].layers: low 5 is above high 3"),
    (("blocks.0.layers", [3]), "blocks[0].layers: must be a range [low, high]"),
    (("blocks.0.layers", [1, 2, 3]), "blocks[0].layers: must be a range [low, high]"),
    (("blocks.0.layers", "1-3"), "blocks[0].layers: must be a range [low, high]"),
    (("blocks.0.layers", [1.5, 2]), "blocks[0].layers[0]: must be an integer, not float"),
    (("blocks.0.layers", [True, 2]), "blocks[0].layers[0]: must be an integer, not bool"),
    (("learning_rate", [0.1, 0.01]), "learning_rate: must be a range [low, high] of positive numbers"),
    (("learning_rate", [0, 0.1]), "learning_rate: must be a range [low, high] of positive numbers"),
    (("learning_rate", [0.1]), "learning_rate: must be a range [low, high] of positive numbers"),
    (("learning_rate", 0.1), "learning_rate: must be a range [low, high] of positive numbers"),
    (("learning_rate", [True, 1]), "learning_rate: must be a range [low, high] of positive numbers"),
    (("learning_rate", [0.1, math.inf]), "learning_rate: must be a range [low, high] of positive numbers"),
    (("name", 3), "name: must be a string"),
    (("stem_channels", 0), "stem_channels: must be in [1, 4096], got 0"),
    (("stem_channels", 4097), "stem_channels: must be in [1, 4096], got 4097"),
    (("bottleneck_width", 65), "bottleneck_width: must be in [1, 64], got 65"),
    (("compression", 0), "compression: must be in (0, 1], got 0"),
    (("compression", 1.5), "compression: must be in (0, 1], got 1.5"),
    (("compression", "half"), "compression: must be a number in (0, 1]"),
    (("compression", True), "compression: must be a number in (0, 1]"),
    (("compression", math.nan), "compression: must be a number in (0, 1]"),
]


@pytest.mark.parametrize(("edit", "expected"), SPACE_ERRORS, ids=[e for _, e in SPACE_ERRORS])
def test_a_bad_search_space_gets_its_one_line_error(edit, expected):
    assert message(parse_space, edited(SPACE, *edit), "file") == expected


def test_a_search_space_parses_to_its_values_and_back():
    space = parse_space(copy.deepcopy(SPACE), "file")
    assert space == SearchSpace("s", 16, 4, 0.5, ((1, 6), (2, 3)), ((4, 16), (8, 8)), None)
    assert space.to_dict() == SPACE and parse_space(space.to_dict(), "other") == space
    edges = edited(edited(edited(SPACE, "blocks.0.layers", [64, 64]), "stem_channels", 4096), "compression", 1)
    edges = edited(edited(edges, "bottleneck_width", 64), "blocks.1.growth_rate", [512, 512])
    assert parse_space(edges, "f").layers[0] == (64, 64) and parse_space(edges, "f").compression == 1.0
    assert parse_space(edited(SPACE, "blocks", SPACE["blocks"] * 4), "f").num_blocks == 8
    with_lr = parse_space(edited(edited(SPACE, "learning_rate", [1, 2]), "name"), "stem")
    assert with_lr.learning_rate == (1.0, 2.0) and type(with_lr.learning_rate[0]) is float
    assert with_lr.name == "stem" and with_lr.to_dict()["learning_rate"] == [1.0, 2.0]
    assert parse_space(edited(SPACE, "learning_rate", [0.1, 0.1]), "f").learning_rate == (0.1, 0.1)


def test_search_space_files_name_the_file_in_their_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: nas-search-space/1\nstem_channels: 4\nbottleneck_width: 4\ncompression: 0.5\n")
    assert message(load_space, bad) == f"{bad}: blocks: is missing"
    good = tmp_path / "tiny_space.yaml"
    good.write_text(bad.read_text() + "blocks: [{layers: [1, 2], growth_rate: [3, 4]}]\n")
    assert load_space(good).name == "tiny_space" and load_space(good).layers == ((1, 2),)


def test_dimensions_of_a_space_with_a_learning_rate():
    space = parse_space(edited(SPACE, "learning_rate", [0.001, 0.1]), "f")
    assert space.dimensions == [
        Dimension("blocks[0].layers", 1, 6),
        Dimension("blocks[0].growth_rate", 4, 16),
        Dimension("blocks[1].layers", 2, 3),
        Dimension("blocks[1].growth_rate", 8, 8),
        Dimension("learning_rate", -3.0, -1.0, integer=False),
    ]
    assert space.dimensions[1].width == 12 and Dimension("d", 1, 3).clamp(5) == 3 and Dimension("d", 1, 3).clamp(0) == 1
    # An integer range [1, 3] owns the cells [0.5, 3.5]; a real one is its range.
    assert Dimension("d", 1, 3).span == (0.5, 3.5) and Dimension("d", 1, 3).span_width == 3.0
    assert Dimension("r", -3.0, -1.0, integer=False).span == (-3.0, -1.0)
    assert [Dimension("d", 1, 3).value(x) for x in (0.6, 1.4, 1.6, 3.4, 9.0)] == [1.0, 1.0, 2.0, 3.0, 3.0]
    assert Dimension("d", 1, 3).clamp_span(4.0) == 3.5 and Dimension("d", 1, 3).clamp_span(0.0) == 0.5
    assert Dimension("r", -3.0, -1.0, integer=False).value(-1.7) == -1.7
    assert space.bit_length_range() == (1 + 3, 21 + 6)


def test_decode_rounds_and_clamps_by_hand():
    space = parse_space(copy.deepcopy(SPACE), "f")
    assert space.decode([2.5, 7.4, 9.0, 3.6]) == (((2, 7), (3, 8)), None)  # round half to even, clamp to [2, 3]
    assert space.decode([3.5, 16.6, -4.0, 100.0]) == (((4, 16), (2, 8)), None)
    assert space.clamp([0.0, 20.0, 2.5, 8.0]) == [1.0, 16.0, 2.5, 8.0]
    with pytest.raises(ValueError, match="position has 3 coordinates, the space has 4"):
        space.decode([1.0, 2.0, 3.0])
    lr_space = parse_space(edited(SPACE, "learning_rate", [0.001, 0.1]), "f")
    assert lr_space.decode([1, 4, 2, 8, -2.0])[1] == pytest.approx(0.01)
    assert lr_space.decode([1, 4, 2, 8, 5.0])[1] == pytest.approx(0.1), "the learning rate is clamped too"
    assert lr_space.encode(((1, 4), (2, 8)), 0.01) == pytest.approx([1.0, 4.0, 2.0, 8.0, -2.0])
    with pytest.raises(ValueError, match="this space searches the learning rate; give one"):
        lr_space.encode(((1, 4), (2, 8)))


def test_random_positions_and_genomes_of_a_space():
    space = parse_space(copy.deepcopy(SPACE), "f")
    a, b = space.random_position(random.Random(4)), space.random_position(random.Random(4))
    assert a == b and a != space.random_position(random.Random(5))
    points = [space.random_position(random.Random(s)) for s in range(200)]
    assert all(d.span[0] <= p[i] <= d.span[1] for p in points for i, d in enumerate(space.dimensions))
    layers = Counter(space.decode(p)[0][0][0] for p in points)
    assert set(layers) == set(range(1, 7)) and min(layers.values()) > 15, "each value, the ends too, is drawn"
    genome = space.genome([2.2, 9.0, 3.0, 8.0], ("101", "110010"))
    assert genome == Genome((BlockGene(2, 9, "101"), BlockGene(3, 8, "110010")), None)
    with pytest.raises(UserError, match="has 2 bits, a block of 2 layers needs 3"):
        space.genome([2.2, 9.0, 3.0, 8.0], ("10", "110010"))


GENOME = {"blocks": [{"layers": 2, "growth_rate": 3, "shortcuts": "101"}], "learning_rate": 0.01}

GENOME_ERRORS = [
    (("zz", 1), "genome: unknown key 'zz'"),
    (("blocks",), "genome.blocks: must be a non-empty list of blocks"),
    (("blocks", []), "genome.blocks: must be a non-empty list of blocks"),
    (("blocks", "101"), "genome.blocks: must be a non-empty list of blocks"),
    (("blocks.0", 3), "genome.blocks[0]: must be a mapping with layers, growth_rate, shortcuts"),
    (("blocks.0.x", 1), "genome.blocks[0]: unknown key 'x'"),
    (("blocks.0.layers",), "genome.blocks[0].layers: is missing"),
    (("blocks.0.growth_rate",), "genome.blocks[0].growth_rate: is missing"),
    (("blocks.0.shortcuts",), "genome.blocks[0].shortcuts: is missing"),
    (("blocks.0.layers", 0), "genome.blocks[0].layers: must be in [1, 200], got 0"),
    (("blocks.0.layers", 201), "genome.blocks[0].layers: must be in [1, 200], got 201"),
    (("blocks.0.growth_rate", 4097), "genome.blocks[0].growth_rate: must be in [1, 4096], got 4097"),
    (("blocks.0.layers", "2"), "genome.blocks[0].layers: must be an integer, not str"),
    (("blocks.0.shortcuts", "10"), "genome.blocks[0].shortcuts: has 2 bits, a block of 2 layers needs 3"),
    (("blocks.0.shortcuts", "1a2"), "genome.blocks[0].shortcuts: may hold only 0 and 1, found '2a'"),
    (("blocks.0.shortcuts", 101), "genome.blocks[0].shortcuts: must be a string of 0 and 1, not int"),
    (("learning_rate", 0), "genome.learning_rate: must be a positive number"),
    (("learning_rate", -1.0), "genome.learning_rate: must be a positive number"),
    (("learning_rate", True), "genome.learning_rate: must be a positive number"),
    (("learning_rate", "0.1"), "genome.learning_rate: must be a positive number"),
    (("learning_rate", math.inf), "genome.learning_rate: must be a positive number"),
]


@pytest.mark.parametrize(("edit", "expected"), GENOME_ERRORS, ids=[e for _, e in GENOME_ERRORS])
def test_a_bad_genome_gets_its_one_line_error(edit, expected):
    assert message(Genome.from_dict, edited(GENOME, *edit)) == expected


def test_genome_values_at_the_edges_and_its_canonical_form():
    assert message(Genome.from_dict, [1]) == "genome: must be a mapping"
    assert message(Genome.from_dict, {"blocks": []}, "") == "blocks: must be a non-empty list of blocks"
    assert message(Genome.from_dict, {"blocks": 1}, "g") == "g.blocks: must be a non-empty list of blocks"
    big = edited(edited(GENOME, "blocks.0.layers", 200), "blocks.0.shortcuts", "1" * 20100)
    assert Genome.from_dict(edited(big, "blocks.0.growth_rate", 4096)).blocks[0].growth_rate == 4096
    one = Genome.from_dict(edited(GENOME, "learning_rate", 1))
    assert one.learning_rate == 1.0 and type(one.learning_rate) is float
    genome = Genome.from_dict(copy.deepcopy(GENOME))
    text = '{"blocks":[{"growth_rate":3,"layers":2,"shortcuts":"101"}],"learning_rate":0.01}'
    assert genome.canonical_json() == text
    assert genome.key == hashlib.sha256(text.encode()).hexdigest()
    assert Genome.from_dict(edited(GENOME, "learning_rate")).to_dict() == {"blocks": GENOME["blocks"]}
    assert genome.architecture_level == ((2, 3),) and genome.shortcut_level == ("101",)
    assert (
        positive_int(10_000, "k") == 10_000
        and message(positive_int, 10_001, "k") == "k: must be in [1, 10000], got 10001"
    )
    assert message(positive_int, False, "k") == "k: must be an integer, not bool"


ARCH_ERRORS = [
    (("format", "nas-architecture/2"), "format: must be 'nas-architecture/1', got 'nas-architecture/2'"),
    (("zz", 1), "zz: unknown key"),
    (("in_channels",), "in_channels: is missing"),
    (("num_classes",), "num_classes: is missing"),
    (("input_size",), "input_size: is missing"),
    (("stem_channels",), "stem_channels: is missing"),
    (("bottleneck_width",), "bottleneck_width: is missing"),
    (("compression",), "compression: is missing"),
    (("blocks",), "blocks: is missing"),
    (("provenance", [1]), "provenance: must be a mapping"),
    (("in_channels", 65), "in_channels: must be in [1, 64], got 65"),
    (("num_classes", 100_001), "num_classes: must be in [1, 100000], got 100001"),
    (("input_size", 4097), "input_size: must be in [1, 4096], got 4097"),
    (("stem_channels", 4097), "stem_channels: must be in [1, 4096], got 4097"),
    (("bottleneck_width", 65), "bottleneck_width: must be in [1, 64], got 65"),
    (("compression", 2), "compression: must be in (0, 1], got 2"),
    (("input_size", 1), "input_size: 2 blocks need an input of at least 2 px, got 1"),
    (("blocks", []), "blocks: must be a non-empty list of blocks"),
    (("blocks.0.shortcuts", "11"), "blocks[0].shortcuts: has 2 bits, a block of 2 layers needs 3"),
]


@pytest.mark.parametrize(("edit", "expected"), ARCH_ERRORS, ids=[e for _, e in ARCH_ERRORS])
def test_a_bad_architecture_gets_its_one_line_error(edit, expected):
    assert message(Architecture.from_dict, edited(ARCH, *edit)) == expected


def test_architecture_values_at_the_edges_and_its_file(tmp_path):
    arch = Architecture.from_dict(copy.deepcopy(ARCH))
    genome = Genome((BlockGene(2, 3, "101"), BlockGene(1, 2, "1")))
    assert arch == Architecture(3, 10, 8, 4, 2, 0.5, genome) and arch.provenance == {}
    assert arch.to_dict() == ARCH and "provenance" not in arch.to_dict()
    edges = dict(ARCH, in_channels=64, num_classes=100_000, input_size=4096, stem_channels=4096, bottleneck_width=64)
    assert Architecture.from_dict(edges).to_dict() == edges
    three = dict(ARCH, input_size=4, blocks=ARCH["blocks"] + [ARCH["blocks"][1]])
    assert Architecture.from_dict(three).input_size == 4
    assert message(Architecture.from_dict, dict(three, input_size=3)) == (
        "input_size: 3 blocks need an input of at least 4 px, got 3"
    )
    assert Architecture.from_dict(dict(ARCH, provenance=None)).provenance == {}
    kept = Architecture.from_dict(dict(ARCH, provenance={"run": "r"}))
    assert kept.to_dict()["provenance"] == {"run": "r"} and kept == arch, "provenance is not part of equality"
    thin = dict(ARCH, stem_channels=1, blocks=[{"layers": 1, "growth_rate": 1, "shortcuts": "0"}] * 2)
    assert (
        message(Architecture.from_dict, thin) == "compression: leaves 0 channels after block 0 (floor(c * compression))"
    )
    path = tmp_path / "a.yaml"
    save_architecture(kept, path)
    assert load_architecture(path).to_dict() == kept.to_dict()
    path.write_text("format: nas-architecture/1\n")
    assert message(load_architecture, path) == f"{path}: in_channels: is missing"
    space = parse_space(copy.deepcopy(SPACE), "f")
    built = Architecture.from_space(space, genome, in_channels=1, num_classes=7, input_size=16)
    assert built == Architecture(1, 7, 16, 16, 4, 0.5, genome)


def test_channels_worked_out_by_hand():
    # L=3, k=2, bits 101001, 5 input channels: target 1 takes node 0 (5); target 2 nodes 0, 1 (7); target 3 node 2
    # (2); the output nodes 0, 2, 3 (9).
    assert layer_input_channels(BlockGene(3, 2, "101001"), 5) == [5, 7, 2, 9]
    # stem 4; block 0 (all ones, 2 layers of 3) outputs 4 + 3 + 3 = 10; floor(10 * 0.75) = 7 into block 1,
    # whose output is 7 + 2 = 9; the last block has no transition.
    genome = Genome((BlockGene(2, 3, "111"), BlockGene(1, 2, "1")))
    arch = Architecture(3, 10, 8, 4, 2, 0.75, genome)
    assert block_channels(arch) == [(4, 10), (7, 9)]
    assert block_channels(Architecture(3, 10, 8, 4, 2, 0.75, Genome(genome.blocks[:1]))) == [(4, 10)]


def test_shortcut_bits_worked_out_by_hand():
    assert [sc.bit_length(n) for n in (1, 2, 3, 4)] == [1, 3, 6, 10]
    assert sc.pairs(3) == [(0, 2), (0, 3), (0, 4), (1, 3), (1, 4), (2, 4)]
    assert sc.bit_index(3, 2, 4) == 5 and sc.bit_index(3, 0, 2) == 0 and sc.bit_index(3, 1, 3) == 3
    for source, target in ((-1, 2), (1, 2), (0, 5), (3, 5)):
        with pytest.raises(ValueError, match=f"no shortcut bit from node {source} to target {target} in a block of 3"):
            sc.bit_index(3, source, target)
    assert [sc.inputs_of("101001", 3, t) for t in (1, 2, 3, 4)] == [[0], [0, 1], [2], [0, 2, 3]]
    assert sc.all_ones(3) == "111111" and sc.validate("101", 2) == "101"
    assert sc.random_bits(4, random.Random(0), p_one=0.0) == "0" * 10
    assert sc.random_bits(4, random.Random(0), p_one=1.0) == "1" * 10
    ones = sc.random_bits(40, random.Random(1)).count("1")
    assert 0.4 * 820 < ones < 0.6 * 820
    assert message(sc.validate, "10", 2, "k") == "k: has 2 bits, a block of 2 layers needs 3"
    assert message(sc.validate, "10", 2) == "has 2 bits, a block of 2 layers needs 3"


def test_resize_by_hand():
    # 2 layers "101": (0,2)=1 (0,3)=0 (1,3)=1. To 3 layers: (0,2) kept 1; (0,3) is not the output any more, new;
    # (0,4) is the output, old (0,3) = 0; (1,3) new; (1,4) output, old (1,3) = 1; (2,4) new.
    out = sc.resize("101", 2, 3, random.Random(0))
    assert out[0] == "1" and out[2] == "0" and out[4] == "1"
    fresh = [sc.resize("1", 1, 30, random.Random(s)) for s in range(4)]
    assert all(0.3 < f.count("1") / len(f) < 0.7 for f in fresh), "new pairs draw fresh fair bits"
    assert sc.resize("111111", 3, 1, random.Random(0)) == "1"


def test_edges_the_first_mutation_run_left_open(tmp_path):
    """Written against the survivors of the first mutation run of nas/genome (tests/MUTATION.md)."""
    lr_space = parse_space(edited(SPACE, "learning_rate", [0.001, 0.1]), "f")
    assert lr_space.genome([1, 4, 2, 8, -2.0], ("1", "101")).learning_rate == pytest.approx(0.01)
    with pytest.raises(ValueError):
        parse_space(copy.deepcopy(SPACE), "f").genome([2.0, 9.0, 3.0, 8.0], ("101",))  # one block's bits missing
    with pytest.raises(ValueError):
        parse_space(copy.deepcopy(SPACE), "f").clamp([1.0, 2.0])
    with pytest.raises(ValueError):
        sc.resize("10", 2, 3, random.Random(0))
    with pytest.raises(ValueError, match="^this space searches the learning rate; give one$"):
        lr_space.encode(((1, 4), (2, 8)))
    with_lr = Architecture.from_dict(dict(ARCH, learning_rate=0.05))
    assert with_lr.genome.learning_rate == 0.05 and with_lr.to_dict()["learning_rate"] == 0.05
    four = dict(ARCH, input_size=7, blocks=ARCH["blocks"][:1] * 4)
    assert message(Architecture.from_dict, four) == "input_size: 4 blocks need an input of at least 8 px, got 7"
    one = dict(ARCH, stem_channels=1, blocks=[{"layers": 1, "growth_rate": 1, "shortcuts": "1"}] * 2)
    assert block_channels(Architecture.from_dict(one)) == [(1, 2), (1, 2)], "one channel after a transition is enough"
    assert message(parse_space, {**SPACE, 1: "x", "zz": 2}, "f") == "1: unknown key"
    assert message(Architecture.from_dict, {**ARCH, 2: "x", "zz": 2}) == "2: unknown key"
    assert message(Genome.from_dict, {**GENOME, 3: "x", "zz": 2}) == "genome: unknown key 3"
    block = {**GENOME["blocks"][0], 4: "x", "zz": 2}
    assert message(Genome.from_dict, {"blocks": [block]}) == "genome.blocks[0]: unknown key 4"
    biggest = Genome.from_dict(edited(GENOME, "learning_rate", 1.7976931348623157e308))
    assert biggest.learning_rate == 1.7976931348623157e308
    assert parse_space(edited(SPACE, "learning_rate", [0.1, 1.7976931348623157e308]), "f").learning_rate[1] > 1e308
    missing = tmp_path / "none.yaml"
    assert message(load_space, missing) == f"search-space file not found: {missing}"
    assert message(load_architecture, missing) == f"architecture file not found: {missing}"
