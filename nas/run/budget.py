"""The budget of a search, one object for the live loop and for the async replay.

What is counted: `search.budget.evaluations` caps the finished evaluations of the run (distinct genomes the log
answers; an `oom` line is not one, repeats are free); `--max-evaluations` caps the new evaluations of this
invocation (a later rung of a candidate is not a new one); `search.budget.hours` caps the summed wall time of
every invocation, the time of earlier ones coming from the checkpoint. The loop and the replay ask the same
object how many genomes may be in flight (`room`), so a resumed async run rebuilds exactly the asks of the run it
continues: two counters of the same budget were once two answers.
"""

import time
from dataclasses import dataclass, field


@dataclass
class Budget:
    """`search.budget` and `--max-evaluations` of one invocation, and the clock they are checked against."""

    evaluations: int | None = None  # finished evaluations the run may hold
    hours: float | None = None  # wall time of all invocations together
    limit: int | None = None  # new evaluations of this invocation (`--max-evaluations`)
    elapsed_before: float = 0.0  # seconds spent by earlier invocations (the checkpoint's `elapsed_seconds`)
    new: int = 0  # new evaluations of this invocation so far
    started: float = field(default_factory=time.monotonic)

    def remaining(self, finished: int) -> int | None:
        """New evaluations still allowed with `finished` in the log (None: no evaluation-count limit)."""
        caps = []
        if self.evaluations is not None:
            caps.append(self.evaluations - finished)
        if self.limit is not None:
            caps.append(self.limit - self.new)
        return max(min(caps), 0) if caps else None

    def spent(self, finished: int) -> bool:
        """Whether the run's evaluation budget is used up with `finished` in the log."""
        return self.evaluations is not None and finished >= self.evaluations

    def room(self, target: int, finished: int) -> int:
        """How many genomes may be in flight with `finished` told: `target`, fewer near the end of the budget."""
        return target if self.evaluations is None else max(0, min(target, self.evaluations - finished))

    def elapsed(self) -> float:
        """Seconds spent by the whole run so far, this invocation included."""
        return self.elapsed_before + time.monotonic() - self.started

    def out_of_time(self) -> bool:
        return self.hours is not None and self.elapsed() >= self.hours * 3600
