"""Workers and nodes: a real search on a real (simulated multi-node) Ray cluster whose candidates crash their
worker process, hang past `resources.trial_timeout_s` or raise a CUDA out-of-memory error, and one of whose
nodes is removed mid-search; and a real digits training that runs out of CUDA memory inside the trainer.

What must hold (DESIGN.md sections 4 and 5): the search completes its budget; the log records a worker that
died as retried (`attempts` > 1) and, past `resources.max_retries`, as failed with the Ray error; a node
removed mid-search as retried elsewhere; a hang as `timeout` (error null); an exception inside training (CUDA
out of memory) as failed with its message, at once, never retried, and the next candidate trains normally.

The Ray search runs the driver in this process (`nas search`, `--workers 2`) against the module's `Cluster`
(the fixture of `test_ray_cluster`: a head that runs nothing and two nodes), with the objective wrapped so that
chosen genomes of the first batch misbehave. Nothing of Ray is mocked.
"""

import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
import ray.cloudpickle
import torch
from probe_objective import worker_fault
from reliability_runs import cli, digits_config, log_lines, synthetic_config
from test_ray_cluster import cluster  # noqa: F401  (the simulated multi-node cluster fixture, reused)

import nas.evaluate.train_objective as train_objective
import nas.run.driver as driver
from nas.config import load_config
from nas.evaluate.job import Job
from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.genome.space import load_space
from nas.strategies.strategy import build_strategy

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import the tests folder

EVALUATIONS = 18  # two batches of 3 particles x 3 shortcut patterns
TIMEOUT_S = 4.0
MAX_RETRIES = 1
OOM_MESSAGE = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total capacity)"
ROLES = ("crash-once", "crash", "hang", "oom", "victim")  # given to the first batch's genomes, in ask order


@dataclass
class FaultyObjective:
    """The run's real objective, except for the genomes `plan` names (by key), which misbehave on a worker.

    `crash-once`: the worker process dies on the first attempt; `crash`: on every attempt; `hang`: sleeps far
    past the timeout; `oom`: raises torch's CUDA out-of-memory error, as a candidate too big for its GPU does;
    `victim`: runs long enough for the test to remove its node under it. Every candidate sleeps a little, so
    that two are in flight at once, and leaves a `started-*` file naming its node.
    """

    real: Any
    root: str
    plan: dict[str, str]

    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        self.misbehave(genome)
        return self.real(genome, device)

    def train_rung(
        self, genome: Genome, epochs: int, full_epochs: int, state: bytes | None, device: str | None
    ) -> Result:
        self.misbehave(genome)
        return self.real.train_rung(genome, epochs, full_epochs, state, device)

    def misbehave(self, genome: Genome) -> None:
        """What `plan` says this genome does on its worker before (or instead of) training."""
        role = self.plan.get(genome.key, "ok")
        node = ray.get_runtime_context().get_node_id()
        first = not any(Path(self.root).glob(f"started-{genome.key[:12]}-*"))
        Path(self.root, f"started-{genome.key[:12]}-{os.getpid()}-{time.monotonic_ns()}").write_text(node)
        worker_fault(role, self.root, genome.key)
        if role == "oom":
            raise torch.cuda.OutOfMemoryError(OOM_MESSAGE)
        # the victim's first attempt runs long enough for its node to be removed under it; its retry is quick, so
        # that a loaded machine cannot push it past the trial timeout
        time.sleep(3.0 if role == "victim" and first else 0.2)

    def architecture(self, genome: Genome) -> Any:
        return self.real.architecture(genome)


def first_batch(cfg: Path) -> list[Genome]:
    """The genomes the search asks first (the strategy is a function of the config and its seed)."""
    config = load_config(cfg)
    return build_strategy(config.search, load_space(config.encoding), config.seed).ask()


def node_handles(sim: Any) -> dict[str, Any]:
    """Node id -> the `Cluster`'s handle of every live worker node (the head runs nothing)."""
    by_socket = {n.plasma_store_socket_name: n for n in sim.worker_nodes}
    return {n["NodeID"]: by_socket[n["ObjectStoreSocketName"]] for n in ray.nodes()
            if n["Alive"] and n["ObjectStoreSocketName"] in by_socket}  # fmt: skip


def test_cuda_out_of_memory_inside_real_training_is_logged_oom_and_not_counted(tmp_path, record_property):
    """A CUDA OOM raised in the forward pass of a real digits training: an `oom` line with the message, no escape.

    First in the module, before the simulated cluster starts and competes for the CPUs. The real `train`
    objective and trainer, in-process: a forward hook on the built network raises torch's
    `OutOfMemoryError` (the class the CUDA caching allocator raises) for the 2nd and 5th candidates; the search
    completes, those two lines are `oom` (the transient status) with the message, the candidates after them
    train normally, and the budget counts finished evaluations only (8 besides the two).
    """
    cfg = digits_config(tmp_path, evaluations=8)
    real = train_objective.seeded_model
    built: list[int] = []

    def seeded_model(arch: Any, seed: int) -> torch.nn.Module:
        model = real(arch, seed)
        built.append(1)
        if len(built) in (2, 5):

            def out_of_memory(module: torch.nn.Module, inputs: Any) -> None:
                raise torch.cuda.OutOfMemoryError(OOM_MESSAGE)

            model.register_forward_pre_hook(out_of_memory)
        return model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a worker trains; and no oversubscription of a small machine
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(train_objective, "seeded_model", seeded_model)
            out = cli("search", str(cfg), "--run-dir", str(tmp_path / "run"), "--workers", "0")
    finally:
        torch.set_num_threads(threads)
    assert out.code == 0 and out.exception is None, (out.stderr[-3000:], out.exception)
    lines = log_lines(tmp_path / "run")
    assert len(lines) == 10 and len(built) == 10
    assert len({r["key"] for r in lines if r["status"] == "ok"}) == 8
    failed = [i for i, r in enumerate(lines, start=1) if r["status"] != "ok"]
    assert failed == [2, 5], [(r["status"], r["error"]) for r in lines]
    assert all(lines[i - 1]["status"] == "oom" for i in failed)
    for number in failed:
        line = lines[number - 1]
        assert line["fitness"] is None and line["attempts"] == 1, line
        assert line["error"] == f"OutOfMemoryError: {OOM_MESSAGE}", line["error"]
    assert all(0 <= r["fitness"] <= 1 for r in lines if r["status"] == "ok")
    record_property("tried", len(failed))


@dataclass
class FaultRun:
    run: Path
    roles: dict[str, str]  # role -> genome key
    removed_node: str
    code: int | None
    stderr: str


@pytest.fixture(scope="module")
def fault_run(cluster, tmp_path_factory) -> FaultRun:  # noqa: F811
    """The search with every fault, run once for the module's tests to read."""
    sim, _ = cluster
    folder = tmp_path_factory.mktemp("worker-faults")
    cfg = synthetic_config(
        folder,
        evaluations=EVALUATIONS,
        search={"pso": {"swarm_size": 3}, "ga": {"population": 3, "generations": 2, "tournament_size": 2}},
        resources={"cpus_per_trial": 1, "max_retries": MAX_RETRIES, "trial_timeout_s": TIMEOUT_S},
    )
    keys = list(dict.fromkeys(g.key for g in first_batch(cfg)))
    assert len(keys) >= len(ROLES) + 1, "the first batch needs a genome per role and a well-behaved one"
    roles = dict(zip(ROLES, keys, strict=False))
    root = folder / "markers"
    root.mkdir()
    handles = node_handles(sim)
    removed: list[str] = []

    settled = {roles[role] for role in ("crash-once", "crash", "oom")}

    def remove_the_victims_node() -> None:
        """While the victim runs, remove its node (no grace: as if the machine died). Only once the crashes and
        the OOM are logged, so that the loss of the node cannot add an attempt to those (their checks are exact)."""
        deadline = time.monotonic() + 240
        while not removed and time.monotonic() < deadline:
            if not settled <= {r["key"] for r in log_lines(folder / "run")}:
                time.sleep(0.05)
                continue
            for marker in root.glob(f"started-{roles['victim'][:12]}-*"):
                node = marker.read_text()
                if node in handles:
                    sim.remove_node(handles[node], allow_graceful=False)
                    removed.append(node)
                    return
            time.sleep(0.05)

    real_build = driver.build_objective
    with pytest.MonkeyPatch.context() as mp:
        plan = {key: role for role, key in roles.items()}
        mp.setattr(driver, "build_objective", lambda c, s: FaultyObjective(real_build(c, s), str(root), plan))
        killer = threading.Thread(target=remove_the_victims_node, daemon=True)
        killer.start()
        out = cli("search", str(cfg), "--run-dir", str(folder / "run"), "--workers", "2")
        killer.join(timeout=30)
    assert removed, "the victim never ran on a worker node"
    return FaultRun(folder / "run", roles, removed[0], out.code, out.stderr)


def line_of(fault_run: FaultRun, role: str) -> dict[str, Any]:
    """The role's first line (an `oom` genome asked again has one more)."""
    return [r for r in log_lines(fault_run.run) if r["key"] == fault_run.roles[role]][0]


def test_a_search_with_worker_and_node_faults_completes_its_budget(fault_run, record_property):
    """Crashes, a hang, an OOM and a lost node in one search: exit 0, the whole budget, every line once."""
    assert fault_run.code == 0, fault_run.stderr[-3000:]
    assert "Traceback" not in fault_run.stderr
    lines = log_lines(fault_run.run)
    finished = [r for r in lines if r["status"] != "oom"]  # an `oom` line is retried, not counted
    assert len(finished) == EVALUATIONS and len({r["key"] for r in finished}) == EVALUATIONS
    # a worker that dies at once may not have reported itself yet: a failed attempt's worker can be unknown
    assert all(r["worker"].startswith("ray:") for r in lines if r["status"] == "ok")
    assert all(r["status"] == "ok" for r in lines if r["key"] not in fault_run.roles.values())
    assert "start log unavailable" not in fault_run.stderr, "the timeout bookkeeping died with a worker node"
    record_property("tried", len(fault_run.roles))


def test_a_dead_worker_process_is_retried_then_failed(fault_run, record_property):
    """A worker process that dies: retried (attempts 2, ok); dying on every attempt: failed after max_retries."""
    once, always = line_of(fault_run, "crash-once"), line_of(fault_run, "crash")
    assert once["status"] == "ok" and once["attempts"] >= 2 and once["fitness"] is not None, once
    assert always["status"] == "failed" and always["fitness"] is None, always
    assert always["attempts"] == MAX_RETRIES + 1, always
    assert "WorkerCrashedError" in always["error"] or "NodeDiedError" in always["error"], always["error"]
    record_property("tried", 2)


def test_a_node_removed_mid_search_has_its_candidates_retried_elsewhere(fault_run, record_property):
    """A node removed under a running candidate: it is retried on a live node and ends ok (attempts > 1)."""
    victim = line_of(fault_run, "victim")
    assert victim["status"] == "ok" and victim["attempts"] >= 2, victim
    assert fault_run.removed_node[:12] not in victim["worker"], "the retry ran on the removed node"
    lost = [r for r in log_lines(fault_run.run) if r["attempts"] > 1 and r["key"] != fault_run.roles["crash-once"]]
    assert all(r["status"] == "ok" or r["key"] in fault_run.roles.values() for r in lost)
    record_property("tried", len(lost))


def test_a_hung_candidate_is_cancelled_as_timeout(fault_run, record_property):
    """A candidate hanging past resources.trial_timeout_s: cancelled, logged `timeout` with error null."""
    hung = line_of(fault_run, "hang")
    assert hung["status"] == "timeout" and hung["fitness"] is None and hung["error"] is None, hung
    assert hung["seconds"] >= TIMEOUT_S and hung["metrics"]["trial_timeout_s"] == TIMEOUT_S
    record_property("tried", 1)


def test_cuda_out_of_memory_in_a_ray_candidate_is_logged_oom_at_once(fault_run, record_property):
    """torch's CUDA OOM escaping a candidate on a Ray worker (not packed): `oom` with the message, attempts 1."""
    oom = line_of(fault_run, "oom")
    assert oom["status"] == "oom" and oom["attempts"] == 1 and oom["fitness"] is None, oom
    assert oom["error"].startswith(f"OutOfMemoryError: {OOM_MESSAGE}"), oom["error"]
    record_property("tried", 1)


@dataclass
class PackedOom:
    """An objective whose candidates run out of memory by plan: `neighbour` only while packed (a fraction of a
    GPU, as when a neighbour on the card takes the memory), `always` on any share. It returns the `oom` result
    the train objective returns; each result records the GPU share Ray assigned."""

    plan: dict[str, str]

    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        share = ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0)
        role = self.plan.get(genome.key, "ok")
        metrics = {"gpu_share": share, "device": device}
        if role == "always" or (role == "neighbour" and share < 1):
            return Result.failure(genome.key, genome.to_dict(), f"OutOfMemoryError: {OOM_MESSAGE}", status="oom",
                                  metrics=metrics)  # fmt: skip
        return Result(genome.key, genome.to_dict(), "ok", 0.5, params=1, metrics=metrics)

    def train_rung(
        self, genome: Genome, epochs: int, full_epochs: int, state: bytes | None, device: str | None
    ) -> Result:
        return self(genome, device)

    def architecture(self, genome: Genome) -> Any:
        raise NotImplementedError


def test_an_oom_while_packed_is_retried_once_on_a_whole_gpu(cluster, tmp_path, record_property):  # noqa: F811
    """Candidates on a quarter of a (declared) GPU that run out of memory: each is retried at once on a whole
    GPU; one that fits there ends ok (attempts 2), one that never fits is logged `oom` after that one retry."""
    from nas.config import RayConfig, ResourcesConfig
    from nas.evaluate.ray_evaluator import RayEvaluator

    genomes = first_batch(synthetic_config(tmp_path))[:4]
    plan = {genomes[0].key: "neighbour", genomes[1].key: "always", genomes[2].key: "neighbour"}
    resources = ResourcesConfig(gpus_per_trial=0.25, cpus_per_trial=1, max_retries=0)
    evaluator = RayEvaluator(PackedOom(plan), resources, RayConfig(), workers=4)
    results: dict[int, Result] = {}
    try:
        evaluator.evaluate([Job(g) for g in genomes], lambda i, r: results.__setitem__(i, r))
    finally:
        evaluator.close()
    for i in (0, 2):
        assert results[i].status == "ok" and results[i].attempts == 2, results[i]
        assert results[i].metrics["gpu_share"] == 1.0, results[i].metrics
    assert results[1].status == "oom" and results[1].attempts == 2 and results[1].metrics["gpu_share"] == 1.0
    assert results[3].status == "ok" and results[3].attempts == 1 and results[3].metrics["gpu_share"] == 0.25
    record_property("tried", len(plan))


@dataclass
class OomOnce:
    """The run's real objective, except that the genome `key` runs out of memory on its first evaluation only
    (told by a marker file), as a candidate squeezed by a neighbour would."""

    real: Any
    root: str
    key: str

    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        return self.first_oom(genome) or self.real(genome, device)

    def train_rung(
        self, genome: Genome, epochs: int, full_epochs: int, state: bytes | None, device: str | None
    ) -> Result:
        return self.first_oom(genome) or self.real.train_rung(genome, epochs, full_epochs, state, device)

    def first_oom(self, genome: Genome) -> Result | None:
        """The `oom` result of the planned genome's first evaluation; None for every other one."""
        flag = Path(self.root, "oom-once")
        if genome.key == self.key and not flag.exists():
            flag.write_text("first attempt")
            return Result.failure(genome.key, genome.to_dict(), f"OutOfMemoryError: {OOM_MESSAGE}", status="oom")
        return None

    def architecture(self, genome: Genome) -> Any:
        return self.real.architecture(genome)


def test_resume_retrains_a_genome_logged_oom(tmp_path, record_property):
    """A search stopped after an `oom` line (the batch not yet told): `nas resume` trains that genome again (the
    log's cache does not answer an `oom`), and the run ends as the uninterrupted one, every genome finished."""
    cfg = synthetic_config(tmp_path)
    whole = tmp_path / "whole"
    assert cli("search", str(cfg), "--run-dir", str(whole), "--workers", "0").code == 0
    key = first_batch(cfg)[1].key
    real_build = driver.build_objective
    run = tmp_path / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "build_objective", lambda c, s: OomOnce(real_build(c, s), str(tmp_path), key))
        out = cli("search", str(cfg), "--run-dir", str(run), "--workers", "0", "--max-evaluations", "3")
        assert out.code == 0, out.stderr[-3000:]
        stopped = log_lines(run)  # started largest first, so in any order of the batch
        assert sorted(r["status"] for r in stopped) == ["ok", "ok", "oom"]
        assert [r["key"] for r in stopped if r["status"] == "oom"] == [key]
        out = cli("resume", str(run), "--workers", "0")
    assert out.code == 0, out.stderr[-3000:]
    lines = log_lines(run)
    retried = [r["status"] for r in lines if r["key"] == key]
    assert retried == ["oom", "ok"], retried
    latest = {r["key"]: (r["status"], r["fitness"]) for r in lines}
    assert latest == {r["key"]: (r["status"], r["fitness"]) for r in log_lines(whole)}
    record_property("tried", 1)
