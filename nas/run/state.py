"""What a checkpoint holds, as one typed, versioned record; `nas.run.checkpoint` keeps the files it lives in.

Format `nas-checkpoint/1`. Every field below is written by every save. Files written before a field existed
lack it; `from_dict` is the one place that fills such gaps (the migrations), so no reader guesses a default of
its own. A new field gets its default here; a change of meaning gets a new format version and a migration here.
"""

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nas.errors import UserError
from nas.run.checkpoint import load_checkpoint, save_checkpoint


@dataclass
class RunState:
    """The driver's state after a tell: the strategy's, and where the run stands."""

    strategy: dict[str, Any]
    architecture_base: dict[str, Any]
    config_sha256: str
    seed: int
    step: int = 0  # tells so far (a batch in sync, one result in async)
    elapsed_seconds: float = 0.0  # wall time of every invocation so far
    stalled_steps: int = 0  # sync: consecutive batches the log answered whole
    evaluations: int | None = None  # finished evaluations in the log when it was taken (None: not recorded)
    inputs: dict[str, Any] | None = None  # the input files' digests (`nas.run.rundir.input_digests`)
    # async: this session's slots and queue, and how far into the log the strategy has been told
    async_target: int | None = None
    async_position: int | None = None  # log keys told through
    async_lines: int = 0  # under `search.fidelity`: log lines told through
    screened: int = 0  # async with `search.screen`: genomes withdrawn untrained so far (`nas.run.screen`)
    extra: dict[str, Any] = field(default_factory=dict)  # fields this version does not know, kept as they are

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's contents. Shallow, never `dataclasses.asdict`: a deep copy of a large strategy state
        took the async driver 60 ms a checkpoint, time in which no freed slot got its next candidate."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        extra = out.pop("extra")
        for name in ("async_target", "async_position"):
            if out[name] is None:
                del out[name]
        return {**extra, **out}

    @classmethod
    def from_dict(cls, data: dict[str, Any], default_seed: int = 0) -> "RunState":
        """A record from a checkpoint's contents, the migrations of older files applied: `seed` absent is the
        config's (`default_seed`); `evaluations` absent is None (not counted); `async_position` absent is
        `evaluations` (the runs that wrote no position logged no `oom` lines); every other absent field is its
        default. A required field that is absent is a `UserError`."""
        missing = [name for name in ("strategy", "architecture_base", "config_sha256") if name not in data]
        if missing:
            raise UserError(f"the checkpoint lacks {', '.join(missing)}; it was not written by evonas")
        known = {name for name in cls.__dataclass_fields__ if name != "extra"}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("seed", default_seed)
        values.setdefault("async_position", values.get("evaluations") or 0)
        extra = {k: v for k, v in data.items() if k not in known and k != "format"}
        return cls(**values, extra=extra)


def load_state(run_dir: Path, default_seed: int = 0) -> RunState:
    """The newest valid checkpoint of `run_dir` as a record (`load_checkpoint` says which file that is)."""
    return RunState.from_dict(load_checkpoint(run_dir), default_seed)


def save_state_record(run_dir: Path, state: RunState) -> None:
    save_checkpoint(run_dir, state.to_dict())
