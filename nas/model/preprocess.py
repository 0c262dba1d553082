"""What a model file expects of its input, and the normalisation it carries inside (`preprocess.json`).

The trainer keeps each dataset in its stored units (uint8 0-255 for JPEG/PNG/BMP images, the scikit-learn digits
scaled to uint8) and normalises every batch by the training split's per-channel mean and std on the device. A
model file handed to a user must not depend on a number the user cannot see, so every model file evonas writes
(`model.ts`, `model.onnx`) is the network behind `RawInput`, which takes images in the units the user has and
applies the trainer's conversion and normalisation inside the graph:

- JPEG/PNG/BMP datasets (`imagefolder`, `cifar10`, `cifar100`, `svhn`, `bbbc014`): uint8 pixels, 0-255.
- `digits`: float32 in scikit-learn's units (`load_digits().images`, 0-16); the graph scales by 255/16 and rounds,
  which is exactly the trainer's conversion to uint8, so a prediction equals the trainer's.
- `bbbc021`: float32 crops already normalised by the DMSO statistics of their plate. That normalisation depends on
  the plate an image comes from, which is not in the image, so it cannot live in the graph; `preprocess.json`
  ships every plate's statistics and `nas.data.bbbc021_images.plate_normalised_crops` applies them to a raw
  16-bit field. The graph itself then only casts.

`preprocess.json` beside the model says all of it: class names in output order, channel order, input size and
dtype, the resize training used, mean and std (or the plate statistics), the dataset kind, the evonas version.
"""

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import nas
from nas.atomicfile import atomic_write_text
from nas.config import DatasetConfig
from nas.data.dataset import ImageData
from nas.errors import UserError

log = logging.getLogger(__name__)
FORMAT = "nas-preprocess/1"
FILENAME = "preprocess.json"
DIGITS_MAX = 16.0
CHANNELS = {
    "bbbc021": ["Actin", "Tubulin", "DAPI"],
    "bbbc014": ["NF-kB (FITC)", "DAPI"],
}


@dataclass
class Preprocess:
    """The contract between a model file and its input (the content of `preprocess.json`).

    `scale` maps the model's input units to the trainer's stored units (255/16 for digits, else 1) and `round`
    says whether the stored units are integers reached by rounding. `mean`/`std` are per channel, in stored units.
    """

    dataset: str
    class_names: list[str]
    channel_order: list[str]
    input_size: int
    in_channels: int
    input_dtype: str
    input_range: list[float] | None
    resize: int | None
    mean: list[float]
    std: list[float]
    scale: float = 1.0
    round: bool = False
    normalisation: str = "in-graph"
    plate_statistics: dict[str, dict[str, list[float]]] | None = None
    evonas_version: str = nas.__version__
    format: str = FORMAT
    resize_method: str = "bilinear, antialiased (PIL Image.resize BILINEAR / torch interpolate antialias=True)"
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False) + "\n"

    def stored_to_input(self, x: np.ndarray) -> np.ndarray:
        """Images in the trainer's stored units -> the model's input units and dtype (the inverse of `scale`)."""
        if self.scale == 1.0:
            return x.astype(self.input_dtype, copy=False)
        return (x.astype(np.float64) / self.scale).astype(self.input_dtype)


def channel_order(dataset: str, channels: int) -> list[str]:
    if dataset in CHANNELS and len(CHANNELS[dataset]) == channels:
        return list(CHANNELS[dataset])
    return ["grey"] if channels == 1 else ["red", "green", "blue"][:channels] + [f"c{i}" for i in range(3, channels)]


def bbbc021_plates(config: DatasetConfig) -> dict[str, dict[str, list[float]]] | None:
    """The plate statistics to ship (from the dataset cache); None, with a warning, when they cannot be had."""
    from nas.data.bbbc021 import plate_statistics_for

    try:
        return plate_statistics_for(config)
    except UserError as exc:
        log.warning("preprocess.json goes without BBBC021 plate statistics: %s", exc)
        return None


def preprocess_of(config: DatasetConfig, data: ImageData) -> Preprocess:
    """The input contract of a network trained on `data` (the `ImageData` the trainer normalised with), loaded
    from the dataset section `config`."""
    dataset, resize = config.name, config.resize
    common = {
        "dataset": dataset,
        "class_names": list(data.class_names),
        "channel_order": channel_order(dataset, data.in_channels),
        "input_size": data.input_size,
        "in_channels": data.in_channels,
        "resize": resize,
        "mean": [float(m) for m in data.mean],
        "std": [float(s) for s in data.std],
    }
    if dataset == "digits":
        notes = ["input: scikit-learn digits pixel values (load_digits().images), 0-16, float32"]
        return Preprocess(**common, input_dtype="float32", input_range=[0.0, DIGITS_MAX], scale=255.0 / DIGITS_MAX,
                          round=True, notes=notes)  # fmt: skip
    if dataset == "bbbc021":
        notes = [
            "input: float32 crops already normalised per plate and channel by that plate's DMSO mean and std",
            "this normalisation depends on the plate, so it is not in the model: apply plate_statistics with "
            "nas.data.bbbc021_images.plate_normalised_crops(field, mean, std, input_size)",
        ]
        return Preprocess(**common, input_dtype="float32", input_range=[-60000.0, 60000.0],
                          normalisation="per-plate DMSO, outside the model", notes=notes,
                          plate_statistics=bbbc021_plates(config))  # fmt: skip
    if data.x_train.dtype == np.uint8:
        return Preprocess(**common, input_dtype="uint8", input_range=[0.0, 255.0], notes=["input: 8-bit pixels"])
    return Preprocess(**common, input_dtype="float32", input_range=None)


def save_preprocess(pre: Preprocess, path: str | Path) -> None:
    atomic_write_text(path, pre.to_json())


def load_preprocess(path: str | Path) -> Preprocess:
    """Read `preprocess.json`; a missing or malformed file is a one-line `UserError`."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p} is missing (a model folder written by `nas export` or `nas train --save`)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {p}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{p}: not a {FORMAT} file")
    known = set(Preprocess.__dataclass_fields__)
    try:
        return Preprocess(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise UserError(f"{p}: {exc}") from None


class RawInput(nn.Module):
    """`network` behind the conversion from the user's units: cast, scale (and round), normalise.

    The arithmetic is the trainer's own (`(x.float() - mean) * (1 / std)` in float32), so the wrapped network
    computes what the trainer scored.
    """

    def __init__(self, network: nn.Module, pre: Preprocess):
        super().__init__()
        self.network = network
        shape = (1, len(pre.mean), 1, 1)
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).view(shape))
        self.register_buffer("inv_std", 1.0 / torch.tensor(pre.std, dtype=torch.float32).view(shape))
        self.scale = float(pre.scale)
        self.round = bool(pre.round)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.scale != 1.0:
            x = x * self.scale
        if self.round:
            x = torch.round(x)
        return self.network((x - self.mean) * self.inv_std)


def example_batch(pre: Preprocess, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A reproducible batch of images in the model's input units and dtype (for tracing and checking)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, pre.in_channels, pre.input_size, pre.input_size)
    if pre.input_dtype == "uint8":
        return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    bounded = pre.input_range is not None and pre.input_range[1] - pre.input_range[0] < 1e4
    low, high = pre.input_range if bounded else (-3.0, 3.0)  # type: ignore[misc]
    return low + (high - low) * torch.rand(shape, generator=generator)


def describe_input(pre: Preprocess) -> dict[str, Any]:
    """A short summary of the input contract for printed output."""
    return {"dtype": pre.input_dtype, "shape": [pre.in_channels, pre.input_size, pre.input_size],
            "range": pre.input_range, "normalisation": pre.normalisation}  # fmt: skip
