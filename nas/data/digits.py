"""`digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), the offline quickstart.

The pixels (0-16) are scaled to uint8 0-255 so that every image dataset has the same units, and shaped 1x8x8.
The set has no test split of its own; a fixed stratified 20% (359 images) is held out as the test split with a
seed of its own, so that it is the same images for every run and every seed, like CIFAR's official test set.
It is bundled with scikit-learn and loads in milliseconds, so it is not cached. The file is read straight from
scikit-learn's package folder (the CSV that `sklearn.datasets.load_digits` parses, the same numbers): importing
scikit-learn costs over a second, paid by every process that trains on digits (each worker, each resumed run).
"""

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from nas.config import DatasetConfig
from nas.data.assemble import assemble
from nas.data.dataset import DATASETS, ImageData
from nas.data.resizing import resize_images
from nas.data.splits import stratified_pick, training_subset
from nas.errors import UserError

TEST_FRACTION = 0.2
TEST_SEED = 20_240_601


def digits_file() -> Path:
    """scikit-learn's bundled `datasets/data/digits.csv.gz`, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("digits needs scikit-learn, which bundles them: pip install scikit-learn", "dataset.name")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float 0-16, labels (1797,) int64), as `sklearn.datasets.load_digits` gives them."""
    with gzip.open(digits_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def digits_arrays(resize: int | None, train_subset: float) -> dict[str, np.ndarray]:
    """Decoded digits: train and the fixed test split, uint8 (N, 1, 8, 8) or resized."""
    images, y = read_digits()
    x = np.rint(images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None, :, :]
    test, train = stratified_pick(y, TEST_FRACTION, TEST_SEED)
    keep = train[training_subset(y[train], train_subset)]
    x_train, x_test = x[keep], x[test]
    if resize is not None:
        x_train, x_test = resize_images(x_train, resize), resize_images(x_test, resize)
    return {
        "x_train": x_train,
        "y_train": y[keep],
        "x_test": x_test,
        "y_test": y[test],
        "class_names": np.array([str(c) for c in range(10)]),
    }


@DATASETS.register("digits")
def load_digits_data(cfg: DatasetConfig, seed: int, full: bool) -> ImageData:
    arrays = digits_arrays(cfg.resize, cfg.train_subset)
    return assemble(arrays, cfg, seed, full, {"source": "sklearn.datasets.load_digits"})
