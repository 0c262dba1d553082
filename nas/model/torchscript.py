"""`model.ts`: a network as a TorchScript file that runs without evonas installed (`torch.jit.load`).

The network is traced, not scripted: its graph is fixed by the architecture (the shortcut wiring is decided
when it is built, never by the data), so a trace records it exactly, while scripting would reject the
zip over a `ModuleList` in the block's forward. Tracing happens in eval mode, so BatchNorm uses its running
statistics and the file is for inference; the batch size stays free. TorchScript is deprecated upstream: evonas
writes `model.pt2` (`nas.model.program`) and reads the `model.ts` files earlier versions wrote, while torch still
loads them; the deprecation warning is muted here because the user did not ask for it. `for_users` and the
contract record are shared with the `model.pt2` and ONNX writers.

The file holds the network behind `nas.model.preprocess.RawInput`: it takes images in the user's units (uint8
pixels for image datasets; see `preprocess.json` beside it) and normalises them inside the graph. A trace keeps
no input shape, so the file also carries `nas_input.json` (`CONTRACT_FILE`, a TorchScript extra file): the input
shape and dtype it was traced at and its number of outputs, which `nas predict` checks `preprocess.json` against.
"""

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from nas.model.preprocess import Preprocess, RawInput, example_batch

CONTRACT_FILE = "nas_input.json"


def contract_of(pre: Preprocess) -> str:
    """What the traced file takes and gives: `{"shape": [C, H, W], "dtype": ..., "outputs": classes}`."""
    shape = [pre.in_channels, pre.input_size, pre.input_size]
    return json.dumps({"shape": shape, "dtype": pre.input_dtype, "outputs": len(pre.class_names)})


def for_users(network: nn.Module, pre: Preprocess) -> RawInput:
    """`network` (switched to eval mode, on the CPU, in the default memory format) behind its normalisation.

    A network trained in channels_last (a GPU speed-up) is switched back first: the file then computes bit for
    bit what `build_model(arch)` with `load_state_dict(weights.pt)` computes on normalised input.
    """
    network = network.cpu().eval().to(memory_format=torch.contiguous_format)
    return RawInput(network, pre).eval()


def to_torchscript(network: nn.Module, pre: Preprocess) -> torch.jit.ScriptModule:
    """Trace `network` behind `RawInput` at its input size and dtype."""
    model = for_users(network, pre)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example_batch(pre))
    return traced


def save_torchscript(network: nn.Module, pre: Preprocess, path: str | Path) -> None:
    """Write `network` as TorchScript to `path` by temp file and rename, so a reader never sees half a file."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(to_torchscript(network, pre), str(tmp), _extra_files={CONTRACT_FILE: contract_of(pre)})
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_torchscript(path: str | Path, extra: dict[str, str] | None = None) -> torch.jit.ScriptModule:
    """Load a `model.ts` on the CPU (TorchScript files hold no pickled Python objects); the extra files named in
    `extra` are read into it (left empty when the file has none, as a file written before they existed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra if extra is not None else {})
