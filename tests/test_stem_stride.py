"""`stem_stride`: the stem that shrinks large images before the first block (`nas.genome.architecture`).

At 1 (the default) an architecture's file, network and costs are those of DESIGN.md section 2, byte for byte;
at 2 and 4 the built network's feature map after the stem is ceil(n / stride) a side, and the analytic cost
still equals the built network's.
"""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.errors import UserError
from nas.genome import load_space
from nas.genome import shortcuts as sc
from nas.genome.architecture import Architecture, check_input_size, load_architecture, stem_output_size
from nas.genome.channels import block_channels
from nas.genome.genome import BlockGene, Genome
from nas.genome.spaces import resolve_space
from nas.model.analytic_cost import activation_bytes, analytic_cost
from nas.model.cost import architecture_cost
from nas.model.network import build_model
from nas.yamlfile import dump_yaml


def arch_of(stride: int, size: int = 16, blocks: int = 2) -> Architecture:
    genome = Genome(tuple(BlockGene(2, 4, "111") for _ in range(blocks)))
    return Architecture(3, 5, size, 8, 2, 0.5, genome, stem_stride=stride)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([1, 2, 4]))
def test_analytic_cost_equals_the_built_network_at_every_stride(seed, stride):
    rng = random.Random(seed)
    depths = [rng.randint(1, 4) for _ in range(rng.randint(1, 3))]
    genome = Genome(tuple(BlockGene(n, rng.randint(1, 9), sc.random_bits(n, rng)) for n in depths))
    size = rng.choice([17, 29, 32, 33, 37])
    arch = Architecture(rng.randint(1, 3), rng.randint(2, 12), size, rng.randint(2, 16), rng.randint(1, 4),
                        rng.choice([0.5, 1.0]), genome, stem_stride=stride)  # fmt: skip
    if any(c_in < 1 for c_in, _ in block_channels(arch)):
        return
    assert analytic_cost(arch) == architecture_cost(arch)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 80), st.sampled_from([1, 2, 4]))
def test_the_stem_output_is_ceil_of_size_over_stride(size, stride):
    arch = arch_of(stride, size=size, blocks=1)
    stem = build_model(arch).stem.eval()  # eval: BatchNorm takes a 1x1 map of one image
    assert stem(torch.zeros(1, 3, size, size)).shape[-1] == stem_output_size(size, stride) == -(-size // stride)


@pytest.mark.parametrize("stride", [2, 4])
def test_a_stride_shrinks_flops_and_activations_not_parameters(stride):
    plain, strided = arch_of(1, size=64), arch_of(stride, size=64)
    assert analytic_cost(strided)[0] == analytic_cost(plain)[0]
    assert analytic_cost(strided)[1] < analytic_cost(plain)[1] / (stride * stride) * 2
    assert activation_bytes(strided, 8) < activation_bytes(plain, 8)
    assert list(build_model(strided).state_dict()) == list(build_model(plain).state_dict())


def test_the_default_stride_leaves_the_file_as_it_was_and_another_is_written(tmp_path):
    assert "stem_stride" not in arch_of(1).to_dict()
    assert arch_of(4).to_dict()["stem_stride"] == 4
    path = tmp_path / "a.yaml"
    path.write_text(dump_yaml(arch_of(4).to_dict()))
    assert load_architecture(path) == arch_of(4)
    path.write_text(dump_yaml({**arch_of(1).to_dict(), "stem_stride": 1}))
    assert load_architecture(path) == arch_of(1)


@pytest.mark.parametrize("value", [3, 0, 2.0, True, "2", None])
def test_a_stride_other_than_1_2_4_is_one_line_naming_the_key(tmp_path, value):
    path = tmp_path / "a.yaml"
    path.write_text(dump_yaml({**arch_of(1).to_dict(), "stem_stride": value}))
    with pytest.raises(UserError, match=r"stem_stride: must be one of 1, 2, 4"):
        load_architecture(path)


def test_too_small_an_input_for_the_stride_names_the_size_it_needs():
    check_input_size(29, 4, "encoding", 4)  # ceil(29 / 4) = 8 = 2**3
    with pytest.raises(UserError, match=r"4 blocks need an input of at least 29 px after a stem of stride 4, got 28"):
        check_input_size(28, 4, "encoding", 4)
    with pytest.raises(UserError, match=r"3 blocks need an input of at least 4 px, got 3"):
        check_input_size(3, 3, "encoding")


def test_densenet_large_shrinks_224_px_to_7_at_its_last_block():
    space = load_space(resolve_space("densenet_large", None))
    assert space.stem_stride == 4 and space.num_blocks == 4
    arch = Architecture.from_space(space, space.largest_genome(), 3, 10, 224)
    assert arch.stem_stride == 4
    features = build_model(arch).features(build_model(arch).stem(torch.zeros(1, 3, 224, 224)))
    assert features.shape[-1] == 7
    assert space.to_dict()["stem_stride"] == 4
