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
  computed over. Each image also carries what identifies it (`Inputs.columns`): for BBBC021 the compound,
  concentration, plate, well, replicate, field image and crop; for BBBC014 the cell line, well and tile; for an
  imagefolder the file.

Anything else on the command line (a FIFO, a device, a broken link) is refused by what it is, and an image file
declaring more than PIL's `MAX_IMAGE_PIXELS` is refused from its header, before it is decoded.
"""

import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.data.aggregate import Reduce
from nas.errors import UserError
from nas.model.preprocess import Preprocess
from nas.predict.files import file_kind

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
CONFIG_SUFFIXES = {".yaml", ".yml"}


@dataclass
class Item:
    """One image to predict: a name for the CSV, its label (class index) if known, and how to load it."""

    name: str
    label: int | None
    load: Callable[[], np.ndarray]
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class Inputs:
    """The items of every INPUT, and the protocol's groups when the input is a grouped test split."""

    items: list[Item] = field(default_factory=list)
    groups: np.ndarray | None = None
    group_reduce: Reduce = "median"
    protocol: str | None = None
    columns: list[str] = field(default_factory=list)


def decode_file(path: Path, pre: Preprocess) -> np.ndarray:
    """An image file as (C, H, W) in the model's input units, decoded and resized as training did."""
    from nas.data.imagefolder import decode

    if pre.dataset == "bbbc021":
        raise UserError(f"{path}: a BBBC021 model takes plate-normalised crops, not image files; pass the config, "
                        "or .npy crops made with nas.data.bbbc021_images.plate_normalised_crops")  # fmt: skip
    check_pixels(path)
    pixels = decode(path.read_bytes(), str(path), pre.input_size)
    have = 1 if pixels.ndim == 2 else pixels.shape[2]
    if have == 1 and pre.in_channels == 3:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    elif have != pre.in_channels:
        raise UserError(f"{path} has {have} channel(s) ({'grey' if have == 1 else 'RGB'}), the model takes "
                        f"{pre.in_channels} ({', '.join(pre.channel_order)})")  # fmt: skip
    chw = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, 2, 0)
    return pre.stored_to_input(chw)


def check_pixels(path: Path) -> None:
    """Refuse an image whose header declares more than PIL's `MAX_IMAGE_PIXELS` (a decompression bomb: a few
    bytes that would decode to gigabytes), reading the header only."""
    from PIL import Image, UnidentifiedImageError

    limit, saved = Image.MAX_IMAGE_PIXELS, Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # read the declared size whatever it is; nothing is decoded here
        with warnings.catch_warnings(), Image.open(path) as img:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"cannot decode image {path}: {exc}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    if limit is not None and width * height > limit:
        raise UserError(f"{path}: image of {width * height:,} pixels ({width}x{height}) exceeds the limit of "
                        f"{limit:,} (decompression bomb?)")  # fmt: skip


def npy_images(path: Path, pre: Preprocess) -> np.ndarray:
    """A `.npy` file's images as (N, C, H, W) in the model's dtype; the shape must fit the model."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    return as_images(x, pre, str(path))


def as_images(x: np.ndarray, pre: Preprocess, name: str) -> np.ndarray:
    """An array of images in the model's input units, (H, W), (C, H, W) or (N, C, H, W), as (N, C, H, W) in
    the model's dtype and size (a 3-D array is N one-channel images when the model takes one channel and the
    first axis is not 1); `name` says where it came from in the error."""
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[:, None] if pre.in_channels == 1 and x.shape[0] != 1 else x[None]
    want = (pre.in_channels, pre.input_size, pre.input_size)
    if x.ndim != 4 or x.shape[1] != pre.in_channels:
        raise UserError(f"{name}: images of shape {x.shape[1:] if x.ndim == 4 else x.shape} have the wrong number "
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
    columns, rows = test_metadata(config, data)
    items = [Item(f"{path.name}:test[{i}]", int(y[i]), lambda i=i: pre.stored_to_input(x[i]),
                  rows[i] if rows else {}) for i in range(len(y))]  # fmt: skip
    protocol = {"bbbc021": "treatments", "bbbc014": "wells"}.get(pre.dataset)
    grouped = protocol if data.test_groups is not None else None
    return Inputs(items, data.test_groups, data.group_reduce, grouped, columns if rows else [])


def test_metadata(config: Any, data: Any) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, one row a test image) naming each test image as its dataset knows it; none for a dataset kind
    whose images have no identity beyond their index (digits, CIFAR, SVHN), or when the dataset's listing does
    not line up with its test arrays (a warning: the predictions stand without it)."""
    makers = {"bbbc021": bbbc021_metadata, "bbbc014": bbbc014_metadata, "imagefolder": imagefolder_metadata}
    maker = makers.get(config.dataset.name)
    if maker is None:
        return [], []
    table = maker(config, data)
    if table is None or any(len(v) != len(data.y_test) for v in table.values()):
        log.warning("the test images' metadata does not line up with the test split; rows carry their index only")
        return [], []
    columns = list(table)
    return columns, [{c: cell(table[c][i]) for c in columns} for i in range(len(data.y_test))]


def cell(value: Any) -> str:
    """A metadata value for the CSV: numbers as Python prints them (0.3, not 0.29999999999999999)."""
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def bbbc021_metadata(config: Any, data: Any) -> dict[str, Any] | None:
    """Compound, concentration, plate, well, replicate, field image (its DAPI file) and crop of each test crop,
    from the metadata CSVs alone: the test crops are the held-out compounds' fields, field-major, in table order
    (`nas.data.bbbc021`), so the table indexed like the crops, without their pixels, lines up with them."""
    from nas.data.bbbc021 import index_crops, members, metadata_folder, test_table
    from nas.data.bbbc021_metadata import load_table

    table = load_table(metadata_folder(config.dataset))
    compounds = list(data.info.get("test_compounds", []))
    fields = sum(f.compound in compounds for f in table.fields)
    if not fields or len(data.y_test) % fields:
        return None
    per_field = len(data.y_test) // fields
    crops = index_crops(table, np.zeros((len(table.fields), per_field, 1), dtype=np.uint8))  # ids, no pixels
    rows = test_table(crops, members(crops, compounds))
    return {k: rows[k] for k in ("compound", "concentration", "plate", "well", "replicate", "image", "crop")}


def bbbc014_metadata(config: Any, data: Any) -> dict[str, Any] | None:
    """Cell line, well and tile of each test tile: the other cell line's wells, well-major (`nas.data.bbbc014`)."""
    from nas.data.bbbc014 import TileSet, image_folder, other_line, protocol_wells, test_table

    wells = protocol_wells(image_folder(config.dataset))
    line = other_line(config.dataset.train_cell_line)
    count = sum(w.cell_line == line for w in wells)
    if not count or len(data.y_test) % count:
        return None
    per_well = len(data.y_test) // count
    ids = np.arange(len(wells))
    tiles = TileSet(
        wells,
        np.zeros((len(wells) * per_well, 1), dtype=np.uint8),
        np.repeat(ids, per_well),
        np.tile(np.arange(per_well), len(wells)),
    )
    return test_table(tiles, tiles.of_line(line))


def imagefolder_metadata(config: Any, data: Any) -> dict[str, Any] | None:
    """The file of each test image: the test entries in the order the dataset decodes them (`nas.data.imagefolder`)."""
    from nas.data.imagefolder import FolderSource, open_source

    source = open_source(config.dataset)
    names = [e.name for e in source.entries() if e.split == "test"]
    if isinstance(source, FolderSource):
        return {"file": [str(source.root / n) for n in names]}
    return {"file": [f"{source.path}:{n}" for n in names]}


def gather(inputs: list[str], pre: Preprocess) -> Inputs:
    """Every INPUT's items, in the order given; a config must be the only input (it brings its protocol)."""
    paths = [Path(p) for p in inputs]
    configs = [p for p in paths if p.suffix.lower() in CONFIG_SUFFIXES]
    if configs:
        if len(paths) > 1:
            raise UserError("a config stands for its whole test split: give it as the only INPUT")
        kind = file_kind(configs[0])
        if kind != "a file":
            raise UserError(f"{configs[0]} " + ("does not exist" if kind == "missing" else f"is {kind}, not a config"))
        return config_inputs(configs[0], pre)
    out = Inputs()
    for p in paths:
        kind = file_kind(p)
        if kind == "a folder":
            files = list(folder_files(p))
            if not files:
                raise UserError(f"{p}: no image files (.png, .jpg, .bmp, .tif) under this folder")
            for f in files:
                out.items += file_items(f, pre, label_of(f, pre))
        elif kind == "a file":
            out.items += file_items(p, pre, label_of(p, pre))
        elif kind == "missing":
            raise UserError(f"{p} does not exist")
        else:
            raise UserError(f"{p} is {kind}, not an image file or folder")
    return out
