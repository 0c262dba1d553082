"""A finished (or paused, or still running) run directory, read once for the commands that look back at it.

`nas export` and `nas report` never write the log or the checkpoint; they read the resolved config, every
result of `evaluations.jsonl` (through `read_results`, which skips a torn last line) and the newest valid
checkpoint, which holds the run's fixed architecture keys (`architecture_base`), its seed, its step and its
wall time. Reading a run that is still going is safe: the log is append-only and the checkpoint is replaced
atomically, so the snapshot is simply the state at the moment it was taken.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.config import Config
from nas.errors import UserError
from nas.evaluate.result import Result
from nas.genome.architecture import Architecture
from nas.run.checkpoint import load_checkpoint
from nas.run.loop import architecture_of
from nas.run.rundir import RunDir, open_run_dir
from nas.run.runlog import line_rules, ranked, read_results
from nas.run.state import RunState


@dataclass(frozen=True)
class RunSnapshot:
    """What a run directory holds, in log order, plus the ranking of its `ok` results."""

    run: RunDir
    config: Config
    results: list[Result]
    state: RunState
    best_first: list[Result] = field(default_factory=list)

    @property
    def base(self) -> dict[str, Any]:
        """The fixed architecture keys every candidate of the run shares (channels, classes, stem, ...)."""
        return self.state.architecture_base

    @property
    def seed(self) -> int:
        return self.state.seed

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def elapsed_seconds(self) -> float:
        """Wall time of all sessions up to the last checkpoint (the search's cost in hours)."""
        return self.state.elapsed_seconds

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    def pick(self, rank: int) -> Result:
        """The `rank`-th best ok result (1 = best); a `UserError` when the run has fewer."""
        if rank < 1:
            raise UserError(f"--rank must be >= 1, got {rank}")
        if not self.best_first:
            raise UserError(f"{self.run.path} has no ok results yet ({len(self.results)} evaluations, all failed)")
        if rank > len(self.best_first):
            raise UserError(f"--rank {rank} is beyond the {len(self.best_first)} ok results of {self.run.path}")
        return self.best_first[rank - 1]

    def architecture(self, result: Result, provenance: dict[str, Any] | None = None) -> Architecture:
        """The network a log line describes: its genome with the run's fixed parts."""
        return architecture_of(self.base, result.genome, provenance or {})


def load_snapshot(path: str | Path) -> RunSnapshot:
    """Read a run directory; a `UserError` when it is not one or nothing has finished in it yet."""
    p = Path(path)
    run = open_run_dir(p)  # a file, a missing folder or one without config.yaml: one line saying which
    config = run.load_config()
    results = read_results(run.log, line_rules(config))  # a line this run cannot write never ranks
    if not results:
        raise UserError(f"{p}: evaluations.jsonl is empty; nothing has finished in this run yet")
    try:
        checkpoint = load_checkpoint(run.path)
    except UserError:
        raise UserError(f"{p}: no valid checkpoint.json (it holds the run's fixed architecture keys)") from None
    if not isinstance(checkpoint.get("architecture_base"), dict):
        raise UserError(f"{p}: checkpoint.json has no architecture_base; was it written by `nas search`?")
    return RunSnapshot(run, config, results, RunState.from_dict(checkpoint, config.seed), ranked(results))
