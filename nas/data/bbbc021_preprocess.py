"""BBBC021 preprocessing, done once: every protocol field normalised, cropped and resized into a cache file.

Reading 1,208 fields of three 2.6 MB TIFFs (plus the DMSO fields of their plates for the statistics) takes
minutes; a search trains hundreds of candidates on the same crops. So the crops are computed once, in parallel
worker processes (`dataset.workers`, 0 = one per CPU; spawned, so a parent holding CUDA or OpenMP threads is
safe), with a progress bar on stderr when it is a terminal, and stored as one float16 `.npz` array
(N fields, 4 crops, 3 channels, size, size) through the dataset cache (`nas.data.cache`: `dataset.cache_dir`,
default `$XDG_CACHE_HOME/evonas`, else `~/.cache/evonas`). The entry's key is what determines its content: a
format version, the image root, the two metadata CSVs' bytes and the input size; the images' modification times
are deliberately not part of it, so later runs read the entry and never open (or even stat) a TIFF.

The entry is written to a temporary name and renamed into place only when complete, so a failure (missing or
unreadable image, interrupt) leaves no cache file; every image path is checked before any pixel is read, so a
missing file is reported at once, with the count and the first few paths.
"""

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nas.config import DatasetConfig
from nas.data.bbbc021_images import GRID, combine_moments, field_crops, field_moments
from nas.data.bbbc021_metadata import Bbbc021Table, Field
from nas.data.cache import cached_arrays, entry_path
from nas.errors import UserError

log = logging.getLogger(__name__)

CACHE_KIND = "bbbc021"
CACHE_VERSION = 1
STATS_KIND = "bbbc021-plates"
DEFAULT_SIZE = 128
SHOW_MISSING = 5


def input_size(config: DatasetConfig) -> int:
    """The square crop size: `dataset.resize`, or 128 (a 5x downscale of a 640x512 crop) when unset."""
    return config.resize or DEFAULT_SIZE


def image_root(config: DatasetConfig) -> Path:
    if config.root is None:
        raise UserError("must name the folder holding the BBBC021 plate folders", key="dataset.root")
    return Path(config.root)


def cache_parts(config: DatasetConfig, table: Bbbc021Table) -> dict[str, Any]:
    """What the crops depend on: the cache entry's key."""
    return {
        "version": CACHE_VERSION,
        "root": str(image_root(config).resolve()),
        "metadata": table.digest,
        "size": input_size(config),
        "grid": list(GRID),
    }


def crops_entry(config: DatasetConfig, table: Bbbc021Table) -> Path:
    """Where the cache keeps this config's crops (`nas.data.cache.cached_arrays` names its entries so): when the
    file is there, nothing reads an image again."""
    return entry_path(CACHE_KIND, cache_parts(config, table), config.cache_dir)


def dmso_fields(table: Bbbc021Table) -> list[Field]:
    """The DMSO fields of the protocol's plates: what the per-plate normalisation reads."""
    plates = set(table.plates)
    return [f for f in table.dmso if f.plate in plates]


def needed_fields(table: Bbbc021Table) -> list[Field]:
    """Every field preprocessing reads (three channel files each): the protocol's, then its plates' DMSO."""
    return [*table.fields, *dmso_fields(table)]


def missing_files(root: Path, fields: Iterable[Field]) -> list[str]:
    """The channel files of `fields` that are not files under `root`, in field order."""
    return [str(root / p) for f in fields for p in f.paths if not (root / p).is_file()]


def check_files(root: Path, fields: Iterable[Field]) -> None:
    """Every channel file must exist before any work starts; report how many are missing and the first few."""
    missing = missing_files(root, fields)
    if missing:
        shown = ", ".join(missing[:SHOW_MISSING]) + (", ..." if len(missing) > SHOW_MISSING else "")
        raise UserError(f"{len(missing)} BBBC021 image file(s) missing under {root} (dataset.root): {shown}")


def parallel_map(func: Callable[[Any], Any], items: list[Any], executor: Executor | None, bar: tqdm) -> Iterator:
    """`func` over `items` in order, in the pool when there is one, ticking `bar` once per item."""
    results = executor.map(func, items, chunksize=max(1, len(items) // 64)) if executor else map(func, items)
    for result in results:
        bar.update(1)
        yield result


def plate_statistics(
    root: Path, table: Bbbc021Table, executor: Executor | None, bar: tqdm
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per plate of the protocol fields: the per-channel (mean, std) of that plate's DMSO fields."""
    plates = table.plates
    for plate in plates:
        if not table.dmso_of(plate):
            raise UserError(f"plate {plate} has no DMSO fields in the metadata to normalise by")
    dmso = dmso_fields(table)
    moments = list(parallel_map(partial(field_moments, root), [f.paths for f in dmso], executor, bar))
    by_plate: dict[str, list[np.ndarray]] = {}
    for field, m in zip(dmso, moments, strict=True):
        by_plate.setdefault(field.plate, []).append(m)
    return {plate: combine_moments(by_plate[plate]) for plate in plates}


def crop_task(root: Path, size: int, task: tuple[tuple[str, ...], np.ndarray, np.ndarray]) -> np.ndarray:
    paths, mean, std = task
    return field_crops(root, paths, mean, std, size)


def build_crops(config: DatasetConfig, table: Bbbc021Table) -> np.ndarray:
    """Read, normalise, crop and resize every protocol field: (fields, 4, 3, size, size) float16."""
    root, size = image_root(config), input_size(config)
    if not root.is_dir():
        raise UserError(f"not a folder: {root}", key="dataset.root")
    dmso = dmso_fields(table)
    check_files(root, needed_fields(table))
    workers = config.workers or os.cpu_count() or 1
    out = np.empty((len(table.fields), GRID[0] * GRID[1], 3, size, size), dtype=np.float16)
    with tqdm(total=len(dmso) + len(table.fields), desc="BBBC021 preprocessing", unit="field",
              file=sys.stderr, disable=None) as bar:  # fmt: skip
        with worker_pool(workers) as executor:
            stats = plate_statistics(root, table, executor, bar)
            tasks = [(f.paths, *stats[f.plate]) for f in table.fields]
            for i, crops in enumerate(parallel_map(partial(crop_task, root, size), tasks, executor, bar)):
                out[i] = crops
    cached_plate_statistics(config, table, lambda: stats)  # kept only once every field was read: no partial cache
    return out


def cached_plate_statistics(
    config: DatasetConfig, table: Bbbc021Table, compute: Callable[[], dict[str, tuple[np.ndarray, np.ndarray]]]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every protocol plate's DMSO (mean, std), from a small cache entry of their own, or `compute()`d and kept.

    Preprocessing stores them as it computes them; a crops entry made before they were kept gets them on first
    use (`plate_statistics_of`), which reads the DMSO fields once."""
    parts = {"version": 1, "root": str(image_root(config).resolve()), "metadata": table.digest}

    def build() -> dict[str, np.ndarray]:
        stats = compute()
        plates = sorted(stats)
        return {"plates": np.array(plates), "mean": np.stack([stats[p][0] for p in plates]),
                "std": np.stack([stats[p][1] for p in plates])}  # fmt: skip

    arrays = cached_arrays(STATS_KIND, parts, config.cache_dir, build)
    return {str(p): (m, s) for p, m, s in zip(arrays["plates"], arrays["mean"], arrays["std"], strict=True)}


def plate_statistics_of(config: DatasetConfig, table: Bbbc021Table) -> dict[str, dict[str, list[float]]]:
    """The plate statistics as `preprocess.json` ships them: {plate: {"mean": [3], "std": [3]}} (Actin,
    Tubulin, DAPI, raw intensity units)."""

    def compute() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        root = image_root(config)
        dmso = dmso_fields(table)
        check_files(root, dmso)
        with tqdm(total=len(dmso), desc="BBBC021 plate statistics", unit="field", file=sys.stderr,
                  disable=None) as bar, worker_pool(config.workers or os.cpu_count() or 1) as executor:  # fmt: skip
            return plate_statistics(root, table, executor, bar)

    stats = cached_plate_statistics(config, table, compute)
    return {plate: {"mean": [float(v) for v in m], "std": [float(v) for v in s]} for plate, (m, s) in stats.items()}


@contextmanager
def worker_pool(workers: int) -> Iterator[Executor | None]:
    """Spawned worker processes (None for one worker: the same code runs in this process). On an error or an
    interrupt the queued fields are cancelled, so a bad file is reported at once, not after the whole plate."""
    if workers <= 1:
        yield None
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def preprocessed_crops(config: DatasetConfig, table: Bbbc021Table) -> np.ndarray:
    """The protocol fields' crops, from the cache when present, else built once (in parallel) and cached."""
    size = input_size(config)
    shape = (len(table.fields), GRID[0] * GRID[1], 3, size, size)

    def build() -> dict[str, np.ndarray]:
        log.info("BBBC021: preprocessing %d fields at %dx%d", len(table.fields), size, size)
        return {"crops": build_crops(config, table)}

    crops = cached_arrays(CACHE_KIND, cache_parts(config, table), config.cache_dir, build)["crops"]
    if crops.shape != shape or crops.dtype != np.float16:
        raise UserError(
            f"BBBC021 cache entry has shape {crops.shape}, expected {shape}; delete it", key="dataset.cache_dir"
        )
    return crops
