"""Parameters, FLOPs and activation memory of an architecture by formula, without building it.

Equal, by test, to `count_params` and `count_flops` of the built network: conv and linear layers are counted
as `torch.utils.flop_counter` counts them (2 FLOPs a multiply-add; BatchNorm, ReLU and pooling not counted).
Costs microseconds, so a synthetic search of 10,000 candidates spends its time in the driver, not here.

`check_cost` is the guard every command runs before it builds a network (`nas inspect`, `nas train`,
`nas export`, each candidate of a search, and a search space's largest member when a search starts): an
architecture over `limits` is refused in one line instead of ending in an allocation traceback or the OOM
killer.
"""

from nas.config import LimitsConfig
from nas.errors import UserError
from nas.genome.architecture import Architecture, stem_output_size
from nas.genome.channels import block_channels, layer_input_channels

BYTES_PER_VALUE = 4  # fp32 activations; bf16 autocast keeps some at 2 bytes, so this errs on the safe side
GIB = 2**30


def analytic_cost(arch: Architecture) -> tuple[int, int]:
    """(params, flops) of `arch` at its input size, by the formulas of DESIGN.md section 2."""
    conv = stem_output_size(arch.input_size, min(arch.stem_stride, 2))  # the stem conv's output side
    params = arch.in_channels * arch.stem_channels * 9 + 2 * arch.stem_channels
    flops = 2 * arch.in_channels * arch.stem_channels * 9 * conv * conv
    size = stem_output_size(arch.input_size, arch.stem_stride)
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


def activation_bytes(arch: Architecture, batch_size: int) -> int:
    """The activations one training step of `batch_size` images keeps for the backward pass, in bytes (fp32).

    Every tensor the forward pass makes is counted once: the stem's conv, BN and ReLU outputs (and its max pool's,
    at stride 4); per layer its
    concatenated input, the BN and ReLU of it, the 1x1 conv's output with its BN and ReLU, and the 3x3 conv's
    output; per transition the block's concatenated output, BN, ReLU, conv and pooled map; the head's BN and
    ReLU. Gradients, optimizer state and the allocator's slack come on top, so this is a floor, not a ceiling.
    """
    conv = stem_output_size(arch.input_size, min(arch.stem_stride, 2))
    size = stem_output_size(arch.input_size, arch.stem_stride)
    values = arch.in_channels * arch.input_size**2 + 3 * arch.stem_channels * conv * conv
    if arch.stem_stride == 4:
        values += arch.stem_channels * size * size
    channels = block_channels(arch)
    for i, (block, (c_block, c_out)) in enumerate(zip(arch.genome.blocks, channels, strict=True)):
        mid = arch.bottleneck_width * block.growth_rate
        for c_in in layer_input_channels(block, c_block)[:-1]:
            values += (3 * c_in + 3 * mid + block.growth_rate) * size * size
        values += 3 * c_out * size * size
        if i < len(channels) - 1:
            nxt = channels[i + 1][0]
            values += nxt * size * size + nxt * (size // 2) ** 2
            size //= 2
    return values * batch_size * BYTES_PER_VALUE


def check_cost(arch: Architecture, limits: LimitsConfig, batch_size: int, what: str) -> tuple[int, int]:
    """(params, flops) of `arch`, or a `UserError` naming `what` and the limit it exceeds (nothing is built)."""
    params, flops = analytic_cost(arch)
    if params > limits.max_params:
        raise UserError(f"{what} has {params:,} parameters, over limits.max_params ({limits.max_params:,}); "
                        "refused before building it")  # fmt: skip
    memory = activation_bytes(arch, batch_size)
    if memory > limits.max_activation_gib * GIB:
        limit = limits.max_activation_gib
        raise UserError(f"{what} needs {memory / GIB:,.1f} GiB of activations at batch size {batch_size}, over "
                        f"limits.max_activation_gib ({limit:g}); refused before building it")  # fmt: skip
    return params, flops
