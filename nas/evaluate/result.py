"""`Result`: one finished evaluation, exactly as a line of `evaluations.jsonl` (DESIGN.md section 2).

Fields of the contract: `key`, `genome`, `status` (`ok`, `failed`, `timeout`, `oom`), `fitness` (validation
accuracy in [0, 1], None unless ok), `params`, `flops`, `seconds`, `attempts`, `worker`, `error` (None unless
failed or oom: a log line of ok or timeout with one is refused, `nas.run.runlog`), `step`. `metrics` carries
the trainer's extras (test accuracy, images/s, peak memory).

`oom` is the one transient status: the candidate ran out of memory (CUDA or host), which on a shared or packed
GPU may be a neighbour's doing rather than its own. It is logged (with its error) and told to the strategy as
a failure for this step, but it is not a finished evaluation: resume and the log's cache lookup treat the
genome as not done, so it is trained again when asked again.

Under `search.fidelity` a line is one rung a candidate reached: `epochs` says which (absent otherwise, so a log
without fidelity reads as before), and the log's cache is keyed by (key, epochs). `state` is the rung's training
state on its way from the worker to the driver (`RUN_DIR/rungs/`); it is never part of a log line.

`weights` is the trained network of an `ok` result of the `train` objective (`nas.evaluate.weightsfile`, a few
MB at most), on its way to the driver, which keeps the best one's (`nas.run.best_weights`) and drops the rest;
it is never part of a log line either.
"""

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "failed", "timeout", "oom"]
TRANSIENT = ("oom",)


@dataclass
class Result:
    key: str
    genome: dict[str, Any]
    status: Status
    fitness: float | None
    params: int | None = None
    flops: int | None = None
    seconds: float = 0.0
    attempts: int = 1
    worker: str | None = None
    error: str | None = None
    step: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    state: bytes | None = field(default=None, repr=False, compare=False)
    weights: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def transient(self) -> bool:
        """Not a finished evaluation (out of memory): the cache does not answer it, resume retrains it."""
        return self.status in TRANSIENT

    def to_dict(self) -> dict[str, Any]:
        """The log line: no state, no weights, and `epochs` only when it is a rung of `search.fidelity`."""
        out = asdict(dataclasses.replace(self, state=None, weights=None))
        del out["state"], out["weights"]
        if out["epochs"] is None:
            del out["epochs"]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        names = set(cls.__dataclass_fields__) - {"state", "weights"}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def failure(cls, key: str, genome: dict[str, Any], error: str, status: Status = "failed", **kw: Any):
        """A failed (or timed-out) evaluation carrying its error text."""
        return cls(key=key, genome=genome, status=status, fitness=None, error=error, **kw)
