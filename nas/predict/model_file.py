"""The model file `nas predict` runs: `model.ts` by torch, or `model.onnx` by onnxruntime, beside its
`preprocess.json`. Either takes images in the user's units (`nas.model.preprocess`) and returns logits."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.errors import UserError
from nas.model.preprocess import FILENAME, Preprocess, load_preprocess

FILES = {"torchscript": "model.ts", "onnx": "model.onnx"}


@dataclass
class ModelFile:
    """A loaded model: its path, its format, its input contract and a function from images to logits."""

    path: Path
    format: str
    preprocess: Preprocess
    logits: Callable[[np.ndarray], np.ndarray]


def locate(model: str | Path, fmt: str) -> tuple[Path, str]:
    """(model file, format) of MODEL_DIR or of a model file; `auto` prefers model.ts, else model.onnx."""
    p = Path(model)
    if p.is_file():
        for name, filename in FILES.items():
            if p.suffix == Path(filename).suffix:
                return p, name
        raise UserError(f"{p}: not a model file (model.ts or model.onnx)")
    if not p.is_dir():
        raise UserError(f"{p} does not exist (a folder from `nas train --save` or `nas export`)")
    formats = [fmt] if fmt != "auto" else list(FILES)
    for name in formats:
        if (p / FILES[name]).is_file():
            return p / FILES[name], name
    raise UserError(f"{p} holds no {' or '.join(FILES[f] for f in formats)}")


def torchscript_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    from nas.model.torchscript import load_torchscript

    try:
        module = load_torchscript(path)
    except RuntimeError as exc:
        raise UserError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()

    return run


def onnx_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    try:
        import onnxruntime
    except ImportError:
        raise UserError("running model.onnx needs onnxruntime: pip install 'evonas[export]'") from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        raise UserError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: np.ascontiguousarray(x)})[0], dtype=np.float32)

    return run


def load_model(model: str | Path, fmt: str = "auto") -> ModelFile:
    """Load MODEL_DIR (or a model file) and its `preprocess.json`."""
    path, name = locate(model, fmt)
    pre = load_preprocess(path.parent / FILENAME)
    runner = torchscript_runner(path) if name == "torchscript" else onnx_runner(path)
    return ModelFile(path, name, pre, runner)
