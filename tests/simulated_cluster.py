"""A simulated multi-node Ray cluster (`ray.cluster_utils.Cluster`) for the tests, started so that a loaded
machine does not fail them.

Ray gives a new node's raylet a fixed 30 s to register with the GCS and otherwise raises "The current node timed
out during startup" (`nas.evaluate.ray_cluster.init_local`, which does the same for the embedded Ray). A head
and two nodes take about 4 s on an idle 2-core machine and about 10 s beside six busy processes; on a CI runner
that also trains networks in the other test worker they have run past 30 s. A timed-out start is therefore
cleaned up (the processes it left are killed) and tried again; any other failure is raised at once.
"""

import contextlib

import pytest
import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
from ray.cluster_utils import Cluster

from nas.evaluate.ray_cluster import START_ATTEMPTS, STARTUP_TIMED_OUT, child_processes, kill_new

pytest.importorskip("psutil")


def start_cluster(*nodes: dict) -> Cluster:
    """A head that runs nothing (no CPUs, no dashboard) and one node per `nodes` entry (`add_node` arguments),
    all registered; the caller connects with `ray.init(address=cluster.address)`."""
    for attempt in range(1, START_ATTEMPTS + 1):
        before = child_processes()
        sim = Cluster(initialize_head=False)
        try:
            sim.add_node(num_cpus=0, include_dashboard=False)
            for node in nodes:
                sim.add_node(**node)
            sim.wait_for_nodes()
            return sim
        except Exception as exc:
            if STARTUP_TIMED_OUT not in str(exc) or attempt == START_ATTEMPTS:
                raise
            with contextlib.suppress(Exception):  # a half-started cluster: what it leaves is killed next
                sim.shutdown()
            kill_new(before)
    raise AssertionError("unreachable")
