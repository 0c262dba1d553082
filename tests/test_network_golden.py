"""The network's computation pinned, not only its shape: golden outputs, and the order blocks concatenate in.

Parameter counts and output shapes cannot see a block that concatenates its inputs in another order, or a
transition that pools before its convolution: the counts and shapes stay the same, and a saved `weights.pt`
would load silently into a network that computes something else. These tests fix every weight from a seed (by
state_dict name, so they pin what each saved tensor means), feed a fixed input, and compare the logits with
values recorded from the network of DESIGN.md section 2, in float64 so that the tolerance can be tight.
"""

import pytest
import torch

from nas.genome import shortcuts as sc
from nas.genome.architecture import Architecture
from nas.genome.genome import BlockGene, Genome
from nas.model.network import ShortcutBlock, build_model


def arch_of(blocks: list[tuple[int, int, str]], in_ch: int = 2, size: int = 8, classes: int = 3) -> Architecture:
    genes = tuple(BlockGene(n, k, bits) for n, k, bits in blocks)
    return Architecture(in_ch, classes, size, 4, 2, 0.5, Genome(genes))


def fill_from_seed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every tensor of the state_dict, in name order, drawn from one seeded generator (BN variances positive)."""
    gen = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    for name in sorted(state):
        tensor = state[name]
        if not tensor.is_floating_point():
            continue
        values = torch.randn(tensor.shape, generator=gen, dtype=torch.float64)
        if name.endswith("running_var"):
            values = values.abs() + 0.5
        tensor.copy_(values)
    return model


def fixed_input(in_ch: int, size: int) -> torch.Tensor:
    """Two images with a different value in every pixel and channel."""
    n = 2 * in_ch * size * size
    return torch.sin(torch.arange(n, dtype=torch.float64) * 0.37).view(2, in_ch, size, size)


PATTERNS = {
    "densenet": [(3, 3, "111111")],
    "chain": [(3, 3, "000000")],
    "mixed": [(3, 3, "101001")],
    "output-links": [(3, 3, "001011")],
    "two-blocks": [(2, 3, "101"), (3, 2, "110010")],
}

# Logits (eval mode) of the two fixed images, recorded from the network as DESIGN.md section 2 fixes it.
GOLDEN = {
    "chain": [
        3.454804395820844,
        3.0910753406743763,
        -6.353048870608152,
        2.9324461482815236,
        3.6941313284623782,
        -6.835968263136126,
    ],
    "densenet": [
        40.65699252889408,
        51.92792276853814,
        -103.29508998083203,
        39.31219592082584,
        50.643144188322,
        -94.7390117067985,
    ],
    "mixed": [
        -599.8289075633344,
        7.090792626170953,
        -95.01644035575448,
        -560.8180380605329,
        26.067746371872033,
        -83.75885025690077,
    ],
    "output-links": [
        7.848051482075581,
        11.65390402946511,
        -4.52736664274615,
        7.841184618064576,
        11.655474055014098,
        -4.529739624644531,
    ],
    "two-blocks": [
        6.814994826959834,
        4.852602278169582,
        -3.793049104626915,
        7.509250444725435,
        4.169662933909495,
        -5.298502452865909,
    ],
}


def logits(blocks: list[tuple[int, int, str]]) -> torch.Tensor:
    arch = arch_of(blocks)
    model = fill_from_seed(build_model(arch).double()).eval()
    with torch.no_grad():
        return model(fixed_input(arch.in_channels, arch.input_size))


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_logits_match_the_recorded_network(name):
    assert logits(PATTERNS[name]).flatten().tolist() == pytest.approx(GOLDEN[name], rel=1e-9, abs=1e-9)


def test_patterns_compute_different_functions():
    """The golden values are not all alike: each shortcut pattern changes what the same-named weights compute."""
    outs = {name: tuple(round(v, 6) for v in GOLDEN[name]) for name in GOLDEN}
    assert len(set(outs.values())) == len(outs)


@pytest.mark.parametrize("bits", ["111111", "101001", "010110", "000000"])
def test_each_target_takes_its_sources_concatenated_in_ascending_node_order(bits):
    """Each layer's input and the block output are exactly torch.cat of the nodes the bits name, ascending."""
    block = BlockGene(3, 2, bits)
    module = fill_from_seed(ShortcutBlock(block, 3, 2).double()).eval()
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    seen_in, seen_out = [], []

    def record(layer, args, out):
        seen_in.append(args[0])
        seen_out.append(out)

    for layer in module.layers:
        layer.register_forward_hook(record)
    with torch.no_grad():
        out = module(x)
    nodes = [x, *seen_out]
    for target in range(1, block.layers + 2):
        sources = sc.inputs_of(bits, block.layers, target)
        expected = torch.cat([nodes[s] for s in sources], dim=1)
        got = seen_in[target - 1] if target <= block.layers else out
        assert torch.equal(got, expected), f"target {target} of {bits}"
        if len(sources) == 1:
            assert got is nodes[sources[0]], "a single source is passed on as it is, without a copy"
    assert module.out_channels == out.shape[1]


def test_initialisation_is_kaiming_normal_with_unit_batchnorm_and_zero_biases():
    torch.manual_seed(0)
    model = build_model(arch_of([(2, 16, "111")], in_ch=3, size=8, classes=5))
    conv = model.features[0].layers[1][2]  # 1x1 conv of layer 2: fan_in 4 + 16 = 20 channels
    assert conv.weight.std().item() == pytest.approx((2 / 20) ** 0.5, rel=0.1)
    assert abs(conv.weight.mean().item()) < 0.05
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(m.bias, torch.zeros_like(m.bias))
    assert torch.equal(model.classifier.bias, torch.zeros(5))
