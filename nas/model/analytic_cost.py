"""Parameters and FLOPs of an architecture by formula, without building it (for cheap objectives and plans).

Equal, by test, to `count_params` and `count_flops` of the built network: conv and linear layers are counted
as `torch.utils.flop_counter` counts them (2 FLOPs a multiply-add; BatchNorm, ReLU and pooling not counted).
Costs microseconds, so a synthetic search of 10,000 candidates spends its time in the driver, not here.
"""

import math

from nas.genome.architecture import Architecture
from nas.genome.shortcuts import inputs_of


def analytic_cost(arch: Architecture) -> tuple[int, int]:
    """(params, flops) of `arch` at its input size, by the formulas of DESIGN.md section 2."""
    size = arch.input_size
    params = arch.in_channels * arch.stem_channels * 9 + 2 * arch.stem_channels
    flops = 2 * arch.in_channels * arch.stem_channels * 9 * size * size
    channels = arch.stem_channels
    blocks = arch.genome.blocks
    for i, block in enumerate(blocks):
        k, mid = block.growth_rate, arch.bottleneck_width * block.growth_rate
        node = [channels] + [k] * block.layers
        for target in range(1, block.layers + 2):
            c_in = sum(node[n] for n in inputs_of(block.shortcuts, block.layers, target))
            if target == block.layers + 1:
                channels = c_in
                break
            params += 2 * c_in + c_in * mid + 2 * mid + mid * k * 9
            flops += 2 * (c_in * mid + mid * k * 9) * size * size
        if i < len(blocks) - 1:
            out = math.floor(channels * arch.compression)
            params += 2 * channels + channels * out
            flops += 2 * channels * out * size * size
            channels, size = out, size // 2
    params += 2 * channels + channels * arch.num_classes + arch.num_classes
    flops += 2 * channels * arch.num_classes
    return params, flops
