"""`model.ts`: a network as a TorchScript file that runs without evonas installed (`torch.jit.load`).

The network is traced, not scripted: its graph is fixed by the architecture (the shortcut wiring is decided
when it is built, never by the data), so a trace records it exactly, while scripting would reject the
zip over a `ModuleList` in the block's forward. Tracing happens in eval mode, so BatchNorm uses its running
statistics and the file is for inference; the batch size stays free. TorchScript is deprecated upstream but
still the one self-contained format `torch` loads without Python source; the deprecation warning is muted
here because the user did not ask for it.
"""

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from nas.genome.architecture import Architecture


def example_input(arch: Architecture, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A reproducible batch of images of the architecture's input shape."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, arch.in_channels, arch.input_size, arch.input_size, generator=generator)


def to_torchscript(model: nn.Module, arch: Architecture) -> torch.jit.ScriptModule:
    """Trace `model` (switched to eval mode, on the CPU, in the default memory format) at its input size.

    A network trained in channels_last (a GPU speed-up) is switched back first: the trace then computes
    bit for bit what `build_model(arch)` with `load_state_dict(weights.pt)` computes, not merely close to it.
    """
    model = model.cpu().eval().to(memory_format=torch.contiguous_format)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, example_input(arch))
    return traced  # type: ignore[return-value]


def save_torchscript(model: nn.Module, arch: Architecture, path: str | Path) -> None:
    """Write `model` as TorchScript to `path` by temp file and rename, so a reader never sees half a file."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(to_torchscript(model, arch), str(tmp))
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """Load a `model.ts` on the CPU (TorchScript files hold no pickled Python objects)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")
