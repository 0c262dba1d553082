"""`svhn`: Street View House Numbers, cropped digits (Netzer et al. 2011), through torchvision.

`dataset.root` holds `train_32x32.mat` and `test_32x32.mat`; `download: true` lets torchvision fetch them
(about 180 MB), nothing is fetched otherwise. The `extra` split (531k easier images) is not used: the usual
benchmark protocol trains on `train` alone. Labels are 0-9 (torchvision maps the file's "10" to 0).
"""

import numpy as np
from torchvision.datasets import SVHN

from nas.config import DatasetConfig
from nas.data.dataset import DATASETS, ImageData
from nas.data.torchvision_sets import TorchvisionKind, load_torchvision


def read_svhn(root: str, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    ds = SVHN(root, split="train" if train else "test", download=download)
    return np.asarray(ds.data), np.asarray(ds.labels, dtype=np.int64), [str(d) for d in range(10)]


SVHN_KIND = TorchvisionKind(
    name="svhn",
    title="SVHN",
    files=("train_32x32.mat", "test_32x32.mat"),
    source_url="http://ufldl.stanford.edu/housenumbers/ (the cropped-digits .mat files)",
    read_split=read_svhn,
)


@DATASETS.register("svhn")
def load_svhn(cfg: DatasetConfig, seed: int, full: bool) -> ImageData:
    return load_torchvision(SVHN_KIND, cfg, seed, full)
