"""What the torchvision-backed kinds (`cifar10`, `cifar100`, `svhn`) share: finding the files, or saying why not.

The official files live under `dataset.root` in torchvision's layout; nothing is fetched unless the config says
`download: true` (DESIGN.md: no network at run time unless the user asked). When they are absent, the error is
one line naming the folder looked in, the files looked for, and the two ways to get them. torchvision prints
download chatter on stdout, which would break `--json`, so its constructor runs with stdout sent to stderr. The
arrays (after the training subset and resize) go through the same cache and split code as every kind.
"""

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np

from nas.config import DatasetConfig
from nas.data.assemble import assemble
from nas.data.cache import cached_arrays, file_identity
from nas.data.dataset import ImageData
from nas.data.resizing import resize_images
from nas.data.splits import training_subset
from nas.errors import UserError

# (root, train?, download?) -> (uint8 NCHW images, int labels, class names)
SplitReader = Callable[[str, bool, bool], tuple[np.ndarray, np.ndarray, list[str]]]


@dataclass(frozen=True)
class TorchvisionKind:
    """One torchvision dataset: its name, the files it needs under root, where to get them, how to read it."""

    name: str
    title: str
    files: tuple[str, ...]
    source_url: str
    read_split: SplitReader

    def missing_message(self, root: Path) -> str:
        looked = ", ".join(str(root / f) for f in self.files)
        return (
            f"{self.title} not found under {root} (looked for {looked}); set dataset.download: true to fetch it "
            f"there, or put the files from {self.source_url} there"
        )

    def identity(self, root: Path) -> list[dict[str, Any]]:
        """Size and mtime of the files present: replacing the data makes a new cache entry."""
        return [file_identity(root / f) for f in self.files if (root / f).exists()]


def dataset_root(cfg: DatasetConfig) -> Path:
    if not cfg.root:
        raise UserError(f"is required for {cfg.name}: the folder that holds (or will hold) its files",
                        key="dataset.root")  # fmt: skip
    return Path(cfg.root)


def read_split(
    kind: TorchvisionKind, root: Path, train: bool, download: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One split through torchvision, its 'not found' and download failures turned into one-line errors."""
    if download:
        root.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return kind.read_split(str(root), train, download)
    except RuntimeError as exc:
        if "not found" in str(exc).lower():
            raise UserError(kind.missing_message(root), key="dataset.root") from None
        raise
    except (URLError, OSError) as exc:
        if not download:
            raise UserError(f"cannot read {kind.title} under {root}: {exc}", key="dataset.root") from None
        raise UserError(f"could not download {kind.title} to {root}: {exc}", key="dataset.download") from None


def torchvision_arrays(kind: TorchvisionKind, cfg: DatasetConfig, root: Path) -> dict[str, np.ndarray]:
    """Train (subset) and test arrays of `kind`, resized when asked."""
    x_train, y_train, classes = read_split(kind, root, True, cfg.download)
    x_test, y_test, _ = read_split(kind, root, False, cfg.download)
    keep = training_subset(y_train, cfg.train_subset)
    x_train, y_train = x_train[keep], y_train[keep]
    if cfg.resize is not None:
        x_train, x_test = resize_images(x_train, cfg.resize), resize_images(x_test, cfg.resize)
    return {
        "x_train": np.ascontiguousarray(x_train),
        "y_train": y_train.astype(np.int64),
        "x_test": np.ascontiguousarray(x_test),
        "y_test": y_test.astype(np.int64),
        "class_names": np.array(classes),
    }


def load_torchvision(kind: TorchvisionKind, cfg: DatasetConfig, seed: int, full: bool) -> ImageData:
    """The `ImageData` of a torchvision dataset: cached arrays, then the shared validation carve and statistics."""
    root = dataset_root(cfg)
    if not cfg.download and not all((root / f).exists() for f in kind.files):
        raise UserError(kind.missing_message(root), key="dataset.root")
    parts = {"root": str(root.resolve()), "files": kind.identity(root), "resize": cfg.resize,
             "train_subset": cfg.train_subset}  # fmt: skip
    arrays = cached_arrays(kind.name, parts, cfg.cache_dir, lambda: torchvision_arrays(kind, cfg, root))
    return assemble(arrays, cfg, seed, full, {"source": str(root)})
