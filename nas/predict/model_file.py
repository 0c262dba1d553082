"""The model file `nas predict` runs: `model.pt2` (a `torch.export` program) or an earlier `model.ts`
(TorchScript, read while torch still loads it) by torch, or `model.onnx` by onnxruntime, beside its
`preprocess.json`. Each takes images in the user's units (`nas.model.preprocess`) and returns logits.

`preprocess.json` is only trusted once it is checked against the model itself, before any image is read: the
file validated in full (`load_preprocess`: types, ranges, lengths, an input size bounded before any tensor is
made), then compared with what the model records, the input shape, dtype and number of outputs (the ONNX
graph's input and output, the `nas_input.json` a `model.pt2` or TorchScript export carries; for an older `model.ts`
without it,
the normalisation buffer's channels and the classifier's outputs), then one dry run on a zero image of the
declared shape, whose output must have one logit per class name. A disagreement is one line naming the field.
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import UserError
from nas.model.preprocess import FILENAME, Preprocess, load_preprocess
from nas.predict.files import file_kind

FILES = {"pt2": "model.pt2", "torchscript": "model.ts", "onnx": "model.onnx"}  # `auto` tries them in this order
DRY_RUN_SIZE = 64  # the dry run's side when the model file does not record its input size (an older model.ts)
ONNX_TYPES = {"tensor(uint8)": "uint8", "tensor(float)": "float32"}


@dataclass
class ModelFile:
    """A loaded model: its path, its format, its input contract and a function from images to logits."""

    path: Path
    format: str
    preprocess: Preprocess
    logits: Callable[[np.ndarray], np.ndarray]


@dataclass
class Recorded:
    """What a model file itself says of its input and output (None where it says nothing)."""

    channels: int | None = None
    size: int | None = None
    dtype: str | None = None
    outputs: int | None = None


def locate(model: str | Path, fmt: str) -> tuple[Path, str]:
    """(model file, format) of MODEL_DIR or of a model file; `auto` takes model.pt2, else model.ts, else
    model.onnx."""
    p = Path(model)
    kind = file_kind(p)
    if kind == "a file":
        for name, filename in FILES.items():
            if p.suffix == Path(filename).suffix:
                return p, name
        raise UserError(f"{p}: not a model file (model.pt2, model.ts or model.onnx)")
    if kind == "missing":
        raise UserError(f"{p} does not exist (a folder from `nas train --save` or `nas export`)")
    if kind != "a folder":
        raise UserError(f"{p} is {kind}, not a model folder or model file")
    formats = [fmt] if fmt != "auto" else list(FILES)
    for name in formats:
        inside = file_kind(p / FILES[name])
        if inside == "a file":
            return p / FILES[name], name
        if inside != "missing":
            raise UserError(f"{p / FILES[name]} is {inside}, not a model file")
    raise UserError(f"{p} holds no {' or '.join(FILES[f] for f in formats)}")


def preprocess_path(model_path: Path) -> Path:
    """`preprocess.json` beside the model file: a regular file inside the model's folder (a link may point within
    the folder, never out of it, so a model folder cannot make predict read elsewhere)."""
    folder = model_path.parent
    path = folder / FILENAME
    kind = file_kind(path)
    if kind == "missing" and not path.is_symlink():
        return path  # load_preprocess says it is missing, and what writes one
    if kind != "a file":
        raise UserError(f"{path} is {kind}, not a preprocess.json file")
    if path.is_symlink():
        target, inside = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
        if not target.is_relative_to(inside):
            raise UserError(f"{path} is a symbolic link out of the model folder (to {target}); copy the file in")
    return path


def torchscript_runner(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], Recorded]:
    import torch

    from nas.model.torchscript import CONTRACT_FILE, load_torchscript

    extra = {CONTRACT_FILE: ""}
    try:
        module = load_torchscript(path, extra)
    except RuntimeError as exc:
        raise UserError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()

    return run, torchscript_recorded(module, extra[CONTRACT_FILE], path)


def program_runner(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], Recorded]:
    import torch

    from nas.model.program import load_program
    from nas.model.torchscript import CONTRACT_FILE

    extra = {CONTRACT_FILE: ""}
    try:
        module = load_program(path, extra)
    except Exception as exc:  # torch.export raises its own types (and zipfile's, KeyError) for a damaged archive
        text = str(exc).strip().splitlines()
        raise UserError(f"cannot load {path}: {text[0] if text else type(exc).__name__}") from None

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()

    return run, torchscript_recorded(module, extra[CONTRACT_FILE], path)


def torchscript_recorded(module: Any, contract: str | bytes, path: Path) -> Recorded:
    """The input contract a `model.ts` carries; for a file without one, what its buffers and classifier tell."""
    if contract:
        try:
            data = json.loads(contract)
            channels, size, _ = data["shape"]
            return Recorded(int(channels), int(size), str(data["dtype"]), int(data["outputs"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: its nas_input.json record is damaged ({type(exc).__name__})") from None
    recorded = Recorded()
    try:
        recorded.channels = int(module.mean.shape[1])
        recorded.outputs = int(module.network.classifier.weight.shape[0])
    except (AttributeError, IndexError, RuntimeError):
        pass  # not an evonas file: the dry run alone checks it
    return recorded


def onnx_runner(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], Recorded]:
    try:
        import onnxruntime
    except ImportError:
        raise UserError("running model.onnx needs onnxruntime: pip install 'evonas[export]'") from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        raise UserError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        raise UserError(f"{path} has {len(inputs)} inputs and {len(outputs)} outputs, not one image in, logits out")
    name = inputs[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: np.ascontiguousarray(x)})[0], dtype=np.float32)

    return run, onnx_recorded(inputs[0], outputs[0])


def onnx_recorded(image: Any, logits: Any) -> Recorded:
    """Input (N, C, H, W) and output (N, classes) as the ONNX graph declares them (a named dimension is free)."""

    def fixed(shape: list, i: int) -> int | None:
        return shape[i] if len(shape) > i and isinstance(shape[i], int) and shape[i] > 0 else None

    shape, out = list(image.shape or []), list(logits.shape or [])
    return Recorded(fixed(shape, 1), fixed(shape, 2), ONNX_TYPES.get(image.type, image.type), fixed(out, 1))


def check_agreement(pre: Preprocess, recorded: Recorded, path: Path) -> None:
    """Each field of `preprocess.json` that the model file records must say the same."""
    checks = (
        ("in_channels", pre.in_channels, pre.in_channels, recorded.channels, "takes {} channel(s)"),
        ("input_size", pre.input_size, pre.input_size, recorded.size, "takes {}-pixel images"),
        ("input_dtype", pre.input_dtype, pre.input_dtype, recorded.dtype, "takes {}"),
        ("class_names", len(pre.class_names), f"{len(pre.class_names)} names", recorded.outputs, "gives {} outputs"),
    )
    for key, declared, said, actual, says in checks:
        if actual is not None and declared != actual:
            raise UserError(f"{path.parent / FILENAME}: {key}: {said}, but {path.name} {says.format(actual)}")


def dry_run(run: Callable[[np.ndarray], np.ndarray], pre: Preprocess, recorded: Recorded, path: Path) -> None:
    """One zero image of the declared shape through the model: it must run and give one logit per class name.
    When the file does not record its input size, a side of at most `DRY_RUN_SIZE` is tried first, so that a
    bad `input_size` within the bound costs no large tensor."""
    sizes = [pre.input_size] if recorded.size is not None else [min(pre.input_size, DRY_RUN_SIZE), pre.input_size]
    error = ""
    for size in dict.fromkeys(sizes):
        x = np.zeros((1, pre.in_channels, size, size), dtype=pre.input_dtype)
        try:
            logits = run(x)
        except Exception as exc:  # torch and onnxruntime raise their own types for a shape the graph refuses
            error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            continue
        if logits.ndim != 2 or logits.shape[0] != 1:
            raise UserError(f"{path} gives logits of shape {tuple(logits.shape)} for one image, not (1, classes)")
        if logits.shape[1] != len(pre.class_names):
            raise UserError(f"{path.parent / FILENAME}: class_names: {len(pre.class_names)} names, but {path.name} "
                            f"gives {logits.shape[1]} outputs")  # fmt: skip
        return
    shape = f"{pre.in_channels}x{pre.input_size}x{pre.input_size} {pre.input_dtype}"
    raise UserError(f"{path.parent / FILENAME}: in_channels/input_size/input_dtype: {path.name} does not run on a "
                    f"{shape} image ({error})")  # fmt: skip


RUNNERS = {"pt2": program_runner, "torchscript": torchscript_runner, "onnx": onnx_runner}


def load_model(model: str | Path, fmt: str = "auto") -> ModelFile:
    """Load MODEL_DIR (or a model file) and its `preprocess.json`, the two checked against each other."""
    path, name = locate(model, fmt)
    pre = load_preprocess(preprocess_path(path))
    run, recorded = RUNNERS[name](path)
    check_agreement(pre, recorded, path)
    dry_run(run, pre, recorded, path)
    return ModelFile(path, name, pre, run)
