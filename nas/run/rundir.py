"""The run directory (DESIGN.md section 2): its paths, its creation, and the config it was started with.

A new search refuses a non-empty directory (so nothing is ever overwritten), writes the resolved config as
`config.yaml`, and records the config's sha256 in every checkpoint: `nas resume` refuses a run whose
`config.yaml` was edited since, because the log's fitness values would no longer mean the same thing.

The config names other files whose content changes the search: the search space (`encoding`) above all, and
a dataset's metadata table. Their sha256 is recorded too (`input_digests`, in the checkpoint's `inputs`), so
an edited search space (a changed `stem_channels` would mix two families of networks in one log) is refused
by name, not resumed silently. Data folders and weight files are not hashed (gigabytes; their identity is
their path). A checkpoint without `inputs` (older runs) is trusted.
"""

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.atomicfile import DiskWriteError, atomic_write_text
from nas.config import Config, load_config
from nas.errors import UserError, os_reason


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def log(self) -> Path:
        return self.path / "evaluations.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def best_architecture(self) -> Path:
        return self.path / "best" / "architecture.yaml"

    def config_sha256(self) -> str:
        return hashlib.sha256(self.config.read_bytes()).hexdigest()

    def load_config(self) -> Config:
        return load_config(self.config)


def input_files(config: Config) -> dict[str, str]:
    """Config key -> path of every file the config points to whose content changes the search."""
    files = {"encoding": config.encoding, "dataset.metadata": config.dataset.metadata}
    return {key: path for key, path in files.items() if path is not None and Path(path).is_file()}


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a file's bytes, None when it cannot be read (missing, a folder, no permission)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def input_digests(config: Config) -> dict[str, dict[str, Any]]:
    """What `check_inputs` compares on resume: each input file's path and sha256, by config key."""
    return {key: {"path": path, "sha256": file_sha256(path)} for key, path in input_files(config).items()}


def check_inputs(recorded: dict[str, dict[str, Any]] | None) -> None:
    """Refuse a resume whose input files changed since the run started, naming the first one that did."""
    for key, entry in sorted((recorded or {}).items()):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        if file_sha256(entry["path"]) != entry.get("sha256"):
            raise UserError(f"{entry['path']} (the config's {key}) changed or vanished since the run started; resume "
                            "refuses to mix two searches in one log (restore it, or start a new search)")  # fmt: skip


def default_run_dir(config: Config) -> Path:
    return Path("runs") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_run_dir_free(path: Path) -> None:
    """Refuse a run directory that holds anything (checked before connecting to Ray, and again on creation), or
    that is a file (which `nas resume` could not take either)."""
    try:
        if path.exists() and not path.is_dir():
            raise UserError(f"run directory {path} is a file, not a folder; choose another --run-dir")
        if path.is_dir() and any(path.iterdir()):
            raise UserError(f"run directory {path} is not empty; use `nas resume {path}` or choose another --run-dir")
    except OSError as exc:
        raise UserError(f"cannot read run directory {path}: {os_reason(exc)}") from None


def create_run_dir(path: Path, config: Config) -> RunDir:
    """Create a fresh run directory holding the resolved config; refuse one that holds anything."""
    check_run_dir_free(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create run directory {path}: {exc.strerror}") from None
    run = RunDir(path)
    try:
        atomic_write_text(run.config, config.to_yaml())
    except DiskWriteError as exc:  # the temp file is gone: the folder is as empty as it was
        raise exc.with_hint("nothing ran; once the disk is writable again, run the same `nas search`") from None
    return run


def open_run_dir(path: Path) -> RunDir:
    """An existing run directory, checked to hold a config."""
    run = RunDir(path)
    try:
        if path.exists() and not path.is_dir():
            raise UserError(f"{path} is a file, not a run directory")
        if not path.exists():
            raise UserError(f"{path} is not a run directory (no such folder)")
        if not run.config.is_file():
            raise UserError(f"{path} is not a run directory (no config.yaml)")
    except OSError as exc:
        raise UserError(f"cannot read run directory {path}: {os_reason(exc)}") from None
    return run
