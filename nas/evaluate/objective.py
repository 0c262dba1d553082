"""The objective contract: a picklable callable from `Genome` to `Result` that never raises.

An objective is built once per search from the config (it holds the loaded dataset for `train`), shipped to
workers (once, through Ray's object store), and called per candidate: `__call__` for a whole evaluation,
`train_rung` for one rung of `search.fidelity`, `inherit` for a whole evaluation that starts from a relative's
weights (`search.inherit`). The evaluators reach all three through `nas.evaluate.job.run_job`.
`OBJECTIVES` maps `fitness.objective` names to factories `(config, space) -> Objective`.
"""

import importlib
from collections.abc import Callable
from typing import Protocol

from nas.config import Config
from nas.evaluate.parent import Parent
from nas.evaluate.result import Result
from nas.genome.architecture import Architecture
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.registry import Registry


class Objective(Protocol):
    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        """Score one genome; any failure inside becomes a failed `Result`, never an exception."""
        ...

    def train_rung(
        self, genome: Genome, epochs: int, full_epochs: int, state: bytes | None, device: str | None
    ) -> Result:
        """One rung of `search.fidelity`: train `genome` to epoch `epochs` of the `full_epochs` schedule, from
        `state` (the previous rung's, None to start from epoch 0). The result carries `epochs` and the new state
        (None at the top rung); any failure becomes a failed `Result`, never an exception."""
        ...

    def inherit(self, genome: Genome, parent: Parent, device: str | None) -> Result:
        """`search.inherit`: a whole evaluation of `genome` that starts from `parent`'s trained weights where
        shapes allow and trains `parent.epochs` epochs; its metrics say what it inherited (`inherited_from`) and
        the epochs trained (`epochs`). Any failure becomes a failed `Result`, never an exception."""
        ...

    def architecture(self, genome: Genome) -> Architecture:
        """The full architecture (fixed parts included) this objective builds for `genome`."""
        ...


ObjectiveFactory = Callable[[Config, SearchSpace], Objective]
OBJECTIVES: Registry[ObjectiveFactory] = Registry("objective")


# Where each objective lives: only the one a config names is imported (`synthetic` needs no dataset code).
OBJECTIVE_MODULES = {"synthetic": "nas.evaluate.synthetic", "train": "nas.evaluate.train_objective"}


def build_objective(config: Config, space: SearchSpace) -> Objective:
    """The objective `fitness.objective` names, built once per search (loads the dataset for `train`)."""
    name = config.fitness.objective
    if name in OBJECTIVE_MODULES:
        importlib.import_module(OBJECTIVE_MODULES[name])
    return OBJECTIVES.get(name, key="fitness.objective")(config, space)
