"""The evaluator contract: jobs in, results streamed back as each finishes. Knows nothing of strategies.

A job (`nas.evaluate.job.Job`) is a whole evaluation of a genome or one rung of `search.fidelity`; the
evaluator runs either on the run's objective through `run_job`, and tells them apart nowhere else.
Two ways in, one machinery underneath:
- `evaluate(jobs, on_result)` (the sync driver): calls `on_result(index, result)` once per job, the moment
  that job's result exists (in completion order, which need not be ask order): the driver appends it to the
  log right there, so a crash loses only what was still in flight.
- `submit(job) -> ticket` and `wait(timeout) -> [(ticket, result), ...]` (the async driver): submit one
  candidate at a time, and take back whichever have finished (at least one, unless `timeout` seconds pass
  first; an empty list also when nothing is outstanding). `outstanding()` counts submitted candidates whose
  result has not been taken yet, `slots()` how many candidates can run at the same time (what the async
  driver keeps busy), and `cancel()` abandons every outstanding candidate.

`evaluate` is `submit` for each job, then `wait` until none is outstanding: the two cannot disagree.
`LocalEvaluator` runs candidates one after another in this process (`--workers 0`, debugging);
`RayEvaluator` (`nas.evaluate.ray_evaluator`) runs them as Ray tasks.
"""

import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from nas.evaluate.job import Job, run_job
from nas.evaluate.objective import Objective
from nas.evaluate.result import Result

ResultCallback = Callable[[int, Result], None]
Finished = list[tuple[int, Result]]  # (ticket, result) pairs, in completion order


class Evaluator(Protocol):
    """`safe_point`, set by the driver, is called where stopping is safe (between candidates, and in a wait
    loop at least once a second); it raises to stop, and an evaluator lets that propagate."""

    safe_point: Callable[[], None] | None

    def submit(self, job: Job) -> int: ...

    def wait(self, timeout: float | None = None) -> Finished: ...

    def outstanding(self) -> int: ...

    def slots(self) -> int: ...

    def cancel(self) -> None: ...

    def evaluate(self, jobs: Sequence[Job], on_result: ResultCallback) -> None: ...

    def close(self) -> None: ...


def evaluate_all(evaluator: Evaluator, jobs: Sequence[Job], on_result: ResultCallback) -> None:
    """`evaluate` in terms of submit/wait: every job, `on_result(index, result)` as each finishes.

    Whatever is still outstanding when this unwinds (an exception in `on_result`, a signal) is cancelled.
    """
    index = {evaluator.submit(job): i for i, job in enumerate(jobs)}
    try:
        while evaluator.outstanding():
            for ticket, result in evaluator.wait():
                on_result(index[ticket], result)
    finally:
        if evaluator.outstanding():
            evaluator.cancel()


class LocalEvaluator:
    """In-process, sequential evaluation: the reference every other evaluator must agree with.

    One slot: `submit` only queues, and each `wait` trains the oldest queued candidate and returns its result.
    """

    def __init__(self, objective: Objective, device: str | None = None):
        self.objective = objective
        self.device = device
        self.worker = f"local:{socket.gethostname()}"
        self.safe_point: Callable[[], None] | None = None
        self._queue: deque[tuple[int, Job]] = deque()
        self._tickets = 0

    def submit(self, job: Job) -> int:
        self._tickets += 1
        self._queue.append((self._tickets, job))
        return self._tickets

    def wait(self, timeout: float | None = None) -> Finished:
        if not self._queue:
            return []
        if self.safe_point is not None:
            self.safe_point()
        ticket, job = self._queue[0]
        start = time.perf_counter()
        result = run_job(self.objective, job, self.device)
        self._queue.popleft()  # only once it ran: an interrupted candidate stays outstanding
        result.worker = result.worker or self.worker
        result.seconds = result.seconds or time.perf_counter() - start
        return [(ticket, result)]

    def outstanding(self) -> int:
        return len(self._queue)

    def slots(self) -> int:
        return 1

    def cancel(self) -> None:
        self._queue.clear()

    def evaluate(self, jobs: Sequence[Job], on_result: ResultCallback) -> None:
        evaluate_all(self, jobs, on_result)

    def close(self) -> None:
        self._queue.clear()
