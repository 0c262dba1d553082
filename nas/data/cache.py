"""The decoded-image cache: arrays decoded once per dataset and options, so a second run starts in seconds.

An entry is one `.npz` file named `<kind>-<hash>.npz`, where the hash is the sha256 of the canonical JSON of
everything that decides the arrays (the source's path, size and modification time, resize, training subset,
the cache format). A change to any of them is a new entry, never a stale read. Entries are written to a temp file
in the cache folder, fsynced and renamed into place, so a crash or a concurrent writer can never leave half a file
under the final name; they are read with `allow_pickle=False`, and an unreadable entry is rebuilt and replaced.

The folder is `dataset.cache_dir` when given, else `$XDG_CACHE_HOME/evonas`, else `~/.cache/evonas`.
"""

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import UserError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
Arrays = dict[str, np.ndarray]


def cache_folder(cache_dir: str | None) -> Path:
    """The cache folder a config names, or the user's default cache folder."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evonas"


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `parts` (plus the cache format), as hex."""
    text = json.dumps({"cache_format": CACHE_FORMAT, **parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_identity(path: str | Path) -> dict[str, Any]:
    """What says that a source file or folder is still the one that was decoded: path, size, mtime."""
    p = Path(path).resolve()
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_entry(path: Path) -> Arrays | None:
    """The arrays of a cache entry, or None if it is absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        log.warning("cache entry %s is unreadable (%s); rebuilding it", path, type(exc).__name__)
        return None


def write_entry(path: Path, arrays: Arrays) -> None:
    """Write `arrays` to `path` atomically: temp file in the same folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def entry_path(kind: str, parts: dict[str, Any], cache_dir: str | None) -> Path:
    """Where the entry of (`kind`, `parts`) lives, whether or not it is there yet."""
    return cache_folder(cache_dir) / f"{kind}-{cache_key({'kind': kind, **parts})[:24]}.npz"


def cached_arrays(kind: str, parts: dict[str, Any], cache_dir: str | None, build: Callable[[], Arrays]) -> Arrays:
    """The arrays for (`kind`, `parts`) from the cache, or `build()` them and store them for next time.

    A cache folder that cannot be written is not fatal: the arrays are used anyway and a warning says why.
    """
    path = entry_path(kind, parts, cache_dir)
    arrays = read_entry(path)
    if arrays is not None:
        log.debug("dataset %s from cache %s", kind, path)
        return arrays
    arrays = build()
    try:
        write_entry(path, arrays)
        log.info("cached decoded %s in %s", kind, path)
    except OSError as exc:
        if cache_dir:
            raise UserError(f"cannot write the cache {path}: {exc.strerror or exc}", key="dataset.cache_dir") from None
        log.warning("cannot write the dataset cache %s (%s); continuing without it", path, exc)
    return arrays
