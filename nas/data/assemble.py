"""From a dataset's decoded arrays to the `ImageData` the trainer takes: validation carve and channel statistics.

Every kind that has a plain train/test split ends here, so they all split and normalise the same way: the
validation set is a stratified `dataset.validation_fraction` of the training split carved by the run's seed
(none with `full`, the retraining on the whole training split), and the per-channel mean and standard deviation
are those of the images the network trains on, in the arrays' own units (0-255 for uint8).
"""

from typing import Any

import numpy as np

from nas.config import DatasetConfig
from nas.data.dataset import ImageData
from nas.data.splits import validation_split
from nas.errors import UserError

STATS_CHUNK = 2048


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of NCHW `x`, in float64, a chunk at a time.

    A constant channel gets a standard deviation of 1, so that normalising it gives zeros rather than NaN.
    """
    total = np.zeros(x.shape[1], dtype=np.float64)
    squares = np.zeros(x.shape[1], dtype=np.float64)
    for start in range(0, len(x), STATS_CHUNK):
        chunk = x[start : start + STATS_CHUNK].astype(np.float64)
        total += chunk.sum(axis=(0, 2, 3))
        squares += np.square(chunk).sum(axis=(0, 2, 3))
    count = max(x.shape[0] * x.shape[2] * x.shape[3], 1)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    std[std < 1e-6] = 1.0
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def assemble(
    arrays: dict[str, np.ndarray], cfg: DatasetConfig, seed: int, full: bool, info: dict[str, Any]
) -> ImageData:
    """Build the `ImageData` of decoded `arrays` (x_train, y_train, class_names, and x_test, y_test if any)."""
    x, y = arrays["x_train"], arrays["y_train"].astype(np.int64)
    if len(y) == 0:
        raise UserError("leaves no training images", key="dataset.train_subset")
    x_val = y_val = None
    if not full:
        train, val = validation_split(y, cfg.validation_fraction, seed)
        if len(val) == 0:
            raise UserError(f"carves no images from {len(y)} training images", key="dataset.validation_fraction")
        x, y, x_val, y_val = x[train], y[train], x[val], y[val]
    has_test = "x_test" in arrays and len(arrays["x_test"]) > 0
    mean, std = channel_stats(x)
    class_names = [str(c) for c in arrays["class_names"]]
    counts = {"train": len(y), "val": 0 if y_val is None else len(y_val)}
    counts["test"] = len(arrays["x_test"]) if has_test else 0
    return ImageData(
        x_train=x,
        y_train=y,
        x_val=x_val,
        y_val=y_val,
        x_test=arrays["x_test"] if has_test else None,
        y_test=arrays["y_test"].astype(np.int64) if has_test else None,
        num_classes=len(class_names),
        class_names=class_names,
        mean=mean,
        std=std,
        info={"dataset": cfg.name, "counts": counts, "full": full, "seed": seed, **info},
    )
