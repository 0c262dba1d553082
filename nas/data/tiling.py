"""Cutting a microscopy field into a grid of tiles and resizing each tile to the network's square input.

Both cell-profiling protocols do this: BBBC021 cuts each 1280x1024 field into 2x2 crops of 640x512, BBBC014 each
field into a 4x4 grid. The grid is taken over whatever size the image has (tile = floor(H/rows) x
floor(W/cols); a remainder row or column of pixels is dropped), so synthetic or binned images work the same.

Aspect decision: a tile is resized to `size` x `size`, squashing its aspect ratio (640x512 -> square scales the
width by 0.8), as Kensert et al. did (224x224 / 299x299 inputs from 640x512 crops, and BBBC014's 1360x1024
fields squashed to 1024x1024 before tiling). Squashing keeps every pixel of the crop in view; cropping to a
square would drop a fifth of each crop's cells, and padding would feed the network borders no real image has.
Resizing is PIL's antialiased bilinear filter (a downscale averages over the footprint, so no aliasing of
fine cell texture), applied per channel in float32 (or uint8 for 8-bit images), in the worker processes,
without torch.
"""

import numpy as np
from PIL import Image


def split_grid(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(C, H, W) -> (rows*cols, C, H//rows, W//cols), tiles in row-major order (top-left first)."""
    c, h, w = image.shape
    th, tw = h // rows, w // cols
    if th < 1 or tw < 1:
        raise ValueError(f"a {h}x{w} image is too small for a {rows}x{cols} grid")
    cut = image[:, : th * rows, : tw * cols].reshape(c, rows, th, cols, tw)
    return cut.transpose(1, 3, 0, 2, 4).reshape(rows * cols, c, th, tw)


def resize_square(tile: np.ndarray, size: int) -> np.ndarray:
    """(C, h, w) -> (C, size, size) by antialiased bilinear resampling; float32 in float32 out, uint8 likewise."""
    if tile.shape[1:] == (size, size):
        return tile.copy()
    dtype = np.uint8 if tile.dtype == np.uint8 else np.float32
    resample = Image.Resampling.BILINEAR
    return np.stack(
        [
            np.asarray(Image.fromarray(np.ascontiguousarray(ch, dtype=dtype)).resize((size, size), resample))
            for ch in tile
        ]
    )


def tiles(image: np.ndarray, rows: int, cols: int, size: int) -> np.ndarray:
    """The grid of `image` (C, H, W), each tile resized to size x size: (rows*cols, C, size, size)."""
    return np.stack([resize_square(t, size) for t in split_grid(image, rows, cols)])
