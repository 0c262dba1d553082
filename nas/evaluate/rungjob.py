"""A rung of `search.fidelity` as a unit of work the evaluators run like a genome.

The evaluators (`LocalEvaluator`, `RayEvaluator`) hand each item to the objective and name it by `.key` and
`.to_dict()` in the results they make themselves (failures, timeouts); a `RungJob` answers both as its genome
does, so neither evaluator knows about rungs. `RungObjective` wraps the run's objective: it calls the
objective's `train_rung(genome, epochs, full_epochs, state, device)` and returns its result, which carries
`epochs` and the new rung state back to the driver (through Ray's object store; the driver writes it under
`RUN_DIR/rungs/`). The state of the previous rung travels the other way inside the job, so a worker never
needs the driver's disk: that is what lets a promoted candidate continue on any node of a cluster.
"""

from dataclasses import dataclass
from typing import Any

from nas.evaluate.objective import Objective
from nas.evaluate.result import Result
from nas.genome.architecture import Architecture
from nas.genome.genome import Genome


@dataclass(frozen=True)
class RungJob:
    """Train `genome` to epoch `epochs`, from `state` (the previous rung's bytes, as the driver read and checked
    them from `RUN_DIR/rungs/`; None at the first rung, or when that file was missing or failed a check: then
    the rung trains from epoch 0, to the same result)."""

    genome: Genome
    epochs: int
    state: bytes | None = None

    @property
    def key(self) -> str:
        return self.genome.key

    def to_dict(self) -> dict[str, Any]:
        return self.genome.to_dict()


class RungObjective:
    """The run's objective, called one rung at a time (picklable as the objective is)."""

    def __init__(self, objective: Objective, full_epochs: int):
        self.objective = objective
        self.full_epochs = full_epochs

    def architecture(self, genome: Genome) -> Architecture:
        return self.objective.architecture(genome)

    def __call__(self, job: RungJob, device: str | None = None) -> Result:
        result = self.objective.train_rung(job.genome, job.epochs, self.full_epochs, job.state, device)  # type: ignore[attr-defined]
        result.epochs = job.epochs
        return result
