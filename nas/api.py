"""The Python API: start a search, continue one, and read a run's results, from a notebook or a script.

    run = nas.search("digits_quick", workers=0, search__budget__evaluations=8)
    run.best()["fitness"], run.best()["architecture"]
    run = nas.resume(run.path, budget=16)
    frame = run.results(as_frame=True)

`search` and `resume` are the commands `nas search` and `nas resume` (`nas.run.driver`), so a search started
here is the one the command line starts, with the same run directory, log and checkpoints, and either one
resumes the other's. A config is a path, a shipped config's name (`nas.shipped_configs`) or a mapping (its
relative paths taken against the working folder); overrides are keyword arguments, `__` standing for a dot
(`fitness__epochs=2` is `--set fitness.epochs=2`) with their values as Python gives them, or `KEY.PATH=VALUE`
strings in `overrides`, read as `--set` reads them. The config is validated in full before anything starts,
and handed to the command as one resolved file (every path in it absolute), written to a temporary folder.

`Run` opens a run directory read-only: its config (with a budget raised by `nas resume --budget`), its log's
records (`nas.run.runlog`, the reader `nas export` and `nas report` use), its best result and, for a search with
several objectives, its Pareto front (`RUN_DIR/pareto.json`). A run being
searched may be read: a last line still being written is left out.

Bad input is a `UserError`, as on the command line, whose message names the key path of a bad override.
"""

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.config import Config, apply_overrides, from_override, parse_config, set_at
from nas.errors import UserError
from nas.run.pareto_file import read_front
from nas.run.rundir import RunDir, default_run_dir, open_run_dir
from nas.run.runlog import line_rules, ranked, read_results
from nas.shipped_configs import resolve_config
from nas.yamlfile import load_yaml_mapping

ConfigSource = str | Path | Mapping[str, Any]


class Run:
    """A run directory, read-only: `path`, `config`, `results()`, `best()` and `front()`."""

    def __init__(self, run_dir: str | Path):
        self._run: RunDir = open_run_dir(Path(run_dir))  # a UserError when it is not a run directory

    @property
    def path(self) -> Path:
        return self._run.path

    @property
    def config(self) -> Config:
        """The config the run started with, its evaluation budget as raised since (`nas resume --budget`)."""
        return self._run.load_config()

    def results(self, as_frame: bool = False) -> Any:
        """Every line of `evaluations.jsonl` as a dict, in log order (a candidate retried after running out of
        memory, or trained rung by rung under `search.fidelity`, has a line each time); with `as_frame`, a pandas
        DataFrame of the same records (pandas is not a dependency of evonas: install it for this)."""
        records = [r.to_dict() for r in self._read()]
        if not as_frame:
            return records
        try:
            import pandas
        except ImportError:
            raise ModuleNotFoundError("results(as_frame=True) needs pandas, which is not installed (pip install "
                                      "pandas); results() gives the same records as dicts") from None  # fmt: skip
        return pandas.DataFrame.from_records(records)

    def best(self) -> dict[str, Any] | None:
        """The best result's record (the ranking of `nas export`: highest fitness, then fewest parameters), with
        `architecture`, the path of the run's `best/architecture.yaml` (None until it is written); None when no
        evaluation succeeded yet."""
        best = ranked(self._read())
        if not best:
            return None
        architecture = self._run.best_architecture
        return {**best[0].to_dict(), "architecture": str(architecture) if architecture.is_file() else None}

    def front(self) -> list[dict[str, Any]]:
        """The members of the run's Pareto front (`RUN_DIR/pareto.json`), fittest first, each with `key`,
        `genome`, `step` and a value per objective; an empty list for a single-objective search (or before any
        result)."""
        return read_front(self.path)

    def _read(self) -> list[Any]:
        if not self._run.log.exists():
            return []
        return read_results(self._run.log, line_rules(self.config))

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"


def search(
    config: ConfigSource,
    run_dir: str | Path | None = None,
    workers: int | None = None,
    *,
    overrides: Sequence[str] = (),
    max_evaluations: int | None = None,
    **keyed: Any,
) -> Run:
    """A new search of `config` (a path, a shipped name or a mapping) with its overrides, into `run_dir` (default
    runs/<name>-<time>, which must be empty or absent); `workers` 0 evaluates in this process, None as the config
    says (`ray.workers`). Returns the run, finished, or paused by `max_evaluations` or a signal (then
    `resume` continues it)."""
    from nas.run.driver import search_command

    resolved = resolved_config(config, overrides, keyed)
    path = Path(run_dir) if run_dir is not None else default_run_dir(resolved)
    with tempfile.TemporaryDirectory(prefix="nas-config-") as folder:
        file = Path(folder) / "config.yaml"
        file.write_text(resolved.to_yaml(), encoding="utf-8")
        search_command(file, run_dir=path, workers=workers, max_evaluations=max_evaluations)
    return Run(path)


def resume(
    run_dir: str | Path, budget: int | None = None, workers: int | None = None, *, max_evaluations: int | None = None
) -> Run:
    """Continue the search of `run_dir` from its checkpoint and log; `budget` raises its evaluation budget to that
    many (`nas resume --budget`), so a finished search goes on to it. Returns the run."""
    from nas.run.driver import resume_command

    run = Run(run_dir)
    resume_command(run.path, budget=budget, workers=workers, max_evaluations=max_evaluations)
    return run


def resolved_config(config: ConfigSource, overrides: Sequence[str], keyed: Mapping[str, Any]) -> Config:
    """`config` with `overrides` then the keyword overrides applied, validated; a bad value names its key path,
    and the override that gave it."""
    if isinstance(config, Mapping):
        source, data, base = "the config mapping", dict(config), Path.cwd()
    else:
        path = resolve_config(config)
        source, data, base = str(path), load_yaml_mapping(path, "config"), path.resolve().parent
    data = apply_overrides(data, overrides)
    for name, value in keyed.items():
        set_at(data, key_path(name), value, f"keyword {name}")
    try:
        return parse_config(data, base)
    except UserError as exc:
        given = given_by(exc.key, overrides, keyed)
        error = UserError(f"{source}: {exc}{given}")
        error.key = exc.key
        raise error from None


def key_path(name: str) -> list[str]:
    """A keyword override's key path: `search__budget__evaluations` -> [search, budget, evaluations]."""
    parts = name.split("__")
    if not all(parts):
        raise UserError(f"keyword {name}: must be KEY__PATH names joined by '__' (e.g. search__budget__evaluations)")
    return parts


def given_by(key: str | None, overrides: Sequence[str], keyed: Mapping[str, Any]) -> str:
    """` (given by keyword x__y)` or ` (given by overrides)` when an override set the bad key, else ''."""
    named = [name for name in keyed if from_override(key, [".".join(key_path(name))])]
    if named:
        return f" (given by keyword {named[-1]})"
    return " (given by overrides)" if from_override(key, overrides) else ""
