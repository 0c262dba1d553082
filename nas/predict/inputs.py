"""What `nas predict` runs on: image files, `.npy` arrays, folders of images, or a config's test split.

Every input becomes a list of `Item`s, each an image in the model's input units (`preprocess.json`) with its
label when one is known:

- an image file (`.png`, `.jpg`, `.jpeg`, `.bmp`, `.tif`, `.tiff`) is decoded exactly as `imagefolder` decodes
  training images (8-bit greyscale stays one channel, 16-bit greyscale is scaled to 8 bits, anything else is
  RGB) and resized to the model's input size by the same filter when its size differs; a greyscale image is
  repeated to three channels for a colour model, as training on a mixed folder does. A colour image for a
  one-channel model (or any file for a model of another channel count) is a one-line error;
- a `.npy` file holds images already in the model's input units: (H, W), (C, H, W) or (N, C, H, W) (a 3-D array
  is N one-channel images when the model takes one channel and the first axis is not 1);
- a folder is searched recursively, in sorted order, for image files; a file whose parent folder is named after
  a class (the imagefolder layout, e.g. `root/test/<class>/x.png`) carries that class as its label;
- a config (`.yaml`/`.yml`) stands for its dataset's test split with the dataset's protocol: the images as the
  trainer holds them, their labels, and the groups of BBBC021 treatments or BBBC014 wells that accuracy is
  computed over.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nas.errors import UserError
from nas.model.preprocess import Preprocess

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
CONFIG_SUFFIXES = {".yaml", ".yml"}


@dataclass
class Item:
    """One image to predict: a name for the CSV, its label (class index) if known, and how to load it."""

    name: str
    label: int | None
    load: Callable[[], np.ndarray]


@dataclass
class Inputs:
    """The items of every INPUT, and the protocol's groups when the input is a grouped test split."""

    items: list[Item] = field(default_factory=list)
    groups: np.ndarray | None = None
    group_reduce: str = "median"
    protocol: str | None = None


def decode_file(path: Path, pre: Preprocess) -> np.ndarray:
    """An image file as (C, H, W) in the model's input units, decoded and resized as training did."""
    from nas.data.imagefolder import decode

    if pre.dataset == "bbbc021":
        raise UserError(f"{path}: a BBBC021 model takes plate-normalised crops, not image files; pass the config, "
                        "or .npy crops made with nas.data.bbbc021_images.plate_normalised_crops")  # fmt: skip
    pixels = decode(path.read_bytes(), str(path), pre.input_size)
    have = 1 if pixels.ndim == 2 else pixels.shape[2]
    if have == 1 and pre.in_channels == 3:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    elif have != pre.in_channels:
        raise UserError(f"{path} has {have} channel(s) ({'grey' if have == 1 else 'RGB'}), the model takes "
                        f"{pre.in_channels} ({', '.join(pre.channel_order)})")  # fmt: skip
    chw = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, 2, 0)
    return pre.stored_to_input(chw)


def npy_images(path: Path, pre: Preprocess) -> np.ndarray:
    """A `.npy` file's images as (N, C, H, W) in the model's dtype; the shape must fit the model."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[:, None] if pre.in_channels == 1 and x.shape[0] != 1 else x[None]
    want = (pre.in_channels, pre.input_size, pre.input_size)
    if x.ndim != 4 or x.shape[1] != pre.in_channels:
        raise UserError(f"{path}: images of shape {x.shape[1:] if x.ndim == 4 else x.shape} have the wrong number "
                        f"of channels; the model takes {want} ({', '.join(pre.channel_order)})")  # fmt: skip
    if x.shape[2:] != want[1:]:
        from nas.data.resizing import resize_images

        x = resize_images(np.ascontiguousarray(x), pre.input_size)
    return x.astype(pre.input_dtype, copy=False)


def label_of(path: Path, pre: Preprocess) -> int | None:
    """The class named by the file's parent folder (imagefolder layout), or None."""
    name = path.parent.name
    return pre.class_names.index(name) if name in pre.class_names else None


def file_items(path: Path, pre: Preprocess, label: int | None) -> list[Item]:
    if path.suffix.lower() == ".npy":
        x = npy_images(path, pre)
        if len(x) == 1:
            return [Item(str(path), label, lambda: x[0])]
        return [Item(f"{path}[{i}]", label, lambda i=i: x[i]) for i in range(len(x))]
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [Item(str(path), label, lambda: decode_file(path, pre))]
    raise UserError(f"{path}: not an image (.png, .jpg, .bmp, .tif), a .npy array, a folder or a config")


def folder_files(folder: Path) -> Iterator[Path]:
    """Image and .npy files under `folder`, recursively, sorted; hidden files and folders are skipped."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).parts
        if any(part.startswith(".") for part in relative) or not path.is_file() or path.is_symlink():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            yield path


def config_inputs(path: Path, pre: Preprocess) -> Inputs:
    """A config's test split, as the trainer holds it, with labels and the protocol's groups."""
    from nas.config import load_config
    from nas.data.loading import load_dataset

    config = load_config(path)
    if config.dataset.name != pre.dataset:
        raise UserError(f"{path}: dataset.name is {config.dataset.name!r}, the model was trained on {pre.dataset!r}")
    data = load_dataset(config.dataset, config.seed, full=True)
    if data.x_test is None or data.y_test is None or not len(data.x_test):
        raise UserError(f"{path}: the dataset has no test split to predict on")
    if list(data.class_names) != list(pre.class_names):
        raise UserError(f"{path}: the dataset's classes {data.class_names} are not the model's {pre.class_names}")
    if data.in_channels != pre.in_channels or data.input_size != pre.input_size:
        raise UserError(f"{path}: the test images are {data.in_channels}x{data.input_size}x{data.input_size}, "
                        f"the model takes {pre.in_channels}x{pre.input_size}x{pre.input_size}")  # fmt: skip
    x, y = data.x_test, data.y_test
    items = [Item(f"{path.name}:test[{i}]", int(y[i]), lambda i=i: pre.stored_to_input(x[i])) for i in range(len(y))]
    protocol = {"bbbc021": "treatments", "bbbc014": "wells"}.get(pre.dataset)
    return Inputs(items, data.test_groups, data.group_reduce, protocol if data.test_groups is not None else None)


def gather(inputs: list[str], pre: Preprocess) -> Inputs:
    """Every INPUT's items, in the order given; a config must be the only input (it brings its protocol)."""
    paths = [Path(p) for p in inputs]
    configs = [p for p in paths if p.suffix.lower() in CONFIG_SUFFIXES]
    if configs:
        if len(paths) > 1:
            raise UserError("a config stands for its whole test split: give it as the only INPUT")
        return config_inputs(configs[0], pre)
    out = Inputs()
    for p in paths:
        if p.is_dir():
            files = list(folder_files(p))
            if not files:
                raise UserError(f"{p}: no image files (.png, .jpg, .bmp, .tif) under this folder")
            for f in files:
                out.items += file_items(f, pre, label_of(f, pre))
        elif p.is_file():
            out.items += file_items(p, pre, label_of(p, pre))
        else:
            raise UserError(f"{p} does not exist")
    return out
