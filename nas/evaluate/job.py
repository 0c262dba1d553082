"""The unit of work the evaluators run: a whole evaluation of one genome, or one rung of `search.fidelity`.

`Job(genome)` is a whole evaluation: the objective's `__call__`, training to the full `fitness.epochs`.
`Job(genome, epochs=e, full_epochs=E, state=s)` is one rung: the objective's `train_rung`, training to epoch e
of the E-epoch schedule from `state` (the previous rung's bytes, as the driver read and checked them from
`RUN_DIR/rungs/`; None at the first rung, or when that file was missing or failed a check: then the rung trains
from epoch 0, to the same result). Its result carries `epochs` and the new rung state back to the driver
(through Ray's object store; the driver writes it under `RUN_DIR/rungs/`). The state travels inside the job, so a
worker never needs the driver's disk: that is what lets a promoted candidate continue on any node of a cluster.

Under `search.inherit` a whole evaluation may carry a `Parent`: the genome of its nearest evaluated relative, that
relative's trained weights (`nas.evaluate.weightsfile` bytes, as the driver read and checked them from
`RUN_DIR/weights/`), their relatedness distance, and the epochs the child trains (a complete schedule of its own).
The objective's `inherit` transplants the weights into the child and trains it; the weights travel inside the
job for the reason the rung state does.

Both evaluators (`LocalEvaluator`, `RayEvaluator`) hand every job to `run_job` with the run's objective as it
is, and name the results they make themselves (failures, timeouts) by `job.genome`.
"""

from dataclasses import dataclass, field

from nas.evaluate.objective import Objective
from nas.evaluate.parent import Parent
from nas.evaluate.result import Result
from nas.genome.genome import Genome


@dataclass(frozen=True)
class Job:
    """What to train (module docstring). `epochs` None is a whole evaluation; a rung sets `epochs` and
    `full_epochs` together, and only a rung may start from a `state`; only a whole evaluation has a `parent`."""

    genome: Genome
    epochs: int | None = None
    full_epochs: int | None = None
    state: bytes | None = field(default=None, repr=False)  # up to gigabytes: kept out of reprs and tracebacks
    parent: Parent | None = None  # `search.inherit`: the relative this whole evaluation starts from

    def __post_init__(self) -> None:
        if (self.epochs is None) != (self.full_epochs is None):
            raise ValueError("a rung job sets both epochs and full_epochs, a whole evaluation neither")
        if self.epochs is None and self.state is not None:
            raise ValueError("only a rung job starts from a state")
        if self.epochs is not None and self.parent is not None:
            raise ValueError("only a whole evaluation inherits from a parent")

    @property
    def key(self) -> str:
        return self.genome.key


def run_job(objective: Objective, job: Job, device: str | None = None) -> Result:
    """Run `job` on `objective`: a whole evaluation, or one rung whose result says which rung it is."""
    # `__post_init__` sets both or neither; checking both lets the type checker see `full_epochs` is an int
    if job.epochs is None or job.full_epochs is None:
        if job.parent is not None:
            return objective.inherit(job.genome, job.parent, device)
        return objective(job.genome, device)
    result = objective.train_rung(job.genome, job.epochs, job.full_epochs, job.state, device)
    result.epochs = job.epochs
    return result
