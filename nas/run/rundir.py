"""The run directory (DESIGN.md section 2): its paths, its creation, and the config it was started with.

A new search refuses a non-empty directory (so nothing is ever overwritten), writes the resolved config as
`config.yaml`, and records the config's sha256 in every checkpoint: `nas resume` refuses a run whose
`config.yaml` was edited since, because the log's fitness values would no longer mean the same thing.

The config names other files whose content changes the search: the search space (`encoding`) above all, and
a dataset's metadata table. Their sha256 is recorded too (`input_digests`, in the checkpoint's `inputs`), so
an edited search space (a changed `stem_channels` would mix two families of networks in one log) is refused
by name, not resumed silently. Data folders and weight files are not hashed (gigabytes; their identity is
their path). A checkpoint without `inputs` (older runs) is trusted.

`nas resume RUN_DIR --budget N` extends a search: `config.yaml` stays as it was (its sha256 is the edit check
above), and the raised `search.budget.evaluations` is recorded beside it in `budget.json`
(`{"format": "nas-budget/1", "evaluations": N}`, written atomically). `RunDir.load_config` applies it, so every
later resume, the strategy built for it (hgapso's exploitation phase is a fraction of the budget), the report
and the snapshot all see the raised budget. A budget is only ever raised: `--budget` below the current budget,
or on a run without an evaluation budget, is refused; a `budget.json` that is not valid JSON of that shape, or
below the config's own budget, is refused by name.
"""

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.atomicfile import DiskWriteError, atomic_write_text
from nas.config import BudgetConfig, Config, field_bounds, load_config
from nas.errors import UserError, os_reason, shown
from nas.yamlfile import load_yaml_mapping

BUDGET_FORMAT = "nas-budget/1"


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

    @property
    def budget_file(self) -> Path:
        return self.path / "budget.json"

    def load_config(self) -> Config:
        """The config the run started with, its evaluation budget raised to `budget.json`'s when there is one.

        A run written before `search.fidelity.signal` existed has a `fidelity` section without it, and its
        promotions were made by `accuracy`, the one signal there was; it resumes with that signal, not today's
        default, so the decisions rebuilt from its log are the ones it made."""
        config = load_config(self.config)
        raised = self.raised_budget(config)
        if raised is not None:
            config.search.budget.evaluations = raised
        if config.search.fidelity is not None and not self.names_signal():
            config.search.fidelity.signal = "accuracy"
        return config

    def names_signal(self) -> bool:
        """Whether the saved config's `search.fidelity` section names its `signal`."""
        search = load_yaml_mapping(self.config, "config").get("search")
        fidelity = search.get("fidelity") if isinstance(search, dict) else None
        return isinstance(fidelity, dict) and "signal" in fidelity

    def raised_budget(self, config: Config) -> int | None:
        """The evaluation budget `budget.json` records (None: no such file), checked against `config`."""
        try:
            text = self.budget_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {self.budget_file}: {type(exc).__name__}") from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
        value = data.get("evaluations") if isinstance(data, dict) and data.get("format") == BUDGET_FORMAT else None
        low, high = field_bounds(BudgetConfig, "evaluations")
        if type(value) is not int or not low <= value <= high:
            raise UserError(f"{self.budget_file} is not a budget file ({{\"format\": \"{BUDGET_FORMAT}\", "
                            f"\"evaluations\": N}} with {low} <= N <= {high}); restore or remove it")  # fmt: skip
        own = config.search.budget.evaluations
        if own is None or value < own:
            raise UserError(f"{self.budget_file}: evaluations {shown(value)} must be at least the config's "
                            f"search.budget.evaluations ({own}); restore or remove it")  # fmt: skip
        return value

    def raise_budget(self, evaluations: int, done: int) -> None:
        """Record `evaluations` as the run's evaluation budget (`nas resume --budget`): at least the current
        budget and the `done` evaluations, on a run that has an evaluation budget; else a `UserError`."""
        current = self.load_config().search.budget.evaluations
        if current is None:
            raise UserError(f"--budget {evaluations}: this run has no evaluation budget (search.budget.evaluations "
                            "is not set), so there is none to raise")  # fmt: skip
        if evaluations < max(current, done):
            raise UserError(f"--budget {evaluations}: must be at least the current budget of {current} evaluations "
                            f"({done} done); --budget only raises it")  # fmt: skip
        if evaluations == current:
            return
        text = json.dumps({"format": BUDGET_FORMAT, "evaluations": evaluations}) + "\n"
        atomic_write_text(self.budget_file, text)


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
