"""The objective contract: a picklable callable from `Genome` to `Result` that never raises.

An objective is built once per search from the config (it holds the loaded dataset for `train`), shipped to
workers (once, through Ray's object store), and called per candidate. `OBJECTIVES` maps `fitness.objective`
names to factories `(config, space) -> Objective`.
"""

from collections.abc import Callable
from typing import Protocol

from nas.config import Config
from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.registry import Registry


class Objective(Protocol):
    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        """Score one genome; any failure inside becomes a failed `Result`, never an exception."""
        ...


ObjectiveFactory = Callable[[Config, SearchSpace], Objective]
OBJECTIVES: Registry[ObjectiveFactory] = Registry("objective")
