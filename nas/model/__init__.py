"""Genome -> torch.nn.Module, and its cost (parameters, FLOPs)."""

from nas.model.cost import architecture_cost, count_flops, count_params
from nas.model.network import block_channels, build_model

__all__ = ["architecture_cost", "block_channels", "build_model", "count_flops", "count_params"]
