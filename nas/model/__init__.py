"""Genome -> torch.nn.Module, and its cost (parameters, FLOPs).

Names are resolved lazily so that `nas.model.describe` (the `nas inspect` command) can reject a bad file
without paying for importing torch.
"""

import importlib
from typing import Any

_EXPORTS = {
    "architecture_cost": "nas.model.cost",
    "count_flops": "nas.model.cost",
    "count_params": "nas.model.cost",
    "block_channels": "nas.model.network",
    "build_model": "nas.model.network",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nas.model' has no attribute {name!r}")
