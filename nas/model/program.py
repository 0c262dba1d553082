"""`model.pt2`: a network as a `torch.export` program, the model file torch loads without Python source and
without evonas installed (`torch.export.load(path).module()`).

`torch.jit` (TorchScript, `model.ts`) is deprecated upstream; `torch.export` is what replaces it. The program is
the network behind `nas.model.preprocess.RawInput` in eval mode (BatchNorm on its running statistics): it takes
images in the user's units (`preprocess.json` beside it) and normalises them inside. The batch dimension is
dynamic; channels, size and dtype are fixed by the graph, and the file also carries `nas_input.json`
(`CONTRACT_FILE`, the same record a `model.ts` carries) for `nas predict` to check `preprocess.json` against.

The archive holds the graph as JSON and the weights as raw tensors, but `torch.export.load` unpickles the parts
an archive marks as pickled (its sample inputs, always): like any torch model file, load only one you trust.
"""

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from nas.model.preprocess import Preprocess, example_batch
from nas.model.torchscript import CONTRACT_FILE, contract_of, for_users

SUFFIX = ".pt2"


def to_program(network: nn.Module, pre: Preprocess) -> torch.export.ExportedProgram:
    """Export `network` behind `RawInput` at its input size and dtype, any batch size."""
    model = for_users(network, pre)
    with torch.no_grad():
        return torch.export.export(
            model, (example_batch(pre, batch=2),), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )


def save_program(network: nn.Module, pre: Preprocess, path: str | Path) -> None:
    """Write `network` as a `torch.export` program to `path` by temp file and rename, so a reader never sees
    half a file."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    try:
        torch.export.save(to_program(network, pre), str(tmp), extra_files={CONTRACT_FILE: contract_of(pre)})
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_program(path: str | Path, extra: dict[str, str] | None = None) -> nn.Module:
    """The callable module of a `model.pt2` (on the CPU); the extra files named in `extra` are read into it
    (left empty when the file has none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.export.load(str(path), extra_files=extra if extra is not None else {})
    return program.module()
