"""RayEvaluator on a real embedded local Ray (one instance for the module): streaming, the workers cap, worker
death and retries, escaped exceptions, timeouts, and the embedded Ray's token authentication."""

import re
import time
from pathlib import Path

import grpc
import pytest
import ray
from conftest import ROOT
from probe_objective import ProbeObjective, fitness_of, genome_of, job_of

from nas.config import RayConfig, ResourcesConfig, parse_config
from nas.evaluate.job import Job, run_job
from nas.evaluate.objective import build_objective
from nas.evaluate.ray_cluster import connect
from nas.evaluate.ray_evaluator import RayEvaluator
from nas.evaluate.result import Result
from nas.genome import load_space

WORKER = re.compile(r"ray:[0-9a-fA-F.:]+:[0-9a-f]{12}:\d+")


@pytest.fixture(scope="module")
def local_ray():
    """The embedded Ray, started once through `connect` exactly as `nas search` starts it (2 CPUs)."""
    connection = connect(RayConfig(), ResourcesConfig(), workers=2)
    assert connection.embedded and connection.owned
    yield connection
    connection.close()
    assert not ray.is_initialized()


def run(objective, growths, workers=None, **resources):
    """Evaluate genomes by growth rate; returns the (index, result, wall time) calls in the order they came."""
    evaluator = RayEvaluator(objective, ResourcesConfig(**resources), RayConfig(), workers=workers)
    calls: list[tuple[int, Result, float]] = []
    try:
        evaluator.evaluate([job_of(g) for g in growths], lambda i, r: calls.append((i, r, time.time())))
    finally:
        evaluator.close()
    assert ray.is_initialized(), "an evaluator must not shut down a Ray it did not start"
    return calls


def max_overlap(results: list[Result]) -> int:
    """The most candidates running at the same instant, from the start/end times they recorded."""
    events = sorted([(r.metrics["start"], 1) for r in results] + [(r.metrics["end"], -1) for r in results])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_results_stream_in_completion_order(local_ray, tmp_path):
    # Candidate 1 can only finish after the driver has received the three others: they must arrive while it runs.
    release = tmp_path / "release"
    objective = ProbeObjective(str(tmp_path), {1: f"wait-file:{release}"})
    delivered: list[int] = []

    def on_result(index, result):
        delivered.append(index)
        if len(delivered) == 3:
            release.write_text("go")

    evaluator = RayEvaluator(objective, ResourcesConfig(), RayConfig(), workers=2)
    results: dict[int, Result] = {}
    evaluator.evaluate([job_of(g) for g in (1, 2, 3, 4)], lambda i, r: (results.update({i: r}), on_result(i, r)))
    evaluator.close()
    assert sorted(delivered) == [0, 1, 2, 3] and delivered[-1] == 0
    assert results[0].metrics["released"] is True
    for index, result in results.items():
        assert result.status == "ok" and result.attempts == 1 and result.error is None
        assert result.fitness == fitness_of(genome_of(index + 1))
        assert result.metrics["device"] == "cpu"
        assert WORKER.fullmatch(result.worker), result.worker


def test_workers_caps_candidates_in_flight(local_ray, tmp_path):
    one = run(ProbeObjective(str(tmp_path / "one"), default="sleep:0.3"), range(1, 6), workers=1)
    assert max_overlap([r for _, r, _ in one]) == 1
    # With a cap of 2 the first two wait for each other, so two do run at once on the 2-CPU Ray.
    two = run(ProbeObjective(str(tmp_path / "two"), default="barrier:2"), range(1, 5), workers=2)
    assert max_overlap([r for _, r, _ in two]) == 2
    assert all(r.status == "ok" for _, r, _ in one + two)


def test_dead_worker_is_retried_then_fails(local_ray, tmp_path):
    objective = ProbeObjective(str(tmp_path), {1: "crash-once", 2: "crash"})
    calls = run(objective, (1, 2, 3), max_retries=2)
    results = {i: r for i, r, _ in calls}
    assert len(calls) == 3
    assert results[0].status == "ok" and results[0].attempts == 2
    assert results[0].fitness == fitness_of(genome_of(1))
    assert results[1].status == "failed" and results[1].attempts == 3 and results[1].fitness is None
    assert "WorkerCrashedError" in results[1].error
    assert results[2].status == "ok" and results[2].attempts == 1


def test_timeout_counts_running_time_and_escaped_exception_fails_once(local_ray, tmp_path):
    # One candidate at a time (2 CPUs each): candidate 1 hangs and is cancelled after 2 s of running; the
    # others wait behind it in Ray's queue for longer than that and are not timed out for it.
    objective = ProbeObjective(str(tmp_path), {1: "hang", 3: "raise"})
    calls = run(objective, (1, 2, 3), cpus_per_trial=2, trial_timeout_s=2.0, max_retries=2)
    results = {i: r for i, r, _ in calls}
    hung, waited, broke = results[0], results[1], results[2]
    assert hung.status == "timeout" and hung.fitness is None and hung.error is None and hung.attempts == 1
    assert WORKER.fullmatch(hung.worker) and hung.seconds >= 2.0
    assert waited.status == "ok" and waited.attempts == 1
    starts = {g: min(p.stat().st_mtime for p in Path(tmp_path).glob(f"started-{g}-*")) for g in (1, 2, 3)}
    behind = [starts[g] - starts[1] for g in (2, 3) if starts[g] > starts[1]]
    assert behind and min(behind) >= 2.0, f"candidates queued behind the hang should wait it out: {starts}"
    assert broke.status == "failed" and broke.attempts == 1 and broke.error.startswith("RuntimeError: candidate 3")
    assert WORKER.fullmatch(broke.worker)


def test_embedded_ray_rejects_requests_without_its_token(local_ray):
    from ray._private.authentication.authentication_utils import is_token_auth_enabled
    from ray._raylet import AuthenticationTokenLoader
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    assert is_token_auth_enabled()
    gcs = ray.get_runtime_context().gcs_address
    stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(grpc.insecure_channel(gcs))
    request = gcs_service_pb2.GetAllNodeInfoRequest()
    for metadata in (None, [("authorization", "Bearer not-the-token")]):
        with pytest.raises(grpc.RpcError) as denied:
            stub.GetAllNodeInfo(request, timeout=10, metadata=metadata)
        assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
    token = AuthenticationTokenLoader.instance().get_raw_token()
    reply = stub.GetAllNodeInfo(request, timeout=10, metadata=[("authorization", f"Bearer {token}")])
    assert len(reply.node_info_list) == 1


class StartsSeenLate(RayEvaluator):
    """A start log always behind its tasks: no mark is read while its attempt is in flight, as when a candidate
    fails faster than its task's message to the start log travels and its result is collected first."""

    def _note_starts(self, flights, force=False):
        return None


def evaluated(evaluator: RayEvaluator, growths: tuple[int, ...]) -> dict[int, Result]:
    """The results of `growths` on `evaluator` by index; the evaluator is closed after."""
    results: dict[int, Result] = {}
    try:
        evaluator.evaluate([job_of(g) for g in growths], lambda i, r: results.update({i: r}))
    finally:
        evaluator.close()
    return results


def test_a_fast_failure_says_where_it_ran_whatever_the_start_log_knows(local_ray, tmp_path):
    # The result of a candidate whose objective raised at once is collected before its start mark is seen (with
    # a timeout set), or with no start log at all (no timeout): either way its line names the worker it ran on.
    for evaluator_type, resources in ((StartsSeenLate, {"trial_timeout_s": 60.0}), (RayEvaluator, {})):
        root = tmp_path / evaluator_type.__name__
        evaluator = evaluator_type(ProbeObjective(str(root), {1: "raise"}), ResourcesConfig(**resources), RayConfig())
        results = evaluated(evaluator, (1, 2))
        broke = results[0]
        assert broke.status == "failed" and broke.attempts == 1, broke
        assert broke.error.startswith("RuntimeError: candidate 1 broke"), broke.error
        assert broke.worker is not None and WORKER.fullmatch(broke.worker), (evaluator_type.__name__, broke.worker)
        pid = next(root.glob("started-1-*")).name.split("-")[2]
        assert broke.worker.endswith(f":{pid}"), (broke.worker, pid)
        assert results[1].status == "ok" and WORKER.fullmatch(results[1].worker)


def test_whole_and_rung_jobs_round_trip_through_ray(local_ray, tmp_path):
    """A `Job` goes to a worker and its result comes back as in process: a whole evaluation, a first rung and a
    rung continued from the state the job carries (the worker never reads the driver's disk)."""
    space = load_space(ROOT / "encodings/densenet_small.yaml")
    objective = build_objective(parse_config({"fitness": {"objective": "synthetic"}}), space)
    genome = space.largest_genome()
    first = run_job(objective, Job(genome, epochs=1, full_epochs=9))
    jobs = [Job(genome), Job(genome, epochs=1, full_epochs=9), Job(genome, epochs=3, full_epochs=9, state=first.state)]
    evaluator = RayEvaluator(objective, ResourcesConfig(), RayConfig(), workers=2)
    results: dict[int, Result] = {}
    try:
        evaluator.evaluate(jobs, lambda i, r: results.update({i: r}))
    finally:
        evaluator.close()
    same = lambda r: (r.key, r.status, r.fitness, r.epochs, r.state, r.metrics.get("epochs_trained"))  # noqa: E731
    assert [same(results[i]) for i in range(3)] == [same(run_job(objective, job)) for job in jobs]
    assert results[2].metrics["epochs_trained"] == 2 and all(WORKER.fullmatch(r.worker) for r in results.values())

    probe = ProbeObjective(str(tmp_path))
    evaluator = RayEvaluator(probe, ResourcesConfig(), RayConfig(), workers=1)
    try:
        evaluator.evaluate([Job(genome_of(5), epochs=2, full_epochs=4, state=b"from-the-driver")],
                           lambda i, r: results.update({10 + i: r}))  # fmt: skip
    finally:
        evaluator.close()
    rung = results[10]
    assert rung.status == "ok" and rung.epochs == 2 and rung.fitness == fitness_of(genome_of(5))
    assert rung.metrics["rung"] == [2, 4] and rung.metrics["from_state"] == "from-the-driver"
