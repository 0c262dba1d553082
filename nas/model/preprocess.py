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
dtype, the resize training used, mean and std (or the plate statistics), the dataset kind, the evonas version,
and how the weights in the model were trained (`weights`: `{"source": "search", "epochs": E, "val_accuracy": A}`
for a search's best candidate as `nas export` writes it, `{"source": "retrained", "epochs": E, "test_accuracy":
A}` for `nas train --full --save`, `"trained"` with both accuracies for `nas train --save` on the validation
carve, `"transfer"` with the test accuracy for a backbone of `nas baseline`, its `notes` saying whether it
started from ImageNet or from scratch; absent in files written before it was recorded).
"""

import json
import logging
import math
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.atomicfile import atomic_write_text
from nas.config import DatasetConfig
from nas.data.dataset import ImageData
from nas.errors import UserError, shown
from nas.version import __version__

log = logging.getLogger(__name__)
FORMAT = "nas-preprocess/1"
FILENAME = "preprocess.json"
DIGITS_MAX = 16.0
DATASET_NAME = re.compile(r"[A-Za-z0-9_.-]+")
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
    evonas_version: str = __version__
    format: str = FORMAT
    resize_method: str = "bilinear, antialiased (PIL Image.resize BILINEAR / torch interpolate antialias=True)"
    notes: list[str] = field(default_factory=list)
    weights: dict[str, Any] | None = None

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


# What a preprocess.json may hold: the bounds of an architecture file (`nas.genome.architecture`), the dtypes the
# exports write, and a size far above any real file (a BBBC021 one with every plate's statistics is a few KB).
MAX_BYTES = 4 * 1024 * 1024
MAX_CHANNELS = 64
MAX_CLASSES = 100_000
MAX_INPUT_SIZE = 4096
MAX_NAME = 255
MAX_TEXT = 10_000
DTYPES = ("uint8", "float32")
UINT8_RANGE = (0.0, 255.0)
OPTIONAL = ("weights",)  # keys a file may lack (written before they existed)
SOURCES = ("search", "retrained", "trained", "transfer")


def load_preprocess(path: str | Path) -> Preprocess:
    """Read `preprocess.json` and validate all of it (`parse_preprocess`); anything wrong is a one-line
    `UserError` naming the file and the field."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            blob = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{p} is missing (a model folder written by `nas export` or `nas train --save`)") from None
    except OSError as exc:
        raise UserError(f"cannot read {p}: {exc.strerror or exc}") from None
    if len(blob) > MAX_BYTES:
        raise UserError(f"{p} is over {MAX_BYTES // (1024 * 1024)} MB, far larger than any preprocess.json")
    try:
        data = json.loads(blob.decode("utf-8"), object_pairs_hook=unique_keys)
        return parse_preprocess(data)
    except UserError as exc:
        raise UserError(f"{p}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{p} is not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise UserError(f"{p} is nested too deeply to be a preprocess.json") from None
    except ValueError as exc:
        raise UserError(f"{p} is not JSON: {exc}") from None


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (JSON would silently keep the last)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise UserError("is given twice", key=shown(key, MAX_NAME).strip("'"))
        out[key] = value
    return out


def parse_preprocess(data: Any) -> Preprocess:
    """Validate a parsed preprocess.json against its format: every key present and known, each value of its type
    and within its range, lengths agreeing with `in_channels`. The error names the field (`std[2]: ...`)."""
    if not isinstance(data, dict):
        raise UserError(f"must be a JSON object, not {json_type(data)}")
    if data.get("format") != FORMAT:
        got = shown(data.get("format")) if "format" in data else "missing"
        raise UserError(f"must be {FORMAT!r} (the version this evonas reads), got {got}", key="format")
    known = list(Preprocess.__dataclass_fields__)
    unknown = [k for k in data if k not in known]
    if unknown:
        raise UserError("unknown key", key=shown(unknown[0], MAX_NAME).strip("'"))
    missing = [k for k in known if k not in data and k not in OPTIONAL]
    if missing:
        raise UserError("is missing", key=missing[0])
    channels = integer(data["in_channels"], "in_channels", 1, MAX_CHANNELS)
    fields = {
        "dataset": text(data["dataset"], "dataset", 64, pattern=True),
        "class_names": names(data["class_names"], "class_names", None, MAX_CLASSES),
        "channel_order": names(data["channel_order"], "channel_order", channels, channels),
        "input_size": integer(data["input_size"], "input_size", 1, MAX_INPUT_SIZE),
        "in_channels": channels,
        "input_dtype": choice(data["input_dtype"], "input_dtype", DTYPES),
        "resize": None if data["resize"] is None else integer(data["resize"], "resize", 1, MAX_INPUT_SIZE),
        "mean": numbers(data["mean"], "mean", channels),
        "std": numbers(data["std"], "std", channels, positive=True),
        "scale": number(data["scale"], "scale", positive=True),
        "round": flag(data["round"], "round"),
        "normalisation": text(data["normalisation"], "normalisation", MAX_TEXT),
        "plate_statistics": plates(data["plate_statistics"], channels),
        "evonas_version": text(data["evonas_version"], "evonas_version", MAX_NAME),
        "format": FORMAT,
        "resize_method": text(data["resize_method"], "resize_method", MAX_TEXT),
        "notes": texts(data["notes"], "notes"),
        "weights": trained(data.get("weights")),
    }
    fields["input_range"] = value_range(data["input_range"], fields["input_dtype"])
    return Preprocess(**fields)


def trained(value: Any) -> dict[str, Any] | None:
    """`weights`: null, or how the model's weights were trained (`source`, `epochs`, the accuracies known)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UserError(
            f"must be an object (source, epochs, accuracies) or null, not {json_type(value)}", key="weights"
        )
    unknown = [k for k in value if k not in ("source", "epochs", "val_accuracy", "test_accuracy")]
    if unknown:
        raise UserError("unknown key", key=f"weights.{shown(unknown[0], MAX_NAME).strip(chr(39))}")
    out: dict[str, Any] = {"source": choice(value.get("source"), "weights.source", SOURCES),
                           "epochs": integer(value.get("epochs"), "weights.epochs", 0, 10**9)}  # fmt: skip
    for name in ("val_accuracy", "test_accuracy"):
        if value.get(name) is not None:
            out[name] = number(value[name], f"weights.{name}")
            if not 0.0 <= out[name] <= 1.0:
                raise UserError(f"must be in [0, 1], got {shown(value[name])}", key=f"weights.{name}")
    return out


def json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "an integer",
             float: "a number", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def integer(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"must be an integer, not {json_type(value)}", key=key)
    if not low <= value <= high:
        raise UserError(f"must be in [{low}, {high}], got {shown(value)}", key=key)
    return value


def number(value: Any, key: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"must be a number, not {json_type(value)}", key=key)
    x = float(value) if not isinstance(value, int) or abs(value) < 2**1023 else float("inf")
    if not math.isfinite(x):
        raise UserError(f"must be a finite number, got {shown(value)}", key=key)
    if positive and not x > 0:
        raise UserError(f"must be > 0, got {shown(value)}", key=key)
    return x


def numbers(value: Any, key: str, length: int, positive: bool = False) -> list[float]:
    """A list of `length` finite numbers (one per input channel)."""
    if not isinstance(value, list):
        raise UserError(f"must be a list of {length} numbers (one per channel), not {json_type(value)}", key=key)
    if len(value) != length:
        raise UserError(f"has {len(value)} values, in_channels is {length}", key=key)
    return [number(v, f"{key}[{i}]", positive) for i, v in enumerate(value)]


def flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"must be true or false, not {json_type(value)}", key=key)
    return value


def text(value: Any, key: str, limit: int, pattern: bool = False) -> str:
    """A non-empty string of at most `limit` characters, without control characters (it is printed)."""
    if not isinstance(value, str):
        raise UserError(f"must be a string, not {json_type(value)}", key=key)
    if not value or len(value) > limit:
        raise UserError(f"must be 1 to {limit} characters, got {len(value)}", key=key)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise UserError(f"holds a control character: {shown(value)}", key=key)
    if pattern and not DATASET_NAME.fullmatch(value):
        raise UserError(f"must be a dataset name (letters, digits, '_', '-', '.'), got {shown(value)}", key=key)
    return value


def texts(value: Any, key: str) -> list[str]:
    if not isinstance(value, list):
        raise UserError(f"must be a list of strings, not {json_type(value)}", key=key)
    if len(value) > 100:
        raise UserError(f"has {len(value)} entries, at most 100", key=key)
    return [text(v, f"{key}[{i}]", MAX_TEXT) for i, v in enumerate(value)]


def names(value: Any, key: str, length: int | None, limit: int) -> list[str]:
    """Unique non-empty names; `length` of them when given (else 1 to `limit`)."""
    if not isinstance(value, list):
        raise UserError(f"must be a list of names, not {json_type(value)}", key=key)
    if length is not None and len(value) != length:
        raise UserError(f"has {len(value)} names, in_channels is {length}", key=key)
    if not 1 <= len(value) <= limit:
        raise UserError(f"must hold 1 to {limit} names, got {len(value)}", key=key)
    out = [text(v, f"{key}[{i}]", MAX_NAME) for i, v in enumerate(value)]
    seen: dict[str, int] = {}
    for i, name in enumerate(out):
        if name in seen:
            raise UserError(f"repeats {shown(name)} (also {key}[{seen[name]}])", key=f"{key}[{i}]")
        seen[name] = i
    return out


def choice(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise UserError(f"must be one of {', '.join(allowed)}, got {shown(value)}", key=key)
    return value


def value_range(value: Any, dtype: str) -> list[float] | None:
    """null, or [low, high] with low < high (inside 0-255 for uint8 input)."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise UserError(f"must be null or [low, high], got {shown(value)}", key="input_range")
    low, high = (number(v, f"input_range[{i}]") for i, v in enumerate(value))
    if not low < high:
        raise UserError(f"low {low} must be below high {high}", key="input_range")
    if dtype == "uint8" and not (UINT8_RANGE[0] <= low and high <= UINT8_RANGE[1]):
        raise UserError(f"[{low}, {high}] lies outside uint8's 0-255", key="input_range")
    return [low, high]


def plates(value: Any, channels: int) -> dict[str, dict[str, list[float]]] | None:
    """null, or plate name -> {"mean": [...], "std": [...]} per channel (BBBC021's DMSO statistics)."""
    key = "plate_statistics"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UserError(f"must be null or an object of plates, not {json_type(value)}", key=key)
    out = {}
    for plate, stats in value.items():
        where = f"{key}.{shown(plate, MAX_NAME).strip(chr(39))}"
        text(plate, where, MAX_NAME)
        if not isinstance(stats, dict) or sorted(stats) != ["mean", "std"]:
            raise UserError('must be {"mean": [...], "std": [...]}', key=where)
        out[plate] = {"mean": numbers(stats["mean"], f"{where}.mean", channels),
                      "std": numbers(stats["std"], f"{where}.std", channels, positive=True)}  # fmt: skip
    return out


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
    low, high = -3.0, 3.0
    if pre.input_range is not None and pre.input_range[1] - pre.input_range[0] < 1e4:  # bounded
        low, high = pre.input_range
    return low + (high - low) * torch.rand(shape, generator=generator)
