"""Ray workers' memory on a real local Ray: a worker trains on the object store's arrays (read-only shared memory,
no copy, the same pages for every candidate), its results equal the in-process evaluator's, and the heap a
candidate freed goes back to the system once the candidate ends."""

import random
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import ray
import ray.cloudpickle
from conftest import ROOT

from nas.config import RayConfig, ResourcesConfig, parse_config
from nas.evaluate.evaluator import LocalEvaluator
from nas.evaluate.host_memory import malloc_trim, process_memory, smaps_rollup_kib
from nas.evaluate.job import Job
from nas.evaluate.ray_cluster import connect
from nas.evaluate.ray_evaluator import RayEvaluator
from nas.evaluate.result import Result
from nas.evaluate.train_objective import TrainObjective, build_train_objective
from nas.evaluate.trainer import shared_tensor
from nas.genome import load_space
from nas.genome.genome import BlockGene, Genome
from nas.strategies.random_search import random_genome

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import the tests folder

SPACE = load_space(ROOT / "encodings/densenet_small.yaml")
CONFIG = {
    "seed": 0,
    "dataset": {"name": "digits"},
    "fitness": {"objective": "train", "epochs": 1, "batch_size": 32, "schedule": "cosine", "augment": False},
    "resources": {"cpus_per_trial": 1},
}
CHURN_MIB = 256


@pytest.fixture(scope="module")
def local_ray():
    """The embedded Ray, started as `nas search` starts it (2 CPUs)."""
    connection = connect(RayConfig(), ResourcesConfig(), workers=2)
    yield connection
    connection.close()


def mapping_of(address: int) -> str:
    """The `/proc/self/maps` line of the mapping that holds `address` ('' if none does)."""
    for line in open("/proc/self/maps", encoding="utf-8"):
        low, high = (int(v, 16) for v in line.split()[0].split("-"))
        if low <= address < high:
            return line.strip()
    return ""


class ArrayProbe(TrainObjective):
    """Trains as `TrainObjective` does, and records in the result how this process holds the training images."""

    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        result = super().__call__(genome, device)
        x = self.data.x_train
        result.metrics["array"] = {
            "writeable": x.flags.writeable,
            "owndata": x.flags.owndata,
            "dtype": str(x.dtype),
            "address": x.ctypes.data,
            "mapping": mapping_of(x.ctypes.data),
            "tensor_shares": shared_tensor(np.ascontiguousarray(x)).data_ptr() == x.ctypes.data,
        }
        return result


@dataclass
class HeapChurn:
    """Allocates `mib` MiB of small blocks (from the C heap, below glibc's mmap threshold), frees them all but a
    block allocated after them, which stays alive in the process: the freed span sits below it, so glibc cannot
    shrink the heap by itself. Records the process's USS before the churn."""

    mib: int

    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        import os

        before = process_memory()
        blocks = [bytearray(64 * 1024) for _ in range(self.mib * 16)]
        sys.__dict__.setdefault("_heap_churn_pins", []).append(bytearray(64 * 1024))  # above the freed span
        del blocks
        metrics = {"pid": os.getpid(), "uss_before": before.uss if before else None}
        return Result(genome.key, genome.to_dict(), "ok", 0.5, metrics=metrics)

    def train_rung(self, genome, epochs, full_epochs, state, device):
        return self(genome, device)

    def architecture(self, genome):
        raise NotImplementedError


def genomes(n: int) -> list[Genome]:
    rng = random.Random(3)
    return [random_genome(SPACE, rng) for _ in range(n)]


def evaluate(evaluator, jobs: list[Job]) -> list[Result]:
    results: dict[int, Result] = {}
    try:
        evaluator.evaluate(jobs, lambda i, r: results.update({i: r}))
    finally:
        if hasattr(evaluator, "close"):
            evaluator.close()
    return [results[i] for i in range(len(jobs))]


def test_smaps_rollup_fields_parse():
    text = "55fc-7ffc ---p 00000000 00:00 0  [rollup]\nRss:  1732 kB\nPss:   266 kB\nName:\tpython\n"
    assert smaps_rollup_kib(text) == {"Rss": 1732, "Pss": 266}


@pytest.mark.full
def test_worker_trains_on_the_object_store_arrays_without_a_copy(local_ray):
    objective = build_train_objective(parse_config(CONFIG), SPACE)
    probe = ArrayProbe(objective.config, objective.space, objective.data)
    resources = probe.config.resources
    results = evaluate(RayEvaluator(probe, resources, RayConfig(), workers=1), [Job(g) for g in genomes(2)])
    assert [r.status for r in results] == ["ok", "ok"], [r.error for r in results]
    for result in results:
        array = result.metrics["array"]
        # a view (read-only, owning nothing) into a shared mapping: the node's object store, not a private copy
        assert not array["writeable"] and not array["owndata"] and array["dtype"] == "uint8"
        assert array["mapping"].split()[1].endswith("s"), array["mapping"]
        assert array["tensor_shares"], "the trainer copied the images"
    first, second = results
    if first.worker == second.worker:  # one worker reused: the second candidate reads the same pages
        assert first.metrics["array"]["address"] == second.metrics["array"]["address"]


@pytest.mark.full
def test_ray_results_equal_the_in_process_evaluator(local_ray):
    objective = build_train_objective(parse_config(CONFIG), SPACE)
    jobs = [Job(g) for g in genomes(2)]
    through_ray = evaluate(RayEvaluator(objective, objective.config.resources, RayConfig(), workers=2), jobs)
    in_process = evaluate(LocalEvaluator(objective, device="cpu"), jobs)
    for remote, local in zip(through_ray, in_process, strict=True):
        assert remote.status == local.status == "ok"
        assert remote.fitness == local.fitness and remote.params == local.params
        assert remote.metrics["train_loss"] == local.metrics["train_loss"]
        assert remote.weights == local.weights


@pytest.mark.full
@pytest.mark.skipif(malloc_trim() is None or process_memory() is None, reason="needs Linux /proc and glibc")
def test_worker_hands_the_heap_a_candidate_freed_back(local_ray):
    genome = Genome(blocks=(BlockGene(layers=1, growth_rate=4, shortcuts="1"),))
    [result] = evaluate(RayEvaluator(HeapChurn(CHURN_MIB), ResourcesConfig(), RayConfig(), workers=1), [Job(genome)])
    assert result.status == "ok", result.error
    after = process_memory(result.metrics["pid"])  # the worker is idle now, and still alive (reused)
    assert after is not None
    kept = after.uss - result.metrics["uss_before"]
    assert kept < CHURN_MIB / 4, f"the worker kept {kept:.0f} MiB of the {CHURN_MIB} MiB its candidate freed"


def test_the_heap_is_given_back_after_a_trained_candidate_and_not_after_a_formula(monkeypatch):
    """A collection and trim after every candidate is tens of ms of CPU: after the synthetic objective, which
    allocates nothing worth giving back, it capped a 32-slot simulated cluster at 0.17 busy on 2 cores."""
    import nas.evaluate.ray_evaluator as ray_evaluator
    from nas.evaluate.synthetic import SyntheticObjective

    calls: list[int] = []
    monkeypatch.setattr(ray_evaluator, "release_host_memory", lambda: calls.append(1))
    space = load_space(ROOT / "encodings/densenet_small.yaml")
    ray_evaluator.release_after(SyntheticObjective(space, (1, 8, 8), 0.0))
    assert calls == []
    ray_evaluator.release_after(TrainObjective.__new__(TrainObjective))
    assert calls == [1]
