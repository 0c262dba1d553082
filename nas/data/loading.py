"""`load_dataset`: the one entry point from a `dataset` config section to an `ImageData`.

Each dataset kind is a module under `nas/data/` that registers its loader in `DATASETS` when imported; the kinds
are imported here, only when a dataset is loaded, so that commands which never load data do not pay for
torchvision or scikit-learn. Adding a kind is a new module plus its line in `KIND_MODULES`.
"""

import importlib

from nas.config import DatasetConfig
from nas.data.dataset import DATASETS, ImageData

KIND_MODULES = (
    "nas.data.digits",
    "nas.data.imagefolder",
    "nas.data.cifar",
    "nas.data.svhn",
    "nas.data.bbbc021",
    "nas.data.bbbc014",
)


def register_kinds() -> None:
    """Import every dataset kind, so that `DATASETS` knows all names."""
    for module in KIND_MODULES:
        importlib.import_module(module)


def load_dataset(cfg: DatasetConfig, seed: int, full: bool = False) -> ImageData:
    """The arrays `cfg` names, split by `seed` (no validation carve-out with `full`)."""
    register_kinds()
    return DATASETS.get(cfg.name, key="dataset.name")(cfg, seed, full)
