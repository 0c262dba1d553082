"""RayEvaluator on a simulated multi-node cluster (`ray.cluster_utils.Cluster`, one instance for the module):
two worker nodes declaring 2 GPUs each; fractional GPUs pack candidates onto them, and losing a node mid-way
still finishes every candidate."""

import threading
from collections import Counter
from pathlib import Path

import pytest
import ray
from probe_objective import ProbeObjective, fitness_of, genome_of, job_of
from simulated_cluster import start_cluster

from nas.config import RayConfig, ResourcesConfig
from nas.evaluate.ray_evaluator import RayEvaluator
from nas.evaluate.result import Result

HALF_GPU = ResourcesConfig(gpus_per_trial=0.5, cpus_per_trial=1, max_retries=2)
ONE_GPU = ResourcesConfig(gpus_per_trial=1, cpus_per_trial=1, max_retries=2)


@pytest.fixture(scope="module")
def cluster():
    """A head that runs nothing and two nodes of 8 CPUs and 2 GPUs each: GPUs, not CPUs, bound the packing."""
    if ray.is_initialized():
        ray.shutdown()
    sim = start_cluster({"num_cpus": 8, "num_gpus": 2}, {"num_cpus": 8, "num_gpus": 2})
    nodes = list(sim.worker_nodes)
    ray.init(address=sim.address)
    yield sim, nodes
    ray.shutdown()
    sim.shutdown()


def evaluate(objective: ProbeObjective, growths: range, resources: ResourcesConfig) -> dict[int, Result]:
    evaluator = RayEvaluator(objective, resources, RayConfig())
    results: dict[int, Result] = {}
    try:
        evaluator.evaluate([job_of(g) for g in growths], lambda i, r: results.__setitem__(i, r))
    finally:
        evaluator.close()
    return results


def peak_per_node(results: list[Result]) -> dict[str, int]:
    """Per node, the most candidates running at the same instant (from the times they recorded)."""
    peaks: dict[str, int] = {}
    for node in {r.metrics["node"] for r in results}:
        mine = [r for r in results if r.metrics["node"] == node]
        events = sorted([(r.metrics["start"], 1) for r in mine] + [(r.metrics["end"], -1) for r in mine])
        running = 0
        for _, step in events:
            running += step
            peaks[node] = max(peaks.get(node, 0), running)
    return peaks


def test_half_gpu_candidates_pack_four_to_a_node(cluster, tmp_path):
    # Eight candidates that each wait until all eight have started: only packing 4 per node lets them finish.
    results = evaluate(ProbeObjective(str(tmp_path), default="barrier:8"), range(1, 9), HALF_GPU)
    assert sorted(results) == list(range(8))
    assert all(r.status == "ok" and r.attempts == 1 for r in results.values())
    assert sorted(Counter(r.metrics["node"] for r in results.values()).values()) == [4, 4]
    assert sorted(peak_per_node(list(results.values())).values()) == [4, 4]
    for r in results.values():
        assert r.metrics["device"] == "cuda" and r.metrics["cuda_visible_devices"] in {"0", "1"}
        assert r.metrics["node"][:12] in r.worker


def test_losing_a_node_mid_evaluation_still_finishes_every_candidate(cluster, tmp_path):
    sim, nodes = cluster
    doomed = nodes[1]
    doomed_id = next(n["NodeID"] for n in ray.nodes() if n["NodeManagerAddress"] and n["Alive"] and
                     n["ObjectStoreSocketName"] == doomed.plasma_store_socket_name)  # fmt: skip

    def remove_when_busy() -> None:
        """Kill the node as soon as a candidate is running on it."""
        while not any(p.read_text() == doomed_id for p in Path(tmp_path).glob("started-*")):
            threading.Event().wait(0.05)
        sim.remove_node(doomed, allow_graceful=False)

    killer = threading.Thread(target=remove_when_busy, daemon=True)
    killer.start()
    # One GPU each: two candidates per node, so the doomed node is sure to get two of the four.
    results = evaluate(ProbeObjective(str(tmp_path), default="sleep:2"), range(1, 5), ONE_GPU)
    killer.join(timeout=60)
    assert not killer.is_alive()
    assert sorted(results) == list(range(4))
    for index, r in results.items():
        assert r.status == "ok" and r.fitness == fitness_of(genome_of(index + 1))
    retried = [r for r in results.values() if r.attempts > 1]
    assert retried, "some candidates were running on the removed node"
    assert all(r.metrics["node"] != doomed_id for r in retried)


@pytest.mark.parametrize("reuse", [True, False])
def test_gpu_workers_are_reused_unless_asked_otherwise(cluster, tmp_path, reuse):
    """One GPU candidate at a time: reused workers run several candidates each; `reuse_workers: false` gives
    every candidate its own process (the pid ends the `worker` field)."""
    resources = ResourcesConfig(gpus_per_trial=1, cpus_per_trial=1, reuse_workers=reuse)
    evaluator = RayEvaluator(ProbeObjective(str(tmp_path)), resources, RayConfig(), workers=1)
    results: dict[int, Result] = {}
    try:
        evaluator.evaluate([job_of(g) for g in range(1, 7)], lambda i, r: results.__setitem__(i, r))
    finally:
        evaluator.close()
    assert all(r.status == "ok" for r in results.values())
    processes = {r.worker.rsplit(":", 1)[1] + r.metrics["node"] for r in results.values()}
    assert len(processes) <= 2 if reuse else len(processes) == 6
