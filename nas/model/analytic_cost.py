"""Parameters and FLOPs of an architecture by formula, without building it (for cheap objectives and plans).

Equal, by test, to `count_params` and `count_flops` of the built network: conv and linear layers are counted
as `torch.utils.flop_counter` counts them (2 FLOPs a multiply-add; BatchNorm, ReLU and pooling not counted).
Costs microseconds, so a synthetic search of 10,000 candidates spends its time in the driver, not here.
"""

from nas.genome.architecture import Architecture
from nas.genome.channels import block_channels, layer_input_channels


def analytic_cost(arch: Architecture) -> tuple[int, int]:
    """(params, flops) of `arch` at its input size, by the formulas of DESIGN.md section 2."""
    size = arch.input_size
    params = arch.in_channels * arch.stem_channels * 9 + 2 * arch.stem_channels
    flops = 2 * arch.in_channels * arch.stem_channels * 9 * size * size
    channels = block_channels(arch)
    for i, (block, (c_block, c_out)) in enumerate(zip(arch.genome.blocks, channels, strict=True)):
        k, mid = block.growth_rate, arch.bottleneck_width * block.growth_rate
        for c_in in layer_input_channels(block, c_block)[:-1]:
            params += 2 * c_in + c_in * mid + 2 * mid + mid * k * 9
            flops += 2 * (c_in * mid + mid * k * 9) * size * size
        if i < len(channels) - 1:
            nxt = channels[i + 1][0]
            params += 2 * c_out + c_out * nxt
            flops += 2 * c_out * nxt * size * size
            size //= 2
    final = channels[-1][1]
    params += 2 * final + final * arch.num_classes + arch.num_classes
    flops += 2 * final * arch.num_classes
    return params, flops
