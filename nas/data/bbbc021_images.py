"""BBBC021 pixels: read one field's three 16-bit TIFFs, measure DMSO statistics, normalise, crop and resize.

These are the per-field steps the preprocessing runs in worker processes (so they import numpy, tifffile and
PIL, never torch). A field is stacked in the channel order Actin, Tubulin, DAPI (Kensert et al. 2019, which
makes it an RGB-like image for ImageNet-style networks). Normalisation is per plate and per channel: subtract
the mean and divide by the standard deviation of all pixels of that plate's DMSO fields, in raw intensity
units, before cropping; the DMSO moments of each field are combined exactly (Chan et al.'s pairwise formula),
so the statistics do not depend on how fields were grouped across workers.
"""

from pathlib import Path

import numpy as np
import tifffile

from nas.data.tiling import tiles
from nas.errors import UserError

GRID = (2, 2)  # 1280x1024 -> four 640x512 crops
FLOAT16_MAX = 60000.0  # keep normalised values finite in float16 even for a nearly constant DMSO channel


def read_channel(path: Path) -> np.ndarray:
    """One grayscale TIFF as stored (H, W); anything unreadable or not 2-D is a `UserError` naming the file."""
    try:
        pixels = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for damaged files; all mean "bad input file"
        raise UserError(f"cannot read TIFF {path}: {type(exc).__name__}: {exc}".replace("\n", " ")) from None
    pixels = np.squeeze(pixels)
    if pixels.ndim != 2:
        raise UserError(f"cannot read TIFF {path}: not a 2-D grayscale image (shape {pixels.shape})")
    return pixels


def read_field(root: Path, paths: tuple[str, ...]) -> np.ndarray:
    """(3, H, W) float32 in raw intensity units, channels in the order of `paths` (Actin, Tubulin, DAPI)."""
    first = read_channel(root / paths[0])
    out = np.empty((len(paths), *first.shape), dtype=np.float32)
    out[0] = first
    for i, p in enumerate(paths[1:], start=1):
        pixels = read_channel(root / p)
        if pixels.shape != first.shape:
            raise UserError(f"channels of one field differ in size: {', '.join(str(root / q) for q in paths)}")
        out[i] = pixels
    return out


def field_moments(root: Path, paths: tuple[str, ...]) -> np.ndarray:
    """Per-channel (pixel count, mean, variance) of one field as a (3, 3) float64 array (rows are channels)."""
    flat = read_field(root, paths).reshape(len(paths), -1)
    mean = flat.mean(axis=1, dtype=np.float64)
    var = flat.var(axis=1, dtype=np.float64)
    return np.stack([np.full(len(flat), flat.shape[1], dtype=np.float64), mean, var], axis=1)


def combine_moments(moments: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Exact pooled per-channel (mean, std) of several fields' (count, mean, variance) rows."""
    stacked = np.stack(moments)  # (fields, channels, 3)
    counts, means, variances = stacked[..., 0], stacked[..., 1], stacked[..., 2]
    total = counts.sum(axis=0)
    mean = (counts * means).sum(axis=0) / total
    var = (counts * (variances + (means - mean) ** 2)).sum(axis=0) / total
    return mean, np.sqrt(var)


def field_crops(root: Path, paths: tuple[str, ...], mean: np.ndarray, std: np.ndarray, size: int) -> np.ndarray:
    """The field normalised by its plate's DMSO (mean, std), cut 2x2 and resized: (4, 3, size, size) float16."""
    return plate_normalised_crops(read_field(root, paths), mean, std, size)


def plate_normalised_crops(field: np.ndarray, mean: np.ndarray, std: np.ndarray, size: int) -> np.ndarray:
    """A raw field (3, H, W: Actin, Tubulin, DAPI, 16-bit counts) as the network's input, (4, 3, size, size).

    What a BBBC021 model needs in front of it: `mean` and `std` are the field's plate's DMSO statistics (the
    `plate_statistics` of `preprocess.json`), which the model file cannot apply itself since the plate is not
    in the image. Give the result, as float32, to `model.ts` or `model.onnx`.
    """
    image = np.array(field, dtype=np.float32)
    image -= np.asarray(mean, dtype=np.float32)[:, None, None]
    image /= np.maximum(np.asarray(std, dtype=np.float32), 1e-6)[:, None, None]
    crops = tiles(image, *GRID, size)
    return np.clip(crops, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)
