"""The dataset contract: every dataset kind returns an `ImageData`, and registers itself in `DATASETS`.

Data is held as whole NCHW arrays (uint8 for 8-bit images, float16/float32 for microscopy already normalised),
because the trainer keeps it as tensors on the training device and slices batches from them: no per-sample
Python, no DataLoader. A dataset kind is one module under `nas/data/` with a function registered as
`@DATASETS.register("name")` taking `(config: DatasetConfig, seed: int, full: bool) -> ImageData`; `full=True`
means "no validation carve-out: train on the whole training split" (the retraining of an exported network).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from nas.config import DatasetConfig
from nas.registry import Registry


@dataclass
class ImageData:
    """Train / validation / test arrays of one dataset and options, ready for the trainer.

    `mean` and `std` are per-channel statistics of the training split in the arrays' own units (0-255 for
    uint8); the trainer normalises on the device. `*_groups`, when present, are integer ids of shape (N, levels)
    from fine to coarse (e.g. well, treatment): accuracy is then computed on aggregated predictions
    (`nas.data.aggregate`), as the cell-profiling protocols require, reducing members by `group_reduce`
    (median for BBBC021 treatments, mean for BBBC014 wells).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_groups: np.ndarray | None = None
    test_groups: np.ndarray | None = None
    info: dict[str, object] = field(default_factory=dict)
    group_reduce: Literal["median", "mean"] = "median"

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.x_train.shape[2])


DatasetLoader = Callable[[DatasetConfig, int, bool], ImageData]
DATASETS: Registry[DatasetLoader] = Registry("dataset")
