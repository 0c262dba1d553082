"""`load_dataset`: the one entry point from a `dataset` config section to an `ImageData`.

Each dataset kind is a module under `nas/data/` that registers its loader in `DATASETS` when imported.
`KIND_MODULES` says which module holds which name, and only the module of the name asked for is imported, so a
config error or a digits run never pays for importing torchvision, TIFF readers and the like. Adding a kind is a
new module plus its line here.
"""

import importlib

from nas.config import DatasetConfig
from nas.data.dataset import DATASETS, ImageData
from nas.errors import UserError, shown

KIND_MODULES = {
    "digits": "nas.data.digits",
    "imagefolder": "nas.data.imagefolder",
    "cifar10": "nas.data.cifar",
    "cifar100": "nas.data.cifar",
    "svhn": "nas.data.svhn",
    "bbbc021": "nas.data.bbbc021",
    "bbbc014": "nas.data.bbbc014",
}


def dataset_names() -> list[str]:
    """Every dataset name a config may use."""
    return sorted(set(KIND_MODULES) | set(DATASETS.names()))


def load_dataset(cfg: DatasetConfig, seed: int, full: bool = False) -> ImageData:
    """The arrays `cfg` names, split by `seed` (no validation carve-out with `full`)."""
    if cfg.name in KIND_MODULES:
        importlib.import_module(KIND_MODULES[cfg.name])
    elif cfg.name not in DATASETS.names():
        raise UserError(f"unknown dataset {shown(cfg.name)} (known: {', '.join(dataset_names())})", key="dataset.name")
    return DATASETS.get(cfg.name, key="dataset.name")(cfg, seed, full)
