"""`search.mode: async` on a real local Ray (a simulated cluster of two nodes declaring 4 GPUs each): the slots stay
busy with candidates of heterogeneous cost, and SIGKILLs of the driver at random instants lose nothing finished,
retrain nothing, and end in the strategy state that replaying the log gives. Also: the evaluators' submit/wait
contract, `search.budget.hours` checked per result in both modes, largest-first dispatch, `seconds_per_gflop`."""

import contextlib
import io
import itertools
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import yaml
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from probe_objective import ProbeObjective, job_of
from simulated_cluster import start_cluster

from nas.cli import main as nas_main
from nas.config import RayConfig, ResourcesConfig, load_config
from nas.errors import UserError
from nas.evaluate.evaluator import LocalEvaluator
from nas.evaluate.job import Job
from nas.evaluate.objective import build_objective
from nas.evaluate.ray_evaluator import RayEvaluator
from nas.evaluate.result import Result
from nas.evaluate.synthetic import SyntheticObjective
from nas.genome.space import load_space
from nas.run.budget import Budget
from nas.run.dispatch import flops_of, largest_first
from nas.run.loop import SearchLoop
from nas.run.policies import AsyncPolicy
from nas.run.replay import replay
from nas.run.runlog import read_results
from nas.strategies import build_strategy

psutil = pytest.importorskip("psutil")
SLOTS = 8  # two nodes of 4 GPUs


@pytest.fixture(scope="module")
def cluster():
    """A head that runs nothing and two nodes of 4 CPUs and 4 GPUs each: 8 one-GPU slots."""
    if ray.is_initialized():
        ray.shutdown()
    sim = start_cluster({"num_cpus": 4, "num_gpus": 4}, {"num_cpus": 4, "num_gpus": 4})
    ray.init(address=sim.address)
    yield sim
    ray.shutdown()
    sim.shutdown()


def write_config(path: Path, mode: str, evaluations: int, seconds: float, per_gflop: float, **search) -> Path:
    """The smoke search (densenet_small on digits' shape: 0.2-11 MFLOPs a candidate), one GPU a candidate."""
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["fitness"].update(seconds_per_evaluation=seconds, seconds_per_gflop=per_gflop)
    data["search"] = {"strategy": "regularized-evolution", "mode": mode, "budget": {"evaluations": evaluations},
                      "regularized_evolution": {"population": 12, "sample_size": 3}, **search}  # fmt: skip
    data["resources"] = {"gpus_per_trial": 1, "cpus_per_trial": 1}
    path.write_text(yaml.safe_dump(data))
    return path


def search_here(*args: str) -> str:
    """`nas` in this process (on the cluster this process is attached to); its stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert nas_main(list(args)) == 0
    return out.getvalue()


def log_lines(run: Path) -> list[dict]:
    path = run / "evaluations.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]


def checkpoint(run: Path) -> dict:
    return json.loads((run / "checkpoint.json").read_text())


def replayed_state(cfg: Path, run: Path, target: int) -> dict:
    """A fresh strategy told the whole log in log order, topped up to `target` in flight after each result."""
    config = load_config(cfg)
    strategy = build_strategy(config.search, load_space(config.encoding), config.seed)
    replay(strategy, {}, read_results(run / "evaluations.jsonl"), target, Budget(config.search.budget.evaluations))
    return json.loads(json.dumps(strategy.state_dict()))


# --- the evaluators' submit / wait contract -------------------------------------------------------------------


def test_local_evaluator_submits_and_waits_one_at_a_time(tmp_path):
    objective = build_objective(load_config(write_config(tmp_path / "c.yaml", "async", 4, 0, 0)), SPACE)
    evaluator = LocalEvaluator(objective)
    genomes = [SPACE.genome(SPACE.encode(((1, 4 + i), (1, 4)), None), ("1", "1")) for i in range(3)]
    tickets = [evaluator.submit(Job(g)) for g in genomes]
    assert evaluator.slots() == 1 and evaluator.outstanding() == 3
    got = [evaluator.wait() for _ in range(3)]
    assert [len(batch) for batch in got] == [1, 1, 1]
    assert [t for batch in got for t, _ in batch] == tickets
    assert [r.key for batch in got for _, r in batch] == [g.key for g in genomes]
    assert evaluator.outstanding() == 0 and evaluator.wait() == []


def test_ray_evaluator_submits_one_and_waits_for_any(cluster, tmp_path):
    release = tmp_path / "release-the-slow-one"  # not a sleep: a loaded machine may start a worker late
    objective = ProbeObjective(str(tmp_path), plan={1: f"wait-file:{release}"}, default="sleep:0.2")
    evaluator = RayEvaluator(objective, ResourcesConfig(gpus_per_trial=1, cpus_per_trial=1), RayConfig())
    try:
        assert evaluator.slots() == SLOTS
        tickets = {evaluator.submit(job_of(g)): g for g in (1, 2, 3)}
        finished = []
        while len(finished) < 2:
            finished += evaluator.wait()
        assert sorted(tickets[t] for t, _ in finished) == [2, 3]  # the slow one is still running
        assert evaluator.outstanding() == 1
        assert evaluator.wait(timeout=0.1) == []  # nothing finished within the timeout
        release.touch()
        last = evaluator.wait()
        assert [tickets[t] for t, _ in last] == [1] and last[0][1].status == "ok"
        evaluator.submit(job_of(4))
        evaluator.cancel()
        assert evaluator.outstanding() == 0 and evaluator.wait() == []
    finally:
        evaluator.close()


# --- async on the simulated cluster ------------------------------------------------------------------------------


def test_async_search_keeps_the_slots_of_a_simulated_cluster_busy(cluster, tmp_path, monkeypatch, record_property):
    """After every round the evaluator holds the slots and the queue, fewer only where the budget ends: the
    structural reason for the busy fraction, which itself is a timing (measured in
    benchmarks/cluster_utilization.py, never asserted here, where a loaded runner moves it)."""
    # 0.4-1.5 s a candidate by its FLOPs: the 3.7x spread that leaves a batch waiting for its slowest member
    cfg = write_config(tmp_path / "cfg.yaml", "async", 64, 0.4, 100)
    held: list[tuple[int, int]] = []  # (candidates the evaluator holds, what the budget leaves) after each round
    submit_round = SearchLoop.submit_round

    def watched(loop: SearchLoop) -> None:
        submit_round(loop)
        assert isinstance(loop.policy, AsyncPolicy)
        held.append((loop.evaluator.outstanding(), min(loop.policy.target, 64 - len(loop.log))))

    monkeypatch.setattr(SearchLoop, "submit_round", watched)
    search_here("search", str(cfg), "--run-dir", str(tmp_path / "run"))
    lines = log_lines(tmp_path / "run")
    assert len(lines) == 64 and len({r["key"] for r in lines}) == 64
    assert len(held) > 8 and all(holds == room for holds, room in held), held
    wall = checkpoint(tmp_path / "run")["elapsed_seconds"]
    record_property("busy_fraction", round(sum(r["seconds"] for r in lines) / (SLOTS * wall), 3))
    target = checkpoint(tmp_path / "run")["async_target"]
    assert target == SLOTS + 2  # the slots and a queue of a quarter of them
    assert checkpoint(tmp_path / "run")["strategy"] == replayed_state(cfg, tmp_path / "run", target)


def drive(args: list[str]) -> subprocess.Popen:
    """`nas` in a subprocess on the test's cluster, four candidates at once."""
    address = ray.get_runtime_context().gcs_address
    return subprocess.Popen([sys.executable, "-m", "nas", *args, "--workers", "4", "--ray-address", address],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


@pytest.mark.slow
def test_sigkill_of_the_async_driver_at_random_instants_then_resume(cluster, tmp_path):
    """Killed twice at random instants while results arrive, resumed each time, then run to its end:
    every line logged before a kill is still there, none twice, and the final strategy is the one the log
    replays to."""
    cfg = write_config(tmp_path / "cfg.yaml", "async", 40, 0.05, 30)  # 0.05-0.4 s a candidate
    run = tmp_path / "run"
    args = ["search", str(cfg), "--run-dir", str(run)]
    rng = random.Random(3)
    kept: dict[str, float] = {}
    for _ in range(2):
        before = len(log_lines(run))
        proc = drive(args)
        deadline = time.monotonic() + 120
        while len(log_lines(run)) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5))  # a random instant while results arrive
        assert proc.poll() is None, "the search ended before it could be killed"
        proc.kill()
        proc.wait()
        kept |= {r["key"]: r["fitness"] for r in log_lines(run)}
        args = ["resume", str(run)]
    assert 0 < len(kept) < 40
    last = drive(args)
    assert last.wait(timeout=240) == 0, last.stderr.read().decode()[-3000:]
    lines = log_lines(run)
    keys = [r["key"] for r in lines]
    assert len(keys) == len(set(keys)) == 40, "a finished evaluation was trained twice, or the budget was missed"
    assert all({r["key"]: r["fitness"] for r in lines}.get(k) == f for k, f in kept.items()), "a result was lost"
    assert checkpoint(run)["strategy"] == replayed_state(cfg, run, checkpoint(run)["async_target"])


# --- the hours budget, checked as results arrive ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_hours_budget_stops_within_one_candidate(tmp_path, mode):
    """Candidates of 0.5 s one after another (in-process), 1.2 s of budget: the elapsed time passes the limit by
    the third result at the latest, so at most 3 are logged (between batches, the whole batch of 8 would be),
    and a resume finds the budget spent."""
    cfg = write_config(tmp_path / "cfg.yaml", mode, 100, 0.5, 0, strategy="random", batch_size=8)
    data = yaml.safe_load(cfg.read_text())
    data["search"]["budget"] = {"evaluations": 100, "hours": 1.2 / 3600}
    cfg.write_text(yaml.safe_dump(data))
    search_here("search", str(cfg), "--run-dir", str(tmp_path / "run"), "--workers", "0")
    assert 1 <= len(log_lines(tmp_path / "run")) <= 3
    assert checkpoint(tmp_path / "run")["elapsed_seconds"] >= 1.2
    out = search_here("resume", str(tmp_path / "run"), "--workers", "0")
    assert "search finished" in out and "(0 new)" in out


# --- largest-first dispatch and heterogeneous cost -------------------------------------------------------------

SPACE = load_space(ROOT / "encodings/densenet_small.yaml")


def test_sync_batches_are_trained_largest_first(tmp_path):
    cfg = write_config(tmp_path / "cfg.yaml", "sync", 24, 0, 0, strategy="random", batch_size=8)
    search_here("search", str(cfg), "--run-dir", str(tmp_path / "run"), "--workers", "0")
    lines = log_lines(tmp_path / "run")
    assert len(lines) == 24
    for step in {r["step"] for r in lines}:
        flops = [r["flops"] for r in lines if r["step"] == step]
        assert flops == sorted(flops, reverse=True), f"step {step} was not dispatched largest first"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=0, max_size=12))
def test_largest_first_is_a_stable_sort_by_decreasing_flops(seeds):
    objective = build_objective(load_config(ROOT / "search_configs/smoke.yaml"), SPACE)
    genomes = [
        SPACE.genome(p, tuple("1" * (b[0] * (b[0] + 1) // 2) for b in SPACE.decode(p)[0]))
        for p in (SPACE.random_position(random.Random(s)) for s in seeds)
    ]
    ordered = largest_first(genomes, objective)
    costs = [flops_of(objective, g) for g in genomes]
    stable = sorted(range(len(genomes)), key=lambda i: -costs[i])  # Python's sort is stable
    assert [g.key for g in ordered] == [genomes[i].key for i in stable]
    assert [flops_of(objective, g) for g in ordered] == sorted(costs, reverse=True)


def test_seconds_per_gflop_makes_big_candidates_slower(tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", "sync", 4, 0.01, 20))
    objective = build_objective(config, SPACE)
    result = objective(SPACE.genome(SPACE.encode(((6, 16), (6, 16)), None), ("1" * 21, "1" * 21)))
    assert result.seconds >= 0.01 + result.flops / 1e9 * 20 > 0.2  # sleeps at least its cost (11 MFLOPs here)
    data = yaml.safe_load((tmp_path / "c.yaml").read_text())
    data["fitness"]["seconds_per_gflop"] = -1
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"fitness.seconds_per_gflop: must be >= 0"):
        load_config(tmp_path / "c.yaml")


# --- a transient `oom`: told, not counted ------------------------------------------------------------------------


def test_an_oom_counts_alike_in_the_async_loop_and_in_its_replay(tmp_path, monkeypatch):
    """An `oom` result is told to the strategy (a failure for now) but is no finished evaluation, so the budget
    asks another genome in its place. The replay that a resume runs must count it the same way: counting it as
    finished, it asked one genome fewer near the end of the budget and rebuilt a different strategy."""
    calls = itertools.count()
    evaluate = SyntheticObjective.__call__

    def out_of_memory_twice(self, genome, device=None):
        if next(calls) in (3, 10):  # one early, one when the budget of 12 is nearly spent
            return Result.failure(genome.key, genome.to_dict(), "OutOfMemoryError: injected", status="oom")
        return evaluate(self, genome, device)

    monkeypatch.setattr(SyntheticObjective, "__call__", out_of_memory_twice)
    cfg = write_config(tmp_path / "cfg.yaml", "async", 12, 0, 0)
    run = tmp_path / "run"
    search_here("search", str(cfg), "--run-dir", str(run), "--workers", "0")
    statuses = [r["status"] for r in log_lines(run)]
    assert statuses.count("oom") == 2 and len(statuses) - 2 == 12, "the budget counts finished evaluations"
    assert checkpoint(run)["strategy"] == replayed_state(cfg, run, checkpoint(run)["async_target"])
