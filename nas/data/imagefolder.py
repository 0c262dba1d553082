"""`imagefolder`: any `root/<split>/<class>/*.{jpg,jpeg,png}` tree, or a `.tar`/`.tar.gz` archive of one.

The layout is torchvision's `ImageFolder` one level up: `train/` is required, `test/` is used as the test split
when present, other top-level folders are ignored (the validation split is always carved from `train/` by the
seed, as for every dataset). Classes are the sorted folder names under `train/` (torchvision's order); files may
sit in sub-folders of a class folder. An archive is read member by member without extracting anything, since the
shared CIFAR-10 copy is one (`cifar10-jpeg.tar.gz`, `train/<class>/NNNN.jpg`); a single top-level folder that
wraps the splits (`cifar10/train/...`) is looked through. Only regular files are read: links are ignored.

Decoding: 8-bit greyscale images give 1 channel (16-bit greyscale is scaled to 8 bits), anything else RGB; a
set that mixes both is all RGB. With `dataset.resize`, every image is scaled to resize x resize (PIL's
antialiased bilinear); without it, all images must share one square size. The training subset is chosen before
decoding, so a small subset of a large archive decodes only what it uses; the decoded arrays are cached.
"""

import errno
import hashlib
import io
import logging
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from nas.config import DatasetConfig
from nas.data.assemble import assemble
from nas.data.cache import cached_arrays, file_identity
from nas.data.dataset import DATASETS, ImageData
from nas.data.splits import training_subset
from nas.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
SPLITS = ("train", "test")
GREY_MODES = {"1", "L", "I;16", "I;16L", "I;16B"}


@dataclass(frozen=True)
class Entry:
    """One image file: its split, its class folder, and its name in the source (path or archive member)."""

    split: str
    label: str
    name: str


def layout_parts(relative: str) -> tuple[str, ...] | None:
    """(split, class, ..., file) of an image path relative to the root, or None if it is not one."""
    parts = tuple(p for p in PurePosixPath(relative).parts if p not in (".", ""))
    if len(parts) < 3 or any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return None
    if PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    return parts


def entries_from_paths(paths: list[str], where: str) -> list[Entry]:
    """Image entries of the train and test splits among `paths`, looking through one wrapping folder."""
    candidates = [(p, parts) for p in paths if (parts := layout_parts(p)) is not None]
    if candidates and not any(parts[0] == "train" for _, parts in candidates):
        tops = {parts[0] for _, parts in candidates}
        if len(tops) == 1:
            candidates = [(p, parts[1:]) for p, parts in candidates if len(parts) >= 4]
    entries = [Entry(parts[0], parts[1], p) for p, parts in candidates if parts[0] in SPLITS]
    if not any(e.split == "train" for e in entries):
        raise UserError(f"no images under train/<class>/ in {where} (expected root/train/<class>/*.jpg|png)")
    return sorted(entries, key=lambda e: (e.split, e.label, e.name))


class FolderSource:
    """A directory tree on disk."""

    def __init__(self, root: Path):
        self.root = root

    def entries(self) -> list[Entry]:
        paths = []
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            rel = Path(folder).relative_to(self.root)
            for f in sorted(files):
                path = Path(folder) / f
                check_link(path)
                if path.is_file():
                    paths.append((rel / f).as_posix())
        return entries_from_paths(paths, str(self.root))

    def identity(self) -> dict[str, object]:
        """Path plus a digest of every file's name, size and mtime: a changed file is a new cache entry."""
        digest = hashlib.sha256()
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            for f in sorted(files):
                path = Path(folder) / f
                check_link(path)
                try:
                    st = path.stat()
                except OSError as exc:
                    raise UserError(f"cannot read {path}: {exc.strerror}", key="dataset.root") from None
                digest.update(f"{path.relative_to(self.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return {"path": str(self.root.resolve()), "files": digest.hexdigest()}

    def read(self, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
        for name in sorted(wanted):
            try:
                blob = (self.root / name).read_bytes()
            except OSError as exc:
                raise UserError(f"cannot read {self.root / name}: {exc.strerror}", key="dataset.root") from None
            yield name, blob


def check_link(path: Path) -> None:
    """A symbolic link that leads nowhere (dangling, or a loop) is a broken copy of the data: say which."""
    if path.is_symlink():
        try:
            path.stat()
        except OSError as exc:
            why = "a loop" if exc.errno == errno.ELOOP else "dangling"
            raise UserError(f"{path} is a broken symbolic link ({why}); remove or fix it",
                            key="dataset.root") from None  # fmt: skip


class TarSource:
    """A tar archive (any compression tarfile reads), read member by member in archive order."""

    def __init__(self, path: Path):
        self.path = path

    def open(self) -> tarfile.TarFile:
        try:
            return tarfile.open(self.path, "r:*")
        except (tarfile.TarError, OSError) as exc:
            raise UserError(f"cannot read archive {self.path}: {exc}", key="dataset.root") from None

    def identity(self) -> dict[str, object]:
        return file_identity(self.path)

    def entries(self) -> list[Entry]:
        with self.open() as tar:
            try:
                names = [m.name for m in tar if m.isfile()]
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise UserError(f"archive {self.path} is damaged: {exc}", key="dataset.root") from None
        return entries_from_paths(names, str(self.path))

    def read(self, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
        with self.open() as tar:
            for member in tar:
                if member.isfile() and member.name in wanted:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        yield member.name, handle.read()


def open_source(cfg: DatasetConfig) -> FolderSource | TarSource:
    """The directory or archive `dataset.root` names; a missing root is a one-line error."""
    if not cfg.root:
        raise UserError("is required for imagefolder: a root/<split>/<class>/ folder or a .tar.gz of one",
                        key="dataset.root")  # fmt: skip
    root = Path(cfg.root)
    if root.is_dir():
        return FolderSource(root)
    if root.is_file() and tarfile.is_tarfile(root):
        return TarSource(root)
    if root.exists():
        raise UserError(f"{root} is neither a folder nor a tar archive", key="dataset.root")
    raise UserError(f"{root} does not exist", key="dataset.root")


def decode(blob: bytes, name: str, resize: int | None) -> np.ndarray:
    """One image as uint8 (H, W) for greyscale or (H, W, 3) for colour, scaled to resize x resize if asked."""
    try:
        with Image.open(io.BytesIO(blob)) as img:
            if img.mode in GREY_MODES:
                img = img.convert("L") if img.mode in ("1", "L") else Image.fromarray(grey8(np.asarray(img)))
            else:
                img = img.convert("RGB")
            if resize is not None and img.size != (resize, resize):
                img = img.resize((resize, resize), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except Image.DecompressionBombError:
        limit = 2 * Image.MAX_IMAGE_PIXELS
        raise UserError(f"image {name} has more than {limit:,} pixels (a decompression bomb, or far too large to "
                        "train on); refused unread", key="dataset.root") from None  # fmt: skip
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"cannot decode image {name}: {exc}") from None


def grey8(pixels: np.ndarray) -> np.ndarray:
    """16-bit greyscale scaled to 8 bits (the full 0-65535 range onto 0-255)."""
    return (pixels.astype(np.uint32) // 257).astype(np.uint8)


def stack(images: list[np.ndarray], names: list[str], colour: bool) -> np.ndarray:
    """Images of one size as an NCHW uint8 array; a size mismatch or a non-square image is a one-line error."""
    first = images[0].shape[:2]
    if first[0] != first[1]:
        raise UserError(f"{names[0]} is {first[1]}x{first[0]}, not square; set dataset.resize")
    for img, name in zip(images, names, strict=True):
        if img.shape[:2] != first:
            raise UserError(f"{name} is {img.shape[1]}x{img.shape[0]}, {names[0]} is {first[1]}x{first[0]}; "
                            "set dataset.resize")  # fmt: skip
    out = np.empty((len(images), 3 if colour else 1, *first), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = np.repeat(img[None], 3, axis=0) if colour and img.ndim == 2 else np.moveaxis(np.atleast_3d(img), 2, 0)
    return out


def decode_entries(source: FolderSource | TarSource, entries: list[Entry], resize: int | None) -> list[np.ndarray]:
    """Decode `entries` in their order, reading the source once in its own order."""
    decoded: dict[str, np.ndarray] = {}
    for name, blob in source.read({e.name for e in entries}):
        decoded[name] = decode(blob, name, resize)
    missing = [e.name for e in entries if e.name not in decoded]
    if missing:
        raise UserError(f"could not read {missing[0]} from the dataset source", key="dataset.root")
    return [decoded[e.name] for e in entries]


def folder_arrays(source: FolderSource | TarSource, resize: int | None, train_subset: float) -> dict[str, np.ndarray]:
    """Decode the training subset and the test split into uint8 NCHW arrays with integer labels."""
    entries = source.entries()
    train = [e for e in entries if e.split == "train"]
    test = [e for e in entries if e.split == "test"]
    classes = sorted({e.label for e in train})
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({e.label for e in test} - set(classes))
    if unknown:
        raise UserError(f"test/ has class {unknown[0]!r}, which train/ lacks", key="dataset.root")
    y_all = np.array([index[e.label] for e in train], dtype=np.int64)
    keep = training_subset(y_all, train_subset)
    train = [train[i] for i in keep]
    if not train:
        raise UserError(f"leaves none of the {len(y_all)} training images", key="dataset.train_subset")
    log.info("decoding %d training and %d test images", len(train), len(test))
    images = decode_entries(source, train + test, resize)
    colour = any(img.ndim == 3 for img in images)
    x = stack(images, [e.name for e in train + test], colour)
    return {
        "x_train": x[: len(train)],
        "y_train": y_all[keep],
        "x_test": x[len(train) :],
        "y_test": np.array([index[e.label] for e in test], dtype=np.int64),
        "class_names": np.array(classes),
    }


@DATASETS.register("imagefolder")
def load_imagefolder(cfg: DatasetConfig, seed: int, full: bool) -> ImageData:
    source = open_source(cfg)
    parts = {"source": source.identity(), "resize": cfg.resize, "train_subset": cfg.train_subset}
    arrays = cached_arrays(
        "imagefolder", parts, cfg.cache_dir, lambda: folder_arrays(source, cfg.resize, cfg.train_subset)
    )
    return assemble(arrays, cfg, seed, full, {"source": str(cfg.root)})
