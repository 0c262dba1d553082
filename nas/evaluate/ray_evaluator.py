"""`RayEvaluator`: each candidate is a Ray task; results stream back the moment each one finishes.

The evaluator contract (`nas.evaluate.evaluator`) with Ray underneath (DESIGN.md section 5):
- One task per job (`nas.evaluate.job`: a candidate's whole evaluation, or one rung of it), asking
  `resources.cpus_per_trial` CPUs and `resources.gpus_per_trial` GPUs (fractions pack several small candidates
  on one card). Worker processes are reused from one candidate to the next (`resources.reuse_workers`, default
  true), and each task hands the CUDA memory its candidate cached back to the card when it ends, so the next
  candidate and the neighbours on a shared card find it free. With
  `reuse_workers: false` a task asking for GPUs gets a fresh worker process (`max_calls=1`, Ray's own default
  for GPU tasks), which pays seconds of start-up per candidate (interpreter, torch import, CUDA context).
- The objective, with the dataset it carries, goes to the object store once per evaluator (`ray.put`); each
  task gets it by reference, so a node fetches it once and its tasks read it from there. Ray serialises numpy
  arrays out of band (pickle protocol 5), so in a worker the dataset's arrays are read-only views of the node's
  shared memory, as stored (uint8 images stay uint8): no worker decodes or copies the data, the trainer wraps
  the views without a copy (`nas.evaluate.trainer.shared_tensor`), and N workers of a node share one copy. A
  reused worker gets views of the same pages again for each candidate (the objective is deserialised per task,
  as an argument, so that no task blocks in `ray.get`, see `run_candidate`). The task hands the
  objective the device Ray assigned: "cuda" when `ray.get_gpu_ids()` is non-empty (Ray has set
  `CUDA_VISIBLE_DEVICES` to the card(s) it granted), "cpu" otherwise.
- Worker memory. After each candidate the task hands the heap memory the candidate freed back to the system
  (`nas.evaluate.host_memory`), so an idle reused worker holds what torch's import and the process need, not
  the high-water mark of the largest candidate it trained.
- `ray.wait` streams results back in completion order: `wait()` returns them as they finish (and `evaluate`
  hands each to `on_result` at once). `workers` caps the candidates in flight, the rest queue here (None:
  submit all and let Ray queue them, which is also what lets an autoscaling cluster see the demand and add GPU
  nodes). `slots()` is `workers`, or else what the cluster's declared resources hold at once.
- Faults. A worker process or node that dies (`WorkerCrashedError`, `NodeDiedError`, `ObjectLostError`, ...)
  is retried here, not by Ray (tasks run with `max_retries=0`), so `attempts` counts exactly; after
  `resources.max_retries` retries the candidate is a failed result carrying the error. An exception inside the
  objective is already a failed `Result`; one that still escapes it is caught in the task and returned as one
  (`oom` for an out-of-memory), never retried (it would fail again); a `RayTaskError` raised around the task
  (outside the objective) is recorded the same way by the driver. `resources.trial_timeout_s` counts from the
  moment the task starts running, not from submission (a candidate queued behind others, or waiting for the
  autoscaler, is not late): tasks report their start to a small `StartLog` actor, created only when a timeout is
  set and read every `START_POLL_S`; a task over its time is cancelled (`ray.cancel(force=True)` kills its worker)
  and recorded `timeout`, with `error` None as the log contract says. The search always continues.
- Stopping. `safe_point`, when the driver sets it, is called before each submission round and after every
  wait (which blocks for at most `POLL_S`), before the results of that wait are collected, from plain Python:
  the driver's signal handler only sets a flag and this is where the stop is raised, so a Ctrl-C never
  surfaces from inside Ray's compiled code (where it arrives as a `SystemError`).
  The in-flight tasks are then cancelled and not logged, nor is a task that the same Ctrl-C (sent to the
  whole process group) interrupted in its worker: resume trains them.
- Out of memory under packing. With `gpus_per_trial` below 1 each task caps its process's CUDA memory at that
  fraction of the card (`torch.cuda.set_per_process_memory_fraction`), so a candidate that grows past its
  share fails alone instead of starving its neighbours. A candidate that runs out of memory (the objective's
  `oom` result, or torch's `OutOfMemoryError` escaping it) while packed is retried at once,
  once, on a whole card (`num_gpus=1`, cap lifted; `attempts` counts it); an `oom` after that is logged as
  such, a transient status that resume retries (`nas.evaluate.result`).
- `worker` in each result names where it ran: `ray:<node ip>:<node id, 12 hex>:<pid>`. The task says it in its
  own result, a failed one included, so it never depends on whether the start log's mark arrived before the
  result (a candidate that fails at once is often collected first). Only an attempt that returns nothing (its
  worker died, or it was timed out) is named from the start log: the mark when a timeout is set and it arrived,
  None otherwise.

Connecting to Ray is `nas.evaluate.ray_cluster`'s job: the constructor connects (embedded local Ray or an
address) and `close()` shuts down an embedded Ray it started.
"""

import contextlib
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import (
    LocalRayletDiedError,
    NodeDiedError,
    ObjectLostError,
    OutOfMemoryError,
    RayError,
    RaySystemError,
    RayTaskError,
    WorkerCrashedError,
)

from nas.config import RayConfig, ResourcesConfig
from nas.evaluate.evaluator import Finished, ResultCallback, evaluate_all
from nas.evaluate.host_memory import release_host_memory
from nas.evaluate.job import Job, run_job
from nas.evaluate.objective import Objective
from nas.evaluate.ray_cluster import connect
from nas.evaluate.result import Result, Status
from nas.genome.genome import Genome

log = logging.getLogger(__name__)

# The worker, or its node, went away under the task: the candidate itself is not to blame, so try again.
RETRYABLE = (WorkerCrashedError, NodeDiedError, LocalRayletDiedError, ObjectLostError, OutOfMemoryError, RaySystemError)
POLL_S = 1.0  # longest blocking wait, so signals and timeouts are looked at least this often
START_POLL_S = 0.25  # how often the start log is read while a timeout is set
SLOTS_REFRESH_S = 10.0  # how often `slots()` reads the cluster's resources again
ERROR_CHARS = 2000


def worker_name() -> str:
    """`ray:<node ip>:<node id prefix>:<pid>`: which node and which process ran a candidate."""
    node_id = ray.get_runtime_context().get_node_id()
    return f"ray:{ray.util.get_node_ip_address()}:{node_id[:12]}:{os.getpid()}"


def release_after(objective: Objective) -> None:
    """Give back the heap a finished candidate freed, where the objective trains networks. A collection costs
    tens of ms of CPU: after a formula (the synthetic objective) it frees nothing, and on a node of many sleeping
    slots and few cores it capped the whole cluster's rate of candidates."""
    if getattr(objective, "trains_networks", True):
        release_host_memory()


def run_candidate(objective: Objective, job: Job, start_log: Any, token: int, memory_fraction: float = 1.0) -> Result:
    """The task body: report the start, run the job on the objective on Ray's device, say where it ran.

    `objective` arrives as the evaluator's object ref, which Ray resolves before the task starts (fetched to the
    node's object store once, deserialised per task). Nothing in here blocks on Ray: a task waiting in `ray.get`
    lends its CPUs to the next task, which would run more candidates on a node than `cpus_per_trial` allows.
    """
    worker = worker_name()
    if start_log is not None:
        start_log.started.remote(token, worker)
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    if device == "cuda":
        cap_cuda_memory(memory_fraction)
    start = time.perf_counter()
    try:
        result = run_job(objective, job, device)
    except Exception as exc:  # the objective broke its contract: the result says so, and where it ran
        result = escaped(job.genome, exc)
    finally:  # after the except block: the traceback's frames (and their tensors) are gone
        release_after(objective)
        release_cuda_cache()
    result.worker = result.worker or worker
    result.seconds = result.seconds or time.perf_counter() - start
    return result


def escaped(genome: Genome, exc: Exception) -> Result:
    """The failed result of an exception that escaped the objective (`oom` for an out-of-memory)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())[:ERROR_CHARS]
    return Result.failure(genome.key, genome.to_dict(), text, status="oom" if out_of_memory(exc) else "failed")


def cap_cuda_memory(fraction: float) -> None:
    """Cap this process's CUDA memory at its share of the card (lifted again for a whole-card task: workers are
    reused). Nothing to do where CUDA is absent (a cluster that declares GPUs it lacks, as tests do)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(min(max(fraction, 0.0), 1.0))


def out_of_memory(error: BaseException | None) -> bool:
    """Whether an exception from a task is an out-of-memory: torch's CUDA one (by name, to keep torch out of
    the driver) or Python's `MemoryError`."""
    return isinstance(error, MemoryError) or (
        type(error).__name__ == "OutOfMemoryError" and type(error).__module__.startswith("torch")
    )


def release_cuda_cache() -> None:
    """Give the CUDA memory torch's allocator cached for the last candidate back to the card (a reused worker
    keeps only its CUDA context). Runs after `release_host_memory`, whose garbage collection has freed the
    candidate's tensors. Nothing to do where torch was never imported or CUDA never started."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


class StartLog:
    """A Ray actor the tasks tell when they start running; the evaluator drains it to start timeout clocks."""

    def __init__(self) -> None:
        self.marks: dict[int, str | None] = {}

    def started(self, token: int, worker: str) -> None:
        self.marks[token] = worker

    def take(self) -> dict[int, str | None]:
        marks, self.marks = self.marks, {}
        return marks


def cluster_slots(resources: ResourcesConfig, available: dict[str, float]) -> int:
    """How many candidates of `resources` fit at once on a cluster holding `available` (at least 1)."""
    fits = [available.get("CPU", 0.0) / resources.cpus_per_trial]
    if resources.gpus_per_trial > 0:
        fits.append(available.get("GPU", 0.0) / resources.gpus_per_trial)
    return max(1, int(min(fits) + 1e-9))


@dataclass
class Flight:
    """One submitted attempt of one job (`whole`: on a whole card, after an out-of-memory while packed)."""

    ticket: int
    job: Job
    attempt: int
    token: int
    submitted: float
    started: float | None = None
    worker: str | None = None
    whole: bool = False


Flights = dict[ray.ObjectRef, Flight]


class RayEvaluator:
    """Evaluates jobs as Ray tasks (see the module docstring for resources, streaming and faults).

    `RayEvaluator(objective, config.resources, ray_config, workers=N)`: `ray_config.address` None means an
    embedded local Ray (sized for `workers` candidates at once when given), else an existing cluster.
    """

    def __init__(
        self, objective: Objective, resources: ResourcesConfig, ray_config: RayConfig, workers: int | None = None
    ):
        if workers is not None and workers < 1:
            raise ValueError("RayEvaluator needs workers >= 1 (workers 0 is the in-process evaluator)")
        self.resources = resources
        self.workers = workers
        self.connection = connect(ray_config, resources, workers)
        self._objective_ref: ray.ObjectRef | None = ray.put(objective)  # None once closed
        self._task = self._make_task(resources)
        self._whole_task: Any = None
        self._start_log = self._make_start_log() if resources.trial_timeout_s is not None else None
        self._tokens = 0
        self._tickets = 0
        self._polled = 0.0
        self.safe_point: Callable[[], None] | None = None
        # (ticket, job, attempt, whole card) not yet submitted
        self._queue: deque[tuple[int, Job, int, bool]] = deque()
        self._flights: dict[ray.ObjectRef, Flight] = {}
        self._slots: int | None = None
        self._slots_read = 0.0

    @staticmethod
    def _make_task(resources: ResourcesConfig, num_gpus: float | None = None) -> Any:
        """The task with the trial's resources (`num_gpus` overrides `gpus_per_trial`: a whole-card retry)."""
        gpus = resources.gpus_per_trial if num_gpus is None else num_gpus
        max_calls = 1 if gpus > 0 and not resources.reuse_workers else 0
        remote = ray.remote(max_calls=max_calls)(run_candidate)
        return remote.options(
            num_cpus=resources.cpus_per_trial,
            num_gpus=gpus,
            max_retries=0,
            retry_exceptions=False,
            name="nas-candidate",
        )

    @staticmethod
    def _make_start_log() -> Any:
        """The start log actor, on this driver's node (it lives as long as the driver does).

        The affinity is hard: with a soft one Ray is free to place the actor on a worker node (it does, on a
        head that declares no CPUs), and losing that node made the start log unavailable for as long as Ray
        took to declare the node dead; the fallback then started the clocks of candidates queued behind the
        lost node, which never ran and were logged as `timeout` instead of being retried. A 0-CPU actor fits on
        any node, the driver's included.
        """
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        actor = ray.remote(num_cpus=0, max_restarts=-1)(StartLog).options(scheduling_strategy=here).remote()
        ray.get(actor.take.remote())  # up and reachable before the first task reports to it
        return actor

    # --- submit one, wait for any (the evaluator contract) ---------------------------------------------------

    def submit(self, job: Job) -> int:
        """Queue one job (dispatched at once while fewer than `workers` run); returns its ticket."""
        self._tickets += 1
        self._queue.append((self._tickets, job, 1, False))
        self._dispatch()
        return self._tickets

    def wait(self, timeout: float | None = None) -> Finished:
        """The candidates that finished: blocks for the first one, or `timeout` seconds, whichever is first.

        Lost workers are retried here and never returned; timed-out tasks come back as `timeout` results.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue or self._flights:
            self._safe_point()
            self._dispatch()
            ready = self._ready(deadline)
            self._safe_point()  # before collecting: a task the same Ctrl-C interrupted is not a failure
            self._note_starts(self._flights)
            finished: Finished = []
            for ref in ready:
                flight = self._flights[ref]
                result = self._collect(ref, self._flights, flight.job.genome)
                del self._flights[ref]
                if result is None:
                    self._queue.appendleft((flight.ticket, flight.job, flight.attempt + 1, flight.whole))
                elif self._retry_whole(result, flight):
                    self._queue.appendleft((flight.ticket, flight.job, flight.attempt + 1, True))
                else:
                    finished.append((flight.ticket, result))
            finished += self._expire(self._flights)
            if finished or (deadline is not None and time.monotonic() >= deadline):
                return finished
        return []

    def outstanding(self) -> int:
        return len(self._queue) + len(self._flights)

    def slots(self) -> int:
        """Candidates that can run at once: `workers` when given, else what the cluster's resources hold now
        (GPUs / `gpus_per_trial`, CPUs / `cpus_per_trial`, the smaller), read again every `SLOTS_REFRESH_S`
        so that nodes that join or leave are seen."""
        if self.workers is not None:
            return self.workers
        now = time.monotonic()
        if self._slots is None or now - self._slots_read > SLOTS_REFRESH_S:
            self._slots, self._slots_read = cluster_slots(self.resources, ray.cluster_resources()), now
        return self._slots

    def cancel(self) -> None:
        """Abandon every outstanding candidate (best effort: a failing cancel must not hide why we unwind)."""
        for ref in self._flights:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        self._flights.clear()
        self._queue.clear()

    def evaluate(self, jobs: Sequence[Job], on_result: ResultCallback) -> None:
        """Run every job; `on_result(index, result)` as each finishes. In-flight tasks are cancelled on error."""
        evaluate_all(self, jobs, on_result)

    # --- the machinery --------------------------------------------------------------------------------------

    def _safe_point(self) -> None:
        if self.safe_point is not None:
            self.safe_point()

    def _dispatch(self) -> None:
        """Submit queued candidates (retries first) while fewer than `workers` are in flight."""
        while self._queue and (self.workers is None or len(self._flights) < self.workers):
            ticket, job, attempt, whole = self._queue.popleft()
            ref, flight = self._submit(job, ticket, attempt, whole)
            self._flights[ref] = flight

    def _submit(self, job: Job, ticket: int, attempt: int, whole: bool = False) -> tuple[ray.ObjectRef, Flight]:
        self._tokens += 1
        gpus = self.resources.gpus_per_trial
        if whole and self._whole_task is None:
            self._whole_task = self._make_task(self.resources, num_gpus=1)
        task, fraction = (self._whole_task, 1.0) if whole else (self._task, gpus if gpus else 1.0)
        ref = task.remote(self._objective_ref, job, self._start_log, self._tokens, fraction)
        return ref, Flight(ticket, job, attempt, self._tokens, submitted=time.monotonic(), whole=whole)

    def _retry_whole(self, result: Result, flight: Flight) -> bool:
        """An out-of-memory while packed on a shared card: try once more on a whole one."""
        if result.status != "oom" or flight.whole or not 0 < self.resources.gpus_per_trial < 1:
            return False
        log.warning("candidate %d ran out of memory on %g of a GPU; retrying it once on a whole GPU", flight.ticket,
                    self.resources.gpus_per_trial)  # fmt: skip
        return True

    def _ready(self, deadline: float | None) -> list[ray.ObjectRef]:
        """Refs finished now: block for the first (at most one poll period, never past `deadline`), then take
        all others ready."""
        if not self._flights:
            return []
        refs = list(self._flights)
        timeout = self._poll_timeout(self._flights)
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - time.monotonic()))
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return ready

    def _poll_timeout(self, flights: dict[ray.ObjectRef, Flight]) -> float:
        """Block until the next result, but wake for the next start-log read or the nearest deadline."""
        timeout = self.resources.trial_timeout_s
        if self._start_log is None or timeout is None:
            return POLL_S
        now = time.monotonic()
        deadlines = [f.started + timeout - now for f in flights.values() if f.started is not None]
        return max(0.0, min([START_POLL_S, *deadlines]))

    def _collect(self, ref: ray.ObjectRef, flights: dict[ray.ObjectRef, Flight], genome: Genome) -> Result | None:
        """The finished attempt's result; None when a lost worker or node calls for another attempt."""
        flight = flights[ref]
        try:
            result: Result = ray.get(ref)
        except RayTaskError as exc:
            cause = exc.cause if exc.cause is not None else exc
            status: Status = "oom" if out_of_memory(exc.cause) else "failed"
            return self._failure(genome, flights, flight, f"{type(cause).__name__}: {cause}", status)
        except RETRYABLE as exc:
            if flight.attempt <= self.resources.max_retries:
                log.warning("candidate %d lost its worker (%s); attempt %d", flight.ticket, type(exc).__name__,
                            flight.attempt + 1)  # fmt: skip
                return None
            return self._failure(genome, flights, flight, f"{type(exc).__name__}: {exc}")
        except RayError as exc:
            return self._failure(genome, flights, flight, f"{type(exc).__name__}: {exc}")
        result.attempts = flight.attempt
        return result

    def _failure(
        self, genome: Genome, flights: Flights, flight: Flight, error: str, status: Status = "failed"
    ) -> Result:
        """A failed (or `oom`) result; the start log is read first, so that it says where the attempt ran."""
        self._note_starts(flights, force=True)
        elapsed = time.monotonic() - (flight.started or flight.submitted)
        text = " ".join(error.split())[:ERROR_CHARS]
        return Result.failure(genome.key, genome.to_dict(), text, status=status, attempts=flight.attempt,
                              worker=flight.worker, seconds=elapsed)  # fmt: skip

    def _note_starts(self, flights: dict[ray.ObjectRef, Flight], force: bool = False) -> None:
        """Every `START_POLL_S` (or when `force`), read which tasks began running and where; clocks start now."""
        now = time.monotonic()
        if self._start_log is None or not flights or (not force and now - self._polled < START_POLL_S):
            return
        self._polled = now
        try:
            marks = ray.get(self._start_log.take.remote())
        except RayError as exc:  # the actor is restarting: start the unstarted clocks now, never later
            log.warning("start log unavailable (%s); timeout clocks start now", type(exc).__name__)
            marks = {f.token: None for f in flights.values()}
        for flight in flights.values():
            if flight.token in marks and flight.started is None:
                flight.started, flight.worker = now, marks[flight.token]

    def _expire(self, flights: dict[ray.ObjectRef, Flight]) -> Finished:
        """Cancel the tasks running longer than `trial_timeout_s`; their `timeout` results."""
        timeout = self.resources.trial_timeout_s
        expired: Finished = []
        if timeout is None:
            return expired
        now = time.monotonic()
        for ref, flight in list(flights.items()):
            if flight.started is not None and now - flight.started > timeout:
                ray.cancel(ref, force=True)
                del flights[ref]
                genome = flight.job.genome
                result = Result(
                    genome.key,
                    genome.to_dict(),
                    "timeout",
                    None,
                    seconds=now - flight.started,
                    attempts=flight.attempt,
                    worker=flight.worker,
                    metrics={"trial_timeout_s": timeout},
                )
                expired.append((flight.ticket, result))
        return expired

    def close(self) -> None:
        """Drop the objective from the object store and shut down an embedded Ray this evaluator started."""
        self.cancel()
        self._objective_ref = None
        if self._start_log is not None and ray.is_initialized():
            ray.kill(self._start_log)
            self._start_log = None
        self.connection.close()
