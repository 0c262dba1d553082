"""The run directory (DESIGN.md section 2): its paths, its creation, and the config it was started with.

A new search refuses a non-empty directory (so nothing is ever overwritten), writes the resolved config as
`config.yaml`, and records the config's sha256 in every checkpoint: `nas resume` refuses a run whose
`config.yaml` was edited since, because the log's fitness values would no longer mean the same thing.
"""

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from nas.atomicfile import DiskWriteError, atomic_write_text
from nas.config import Config, load_config
from nas.errors import UserError


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


def default_run_dir(config: Config) -> Path:
    return Path("runs") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def create_run_dir(path: Path, config: Config) -> RunDir:
    """Create a fresh run directory holding the resolved config; refuse one that holds anything."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"run directory {path} is not empty; use `nas resume {path}` or choose another --run-dir")
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
    if not run.config.is_file():
        raise UserError(f"{path} is not a run directory (no config.yaml)")
    return run
