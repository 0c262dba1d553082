"""BBBC014 (NF-kB translocation, one 96-well plate; protocol of Kensert et al. 2019): the dataset and its folds.

`dataset.root` is the folder with the 192 BMP files of `BBBC014_v1_images.zip` (or its parent holding a
`BBBC014_v1_images` folder). File -> well: the files are sorted in natural order (digit runs compared as
numbers, case ignored), which on the Broad names `Channel 1-01-A-01-00.Bmp` .. `Channel 2-96-H-12-00.Bmp` is
channel, then well number; file k (1-based) is channel 1 for k <= 96 and channel 2 after, and well
(k - 1) mod 96 in row-major order (A01, A02, .., A12, B01, ..). Any name that spells a channel
(`Channel N`) or a well (`-A-01-`) must agree with its place, so a renamed or missing file is an error naming
it, never a silently shifted label. Channel 1 is the NF-kB reporter (FITC), channel 2 the nuclei (DAPI); the
arrays stack them in that order (2 channels).

Rows A-D are MCF7, rows E-H A549; columns 1-4 (the four highest TNF-alpha concentrations) are the positive
class, columns 9-12 the negative class, columns 5-8 are not used: 32 wells a cell line. Each well's image is
cut into a 4x4 grid (256x256 tiles of a 1024x1024 image; in general H/4 x W/4, so the real 1360x1024 images
give 340x256 tiles, squashed to square as in `nas.data.tiling`) and each tile is resized to `dataset.resize`
(default: the tile height, 256 on the real plate). Tiles are uint8; the `ImageData` carries the per-channel
statistics of the training tiles. Decoded tiles are cached (`nas.data.cache`, keyed by the files' names,
sizes and modification times and the size).

Protocol: train on the cell line `dataset.train_cell_line`, test on the other; a well is positive when the
mean positive probability of its 16 tiles is >= 0.5 (`group_reduce="mean"`, argmax of the mean). The search
view carves a stratified `dataset.validation_fraction` of the training cell line's wells (at least one a
class) as validation; the folds (`nas train --cv`, `nas baseline`) are both directions, the configured one
first.
"""

import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from nas.config import DatasetConfig
from nas.data.assemble import channel_stats
from nas.data.cache import cached_arrays
from nas.data.dataset import DATASETS, ImageData
from nas.data.fold import FOLDS, Fold
from nas.data.tiling import tiles
from nas.errors import UserError

log = logging.getLogger(__name__)

ROWS = "ABCDEFGH"
COLUMNS = 12
WELLS = len(ROWS) * COLUMNS
CELL_LINES = {"MCF7": "ABCD", "A549": "EFGH"}
POSITIVE_COLUMNS = (1, 2, 3, 4)
NEGATIVE_COLUMNS = (9, 10, 11, 12)
CLASS_NAMES = ["negative", "positive"]
GRID = (4, 4)
SUBFOLDER = "BBBC014_v1_images"
CACHE_VERSION = 1
CHANNEL_IN_NAME = re.compile(r"channel\s*(\d+)", re.IGNORECASE)
WELL_IN_NAME = re.compile(r"-([A-H])-(\d{1,2})(?=-|\.)", re.IGNORECASE)


@dataclass(frozen=True)
class Well:
    """One used well: its name (`A01`), cell line, class (1 positive, 0 negative) and its two channel files."""

    name: str
    cell_line: str
    label: int
    files: tuple[Path, Path]


def natural_key(name: str) -> list:
    """Sort key comparing digit runs as numbers and text without case: `x-2` before `x-10`."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def well_name(position: int) -> str:
    """Row-major well name of position 0..95: 0 -> A01, 12 -> B01."""
    return f"{ROWS[position // COLUMNS]}{position % COLUMNS + 1:02d}"


def image_folder(config: DatasetConfig) -> Path:
    if config.root is None:
        raise UserError("must name the folder holding the BBBC014 BMP files", key="dataset.root")
    root = Path(config.root)
    if not root.is_dir():
        raise UserError(f"not a folder: {root}", key="dataset.root")
    if not bmp_files(root) and (root / SUBFOLDER).is_dir():
        return root / SUBFOLDER
    return root


def bmp_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".bmp"), key=lambda p: natural_key(p.name)
    )


def check_name(path: Path, channel: int, well: str) -> None:
    """A name that spells its channel or well must match the place the sort gave it."""
    found = CHANNEL_IN_NAME.search(path.name)
    if found and int(found.group(1)) != channel:
        raise UserError(f"BBBC014 file {path} sorts as channel {channel} but its name says channel {found.group(1)}")
    found = WELL_IN_NAME.search(path.name)
    if found and f"{found.group(1).upper()}{int(found.group(2)):02d}" != well:
        raise UserError(f"BBBC014 file {path} sorts as well {well} but its name says {found.group(1)}{found.group(2)}")


def plate_files(folder: Path) -> dict[str, tuple[Path, Path]]:
    """Well name -> (channel 1 file, channel 2 file) for all 96 wells (see the module docstring)."""
    files = bmp_files(folder)
    if len(files) != 2 * WELLS:
        raise UserError(
            f"expected 192 BMP files (96 wells x 2 channels) in {folder}, found {len(files)}", key="dataset.root"
        )
    for k, path in enumerate(files):
        check_name(path, 1 + k // WELLS, well_name(k % WELLS))
    return {well_name(p): (files[p], files[WELLS + p]) for p in range(WELLS)}


def protocol_wells(folder: Path) -> list[Well]:
    """The 64 used wells (columns 1-4 positive, 9-12 negative), MCF7 first, each in row-major order."""
    files = plate_files(folder)
    wells = []
    for line, rows in CELL_LINES.items():
        for row in rows:
            for col in (*POSITIVE_COLUMNS, *NEGATIVE_COLUMNS):
                name = f"{row}{col:02d}"
                wells.append(Well(name, line, int(col in POSITIVE_COLUMNS), files[name]))
    return sorted(wells, key=lambda w: (list(CELL_LINES).index(w.cell_line), w.name))


def read_bmp(path: Path) -> np.ndarray:
    """An 8-bit grayscale BMP as (H, W) uint8 (a colour file is converted to luminance)."""
    try:
        with Image.open(path) as img:
            img.load()
            gray = img if img.mode == "L" else img.convert("L")
            return np.asarray(gray, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise UserError(f"cannot read BMP {path}: {type(exc).__name__}: {exc}".replace("\n", " ")) from None


def decode(wells: list[Well], resize: int | None) -> dict[str, np.ndarray]:
    """(wells, 16, 2, size, size) uint8 tiles of every used well; size is `resize`, or the tile height of the
    first image (256 on the real 1024-high plate)."""
    out = None
    for i, well in enumerate(tqdm(wells, desc="BBBC014 tiles", unit="well", file=sys.stderr, disable=None)):
        channels = [read_bmp(p) for p in well.files]
        if channels[0].shape != channels[1].shape:
            raise UserError(f"BBBC014 channels of well {well.name} differ in size: {well.files[0]}, {well.files[1]}")
        if out is None:
            size = resize or max(1, channels[0].shape[0] // GRID[0])
            out = np.empty((len(wells), GRID[0] * GRID[1], 2, size, size), dtype=np.uint8)
        out[i] = tiles(np.stack(channels), *GRID, out.shape[-1])
    return {"tiles": out}


@dataclass
class TileSet:
    """Every tile of the used wells, well-major, with each tile's well index."""

    wells: list[Well]
    x: np.ndarray
    well: np.ndarray
    tile: np.ndarray

    @property
    def label(self) -> np.ndarray:
        return np.array([w.label for w in self.wells], dtype=np.int64)[self.well]

    def of_line(self, cell_line: str) -> np.ndarray:
        return np.array([w.cell_line == cell_line for w in self.wells])[self.well]


def check_options(config: DatasetConfig) -> None:
    """Refuse a `dataset.train_subset` below 1, with its key, rather than ignore it: the protocol trains on every
    well of one cell line and tests on the other (the comparison with Kensert et al.), and with 16 wells a line
    there is no subset that keeps both classes and the protocol's name honest. A cheaper search takes fewer
    `fitness.epochs`, a smaller `dataset.resize` or `search.fidelity`."""
    if config.train_subset != 1.0:
        raise UserError(
            f"is {config.train_subset:g}, but bbbc014 trains on every well of its training cell line (its "
            "cross-cell-line protocol needs them); remove it, and for a cheaper search lower fitness.epochs or "
            "dataset.resize, or use search.fidelity",
            key="dataset.train_subset",
        )


def load_tiles(config: DatasetConfig) -> TileSet:
    """The tiles from the cache, or decoded once from the BMPs and cached (after the options are checked)."""
    check_options(config)
    wells = protocol_wells(image_folder(config))
    identity = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for w in wells for p in w.files]
    root = str(image_folder(config).resolve())
    parts = {"version": CACHE_VERSION, "root": root, "files": identity, "resize": config.resize}
    arrays = cached_arrays("bbbc014", parts, config.cache_dir, lambda: decode(wells, config.resize))
    x = arrays["tiles"]
    per_well = x.shape[1]
    return TileSet(wells, x.reshape(-1, *x.shape[2:]), np.repeat(np.arange(len(wells)), per_well),
                   np.tile(np.arange(per_well), len(wells)))  # fmt: skip


def other_line(cell_line: str) -> str:
    return next(line for line in CELL_LINES if line != cell_line)


def validation_wells(ts: TileSet, train_line: str, fraction: float, seed: int) -> np.ndarray:
    """Indices of the training cell line's wells carved as validation: per class round(fraction * n) wells,
    at least one and never all, drawn by `seed`."""
    rng = np.random.default_rng(seed)
    candidates = np.array([i for i, w in enumerate(ts.wells) if w.cell_line == train_line])
    labels = np.array([ts.wells[i].label for i in candidates])
    picked = []
    for c in range(len(CLASS_NAMES)):
        members = candidates[labels == c]
        k = min(max(1, round(fraction * len(members))), len(members) - 1)
        picked.extend(rng.choice(members, size=k, replace=False).tolist())
    return np.sort(np.array(picked, dtype=np.int64))


def image_data(ts: TileSet, train: np.ndarray, val: np.ndarray | None, test: np.ndarray, **info) -> ImageData:
    mean, std = channel_stats(ts.x[train])

    def groups(mask: np.ndarray | None) -> np.ndarray | None:
        return None if mask is None else ts.well[mask][:, None]

    counts = {"train": int(train.sum()), "val": 0 if val is None else int(val.sum()), "test": int(test.sum())}
    return ImageData(
        x_train=ts.x[train],
        y_train=ts.label[train],
        x_val=None if val is None else ts.x[val],
        y_val=None if val is None else ts.label[val],
        x_test=ts.x[test],
        y_test=ts.label[test],
        num_classes=2,
        class_names=list(CLASS_NAMES),
        mean=mean,
        std=std,
        val_groups=groups(val),
        test_groups=groups(test),
        info={"dataset": "bbbc014", "counts": counts, "aggregation": "well", **info},
        group_reduce="mean",
    )


@DATASETS.register("bbbc014")
def load_bbbc014(config: DatasetConfig, seed: int, full: bool) -> ImageData:
    """Train on `dataset.train_cell_line` (less a validation carve unless `full`), test on the other line."""
    ts = load_tiles(config)
    train_line = config.train_cell_line
    train, test = ts.of_line(train_line), ts.of_line(other_line(train_line))
    val = None
    if not full:
        val = np.isin(ts.well, validation_wells(ts, train_line, config.validation_fraction, seed))
        train = train & ~val
    return image_data(ts, train, val, test, train_cell_line=train_line, seed=seed, full=full)


def test_table(ts: TileSet, mask: np.ndarray) -> dict[str, np.ndarray]:
    wells = [ts.wells[i] for i in ts.well[mask]]
    return {
        "cell_line": np.array([w.cell_line for w in wells]),
        "well": np.array([w.name for w in wells]),
        "tile": ts.tile[mask],
    }


@FOLDS.register("bbbc014")
def cell_line_folds(config: DatasetConfig, seed: int) -> Iterator[Fold]:
    """Two folds: train on `dataset.train_cell_line` and test on the other, then the reverse."""
    ts = load_tiles(config)
    first = config.train_cell_line
    for train_line in (first, other_line(first)):
        test_line = other_line(train_line)
        train, test = ts.of_line(train_line), ts.of_line(test_line)
        data = image_data(ts, train, None, test, train_cell_line=train_line, seed=seed)
        yield Fold(f"{train_line}->{test_line}", data, test_table(ts, test), ("cell_line", "well"), level="well")
