"""`cifar10` and `cifar100`: the official CIFAR python releases through torchvision (Krizhevsky 2009).

`dataset.root` is the folder that holds `cifar-10-batches-py/` (or `cifar-100-python/`), as torchvision lays it
out; `download: true` lets torchvision fetch the archive there (about 170 MB), and nothing is fetched otherwise.
CIFAR-100 uses its 100 fine labels. The batch files are read by torchvision's own loader for that format.
"""

import numpy as np
from torchvision.datasets import CIFAR10, CIFAR100

from nas.config import DatasetConfig
from nas.data.dataset import DATASETS, ImageData
from nas.data.torchvision_sets import TorchvisionKind, load_torchvision


def read_cifar(cls: type[CIFAR10]):
    """A split reader for a torchvision CIFAR class: uint8 NCHW images, labels, class names."""

    def read(root: str, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
        ds = cls(root, train=train, download=download)
        return np.asarray(ds.data).transpose(0, 3, 1, 2), np.asarray(ds.targets, dtype=np.int64), list(ds.classes)

    return read


CIFAR10_KIND = TorchvisionKind(
    name="cifar10",
    title="CIFAR-10",
    files=("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"),
    source_url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (unpacked)",
    read_split=read_cifar(CIFAR10),
)
CIFAR100_KIND = TorchvisionKind(
    name="cifar100",
    title="CIFAR-100",
    files=("cifar-100-python/train", "cifar-100-python/test"),
    source_url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (unpacked)",
    read_split=read_cifar(CIFAR100),
)


@DATASETS.register("cifar10")
def load_cifar10(cfg: DatasetConfig, seed: int, full: bool) -> ImageData:
    return load_torchvision(CIFAR10_KIND, cfg, seed, full)


@DATASETS.register("cifar100")
def load_cifar100(cfg: DatasetConfig, seed: int, full: bool) -> ImageData:
    return load_torchvision(CIFAR100_KIND, cfg, seed, full)
