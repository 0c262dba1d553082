"""`model.onnx`: a network as an ONNX file, checked against torch with onnxruntime before it is kept.

Optional: it needs `onnx`, `onnxruntime` and `onnxscript` (the `export` extra; the dev extra installs them).
`require_onnx` says so in one line before any work starts. The file is made by torch's `torch.export`-based
exporter (the default since torch 2.9; the TorchScript-based one is deprecated), self-contained (weights
inside the file, no `.data` sidecar: these networks are far below ONNX's 2 GB limit), with input `image`
(N, C, H, W, in the user's units and dtype, uint8 for image datasets: `preprocess.json` says which) and output
`logits` (N, classes), the batch dimension dynamic; the normalisation is inside (`nas.model.preprocess`). After
writing, onnxruntime runs it on a batch of a different size than the one exported with, and its logits must
match torch's within `TOLERANCE`; otherwise the export is a bug and fails.
"""

import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.errors import UserError
from nas.model.preprocess import Preprocess, example_batch
from nas.model.torchscript import for_users

TOLERANCE = 1e-4
PACKAGES = ("onnx", "onnxruntime", "onnxscript")
EXPORTER_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx")


@contextmanager
def quiet_loggers(names: tuple[str, ...]) -> Iterator[None]:
    """Keep the exporter's optimiser chatter (dozens of INFO lines per graph pass) off the user's terminal."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def importable(name: str) -> bool:
    """Whether `name` imports (a broken install counts as absent, which is what the user must fix)."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def require_onnx() -> None:
    """A one-line `UserError` naming what to install when the optional ONNX packages are absent."""
    missing = [name for name in PACKAGES if not importable(name)]
    if missing:
        raise UserError(
            f"--onnx needs the optional packages {', '.join(PACKAGES)} (missing: {', '.join(missing)}); "
            "install the export extra: pip install 'evonas[export]'"
        )


def save_onnx(network: nn.Module, pre: Preprocess, path: str | Path) -> float:
    """Export `network` behind its normalisation to `path`, verify it with onnxruntime, return the largest logit
    difference."""
    model = for_users(network, pre)
    batch = torch.export.Dim("batch")
    with torch.no_grad(), quiet_loggers(EXPORTER_LOGGERS):
        torch.onnx.export(
            model,
            (example_batch(pre, batch=2),),
            str(path),
            dynamo=True,
            verbose=False,
            external_data=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
        )
    difference = onnx_difference(model, pre, path)
    if not difference <= TOLERANCE:
        raise RuntimeError(f"{path}: onnxruntime's logits differ from torch's by {difference:.3g} (> {TOLERANCE})")
    return difference


def onnx_difference(model: nn.Module, pre: Preprocess, path: str | Path) -> float:
    """Largest absolute difference between torch's and onnxruntime's logits on a batch of 3 images."""
    import onnxruntime

    x = example_batch(pre, batch=3, seed=1)
    with torch.no_grad():
        expected = model(x).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    return float(np.max(np.abs(got - expected)))
