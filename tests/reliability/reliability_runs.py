"""What the reliability tests share: small configs, the reference runs they are compared with, reading a run's
log, and the real `nas` command line called in-process.

Two reference runs, each made once per test session (the first module that asks makes it; the others reuse
it read-only, copying it when they need to change it):
- `digits_reference`: a real search with real training on the bundled digits, tiny (1 epoch, a 30% subset,
  15 evaluations, in-process evaluator). Training on the CPU is deterministic for a seed, so any other way of
  reaching the same end (killed and resumed, say) must give exactly the same log content.
- `synthetic_reference`: the smoke search on the synthetic objective (40 evaluations in batches of 6,
  milliseconds each), for the tests that need many runs (disk faults, corrupt state).
"""

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

# One thread per training process: the same numbers on every run, and no oversubscription of a busy machine.
THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

DIGITS_EVALUATIONS = 15
SYNTHETIC_EVALUATIONS = 40


def digits_config(folder: Path, evaluations: int = DIGITS_EVALUATIONS) -> Path:
    """search_configs/digits_quick.yaml cut to seconds a candidate: 1 epoch on 30% of the training images."""
    data = yaml.safe_load((ROOT / "search_configs/digits_quick.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["dataset"].update({"train_subset": 0.3, "validation_fraction": 0.2})
    data["fitness"].update({"epochs": 1, "device": "cpu"})
    data["search"]["budget"] = {"evaluations": evaluations}
    data["search"]["pso"] = {"swarm_size": 2}
    data["search"]["ga"] = {"population": 3, "generations": 2, "tournament_size": 2, "elitism": 1}
    data["resources"] = {"cpus_per_trial": 1, "max_retries": 1}
    path = folder / "digits_tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def synthetic_config(folder: Path, evaluations: int = SYNTHETIC_EVALUATIONS, **sections: dict[str, Any]) -> Path:
    """The shipped smoke search (synthetic objective) with a budget and batches of 6 (2 particles x 3 shortcut
    patterns), so that a run of 40 evaluations writes a checkpoint every few lines; plus any section overrides."""
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["search"]["budget"] = {"evaluations": evaluations}
    data["search"]["pso"] = {"swarm_size": 2}
    data["search"]["ga"] = {"population": 3, "generations": 2, "tournament_size": 2, "elitism": 1}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = folder / "synthetic.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def log_lines(run: Path) -> list[dict[str, Any]]:
    """Every complete line of the run's log, parsed (a torn last line, without its newline, is left out)."""
    path = run / "evaluations.jsonl"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n") and line.strip()]


def keys(run: Path) -> list[str]:
    """The log's keys in log order."""
    return [r["key"] for r in log_lines(run)]


def content(run: Path) -> dict[str, tuple]:
    """What must not depend on how a run got there: each genome's outcome, by key."""
    return {r["key"]: (r["status"], r["fitness"], r["params"], r["flops"]) for r in log_lines(run)}


def best(run: Path) -> tuple[str, float]:
    """The best ok result's key and fitness, ranked as the search ranks (fitness, then params, then key)."""
    top = min((r for r in log_lines(run) if r["status"] == "ok"), key=lambda r: (-r["fitness"], r["params"], r["key"]))
    return top["key"], top["fitness"]


@dataclass
class Outcome:
    """What one in-process call of the command line did."""

    code: int | None
    stdout: str
    stderr: str
    exception: BaseException | None = None

    def error_lines(self) -> list[str]:
        """The lines the command line itself printed as errors (`nas CMD: error: ...`), not log records."""
        return [line for line in self.stderr.splitlines() if line.startswith("nas ") and ": error: " in line]


def cli(*argv: str) -> Outcome:
    """`nas ARGV` through `nas.cli.main` in this process: exit code and output, or the exception that escaped
    (which a real process would print as a traceback)."""
    from nas.cli import main

    out, err = io.StringIO(), io.StringIO()
    code, exception = None, None
    # `main` configures logging only once per process (and not at all under pytest, whose capture handler is
    # already on the root logger), so the warnings a real process prints on stderr are routed there by hand.
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # noqa: BLE001  (the point: report it, do not crash the test runner)
            exception = exc
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
    return Outcome(code, out.getvalue(), err.getvalue(), exception)


_references: dict[str, tuple[Path, Path]] = {}


def digits_reference(tmp_path_factory: Any) -> tuple[Path, Path]:
    """(config, run) of the uninterrupted tiny digits search, made once per session by the real command."""
    if "digits" not in _references:
        from conftest import run_nas

        folder = tmp_path_factory.mktemp("digits-reference")
        cfg = digits_config(folder)
        out = run_nas("search", str(cfg), "--run-dir", str(folder / "run"), "--workers", "0", env=THREADS_ENV)
        assert out.returncode == 0, out.stderr[-3000:]
        assert len(log_lines(folder / "run")) == DIGITS_EVALUATIONS
        _references["digits"] = (cfg, folder / "run")
    return _references["digits"]


def synthetic_reference(tmp_path_factory: Any) -> tuple[Path, Path]:
    """(config, run) of the uninterrupted synthetic search, made once per session in-process."""
    if "synthetic" not in _references:
        folder = tmp_path_factory.mktemp("synthetic-reference")
        cfg = synthetic_config(folder)
        out = cli("search", str(cfg), "--run-dir", str(folder / "run"), "--workers", "0")
        assert out.code == 0 and out.exception is None, (out.stderr, out.exception)
        _references["synthetic"] = (cfg, folder / "run")
    return _references["synthetic"]


def copy_run(run: Path, to: Path) -> Path:
    """A private copy of a run directory, to damage or continue without touching the reference."""
    shutil.copytree(run, to)
    return to


def paused_synthetic_run(cfg: Path, to: Path, evaluations: int = 20) -> Path:
    """A synthetic run stopped cleanly after `evaluations`, with both a checkpoint and a previous one."""
    out = cli("search", str(cfg), "--run-dir", str(to), "--workers", "0", "--max-evaluations", str(evaluations))
    assert out.code == 0 and out.exception is None, (out.stderr, out.exception)
    assert (to / "checkpoint.json").exists() and (to / "checkpoint.prev.json").exists()
    return to


@contextlib.contextmanager
def scratch(fallback: Path) -> Iterator[Path]:
    """A folder for a test that makes hundreds of small runs: on /dev/shm (a tmpfs, where an fsync costs nothing)
    when the machine has one, else `fallback`. What those tests check is how evonas handles a failed write or a
    damaged file, not whether the disk keeps what was fsynced, so a memory file system changes nothing there
    and saves a minute of fsyncs."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield fallback
        return
    folder = Path(tempfile.mkdtemp(prefix="evonas-reliability-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def environ_without_ray() -> dict[str, str]:
    """This process's environment minus Ray's address and auth overrides (a clean embedded Ray)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
