"""Parameter and FLOP counts of an architecture, as `nas inspect` and every result report them.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` on one forward pass of a single image at the
architecture's input size; like fvcore and the DenseNet papers' tables, a multiply-add counts as 2 FLOPs.
"""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.genome.architecture import Architecture
from nas.model.network import build_model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, in_channels: int, input_size: int) -> int:
    """FLOPs of one forward pass on one image (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, in_channels, input_size, input_size, device=next(model.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())


def architecture_cost(arch: Architecture) -> tuple[int, int]:
    """(params, flops) of `arch`, building it on the CPU."""
    model = build_model(arch)
    return count_params(model), count_flops(model, arch.in_channels, arch.input_size)
