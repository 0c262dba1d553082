"""A simulated multi-node Ray cluster (`ray.cluster_utils.Cluster`) for the tests, started so that a loaded
machine does not fail them.

Ray gives a new node's raylet a fixed 30 s to register with the GCS (`raylet_start_wait_time_s` in
`ray/_private/node.py`, not configurable) and otherwise raises "The current node timed out during startup".
A head and two nodes take about 4 s on an idle 2-core machine and about 10 s beside six busy processes; on a CI
runner that also trains networks in the other test worker they have run past 30 s. A timed-out start is
therefore cleaned up (the processes it left are killed) and tried again; any other failure is raised at once.
"""

import time

import pytest
import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
from ray.cluster_utils import Cluster

psutil = pytest.importorskip("psutil")

ATTEMPTS = 3
TIMED_OUT = "timed out during startup"


def start_cluster(*nodes: dict, attempts: int = ATTEMPTS) -> Cluster:
    """A head that runs nothing (no CPUs, no dashboard) and one node per `nodes` entry (`add_node` arguments),
    all registered; the caller connects with `ray.init(address=cluster.address)`."""
    for attempt in range(1, attempts + 1):
        before = children()
        sim: Cluster | None = None
        try:
            sim = Cluster(initialize_head=False)
            sim.add_node(num_cpus=0, include_dashboard=False)
            for node in nodes:
                sim.add_node(**node)
            sim.wait_for_nodes()
            return sim
        except Exception as exc:
            if TIMED_OUT not in str(exc) or attempt == attempts:
                raise
            discard(sim, before)
    raise AssertionError("unreachable")


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def discard(sim: Cluster | None, before: set[int]) -> None:
    """Shut down what a failed start registered, then kill what it spawned and did not register (the raylet,
    GCS and agents of the node that timed out)."""
    if sim is not None:
        try:
            sim.shutdown()
        except Exception:  # noqa: BLE001  (a half-started cluster; its processes are killed below)
            pass
    left = [psutil.Process(pid) for pid in children() - before if psutil.pid_exists(pid)]
    for process in left:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=10)
    time.sleep(1)
