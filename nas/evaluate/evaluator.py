"""The evaluator contract: genomes in, results streamed back as each finishes. Knows nothing of strategies.

`evaluate(genomes, on_result)` calls `on_result(index, result)` once per genome, the moment that genome's result
exists (in completion order, which need not be ask order): the driver appends it to the log right there, so a
crash loses only what was still in flight. `LocalEvaluator` runs candidates one after another in this process
(`--workers 0`, debugging); `RayEvaluator` (`nas.evaluate.ray_evaluator`) runs them as Ray tasks.
"""

import socket
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from nas.evaluate.objective import Objective
from nas.evaluate.result import Result
from nas.genome.genome import Genome

ResultCallback = Callable[[int, Result], None]


class Evaluator(Protocol):
    """`safe_point`, set by the driver, is called where stopping is safe (between candidates, and in a wait
    loop at least once a second); it raises to stop, and an evaluator lets that propagate."""

    safe_point: Callable[[], None] | None

    def evaluate(self, genomes: Sequence[Genome], on_result: ResultCallback) -> None: ...

    def close(self) -> None: ...


class LocalEvaluator:
    """In-process, sequential evaluation: the reference every other evaluator must agree with."""

    def __init__(self, objective: Objective, device: str | None = None):
        self.objective = objective
        self.device = device
        self.worker = f"local:{socket.gethostname()}"
        self.safe_point: Callable[[], None] | None = None

    def evaluate(self, genomes: Sequence[Genome], on_result: ResultCallback) -> None:
        for index, genome in enumerate(genomes):
            if self.safe_point is not None:
                self.safe_point()
            start = time.perf_counter()
            result = self.objective(genome, self.device)
            result.worker = result.worker or self.worker
            result.seconds = result.seconds or time.perf_counter() - start
            on_result(index, result)

    def close(self) -> None:
        pass
