"""`search.fidelity` end to end: successive halving inside real searches (synthetic and real training), the
rung lines of the log, the rung states under RUN_DIR/rungs/, a SIGKILL in the middle of a promotion, and Ray."""

import collections
import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from nas.cli import main
from nas.config import load_config
from nas.data.loading import load_dataset
from nas.errors import UserError
from nas.evaluate.synthetic import build_synthetic, fidelity_fitness
from nas.evaluate.train_objective import TrainObjective
from nas.genome.genome import Genome
from nas.genome.space import load_space
from nas.run.fidelity import promote, told_fitness

RUNGS = (1, 3, 9)
THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class Outcome:
    code: int
    stderr: str
    exception: BaseException | None = None


def cli(*argv: str) -> Outcome:
    """`nas ARGV` in this process (stdout swallowed)."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            return Outcome(main(list(argv)), err.getvalue())
        except Exception as exc:  # noqa: BLE001  (reported by the assertion, not as a crash of the runner)
            return Outcome(1, err.getvalue(), exc)


def log_lines(run: Path) -> list[dict]:
    """The complete lines of a run's log (a line still being written is left out)."""
    path = run / "evaluations.jsonl"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n") and line.strip()]


def synthetic_fidelity(folder: Path, evaluations: int = 40, seconds: float = 0.0, name: str = "fid.yaml",
                       mode: str = "sync", signal: str = "accuracy") -> Path:  # fmt: skip
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["search"]["mode"] = mode
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["fitness"].update({"epochs": 9, "seconds_per_evaluation": seconds})
    fidelity = {"min_epochs": 1, "eta": 3, "signal": signal}
    data["search"].update({"budget": {"evaluations": evaluations}, "fidelity": fidelity})
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


def by_step(lines: list[dict]) -> dict[int, dict[int, list[dict]]]:
    out: dict[int, dict[int, list[dict]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in lines:
        out[r["step"]][r["epochs"]].append(r)
    return out


def test_each_batch_promotes_its_best_third_to_the_full_budget(tmp_path):
    cfg = synthetic_fidelity(tmp_path)
    run = tmp_path / "run"
    out = cli("search", str(cfg), "--run-dir", str(run), "--workers", "0")
    assert out.code == 0 and out.exception is None, (out.stderr[-2000:], out.exception)
    lines = log_lines(run)
    assert len({r["key"] for r in lines}) == 40, "the budget counts candidates, not rungs"
    assert len(lines) > 40 and {r["epochs"] for r in lines} == set(RUNGS)
    config = load_config(cfg)
    objective = build_synthetic(config, load_space(config.encoding))
    told = json.loads((run / "checkpoint.json").read_text())["step"]
    for step, rungs in by_step(lines).items():
        if step >= told:  # the last batch, cut short by the budget: its first rung only, never told
            assert set(rungs) == {RUNGS[0]}
            continue
        for low, high in zip(RUNGS, RUNGS[1:], strict=False):
            below = rungs[low]
            chosen = {below[i]["key"] for i in promote([r["fitness"] for r in below], 3)}
            assert {r["key"] for r in rungs[high]} == chosen, (step, low)
    for r in lines:
        genome = Genome.from_dict(r["genome"])
        exact = objective.fitness(genome)
        assert r["fitness"] == fidelity_fitness(exact, r["key"], r["epochs"], 9)
        if r["epochs"] == 9:
            assert r["fitness"] == exact, "the top rung is the full-fidelity fitness"
    keys = collections.Counter((r["key"], r["epochs"]) for r in lines)
    assert max(keys.values()) == 1, "no rung trained twice"
    assert not list((run / "rungs").glob("*")), "states are removed once a candidate can no longer be promoted"
    best = yaml.safe_load((run / "best/architecture.yaml").read_text())["provenance"]["key"]
    assert any(r["key"] == best and r["epochs"] == 9 for r in lines), "the best is ranked by rung first"
    from nas.run.runlog import ranked, read_results

    order = ranked(read_results(run / "evaluations.jsonl"))
    assert len(order) == len({r.key for r in order}) == 40, "one entry a candidate, at its highest rung"
    assert order[0].key == best and [r.epochs for r in order] == sorted((r.epochs for r in order), reverse=True)
    assert cli("export", str(run), "--out", str(tmp_path / "export")).code == 0


def test_fidelity_keys_are_checked_with_their_path(tmp_path):
    base = yaml.safe_load(synthetic_fidelity(tmp_path).read_text())
    for fidelity, message in [
        ({"min_epochs": 9, "eta": 3}, "search.fidelity.min_epochs: must be below fitness.epochs (9)"),
        ({"min_epochs": 0}, "search.fidelity.min_epochs: must be >= 1"),
        ({"eta": 1}, "search.fidelity.eta: must be >= 2"),
        ({"eta": 2.5}, "search.fidelity.eta: must be an integer"),
        ({"rungs": 3}, "search.fidelity.rungs: unknown key"),
    ]:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({**base, "search": {**base["search"], "fidelity": fidelity}}))
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_config(path)
    path.write_text(yaml.safe_dump({**base, "search": {**base["search"], "mode": "async"}}))
    assert load_config(path).search.fidelity is not None  # ASHA in the async driver
    path.write_text(yaml.safe_dump({**base, "search": {**base["search"], "fidelity": None}}))
    assert load_config(path).search.fidelity is None


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **THREADS_ENV, "PYTHONPATH": str(ROOT)}


def kill_once_a_promotion_is_logged(cfg: Path, run: Path) -> None:
    """`nas search cfg` in a subprocess, SIGKILLed as soon as its log holds a line of the second rung (3 epochs)."""
    proc = subprocess.Popen([sys.executable, "-m", "nas", "search", str(cfg), "--run-dir", str(run), "--workers",
                             "0"], env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(r.get("epochs") == 3 for r in log_lines(run)):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


@pytest.mark.parametrize("signal", ["accuracy", "loss"])  # loss: the ranking is rebuilt from the lines' losses
def test_sigkill_during_a_promotion_then_resume_loses_nothing_and_trains_nothing_twice(tmp_path, signal):
    reference = tmp_path / "reference"
    cfg = synthetic_fidelity(tmp_path, 24, signal=signal)
    out = cli("search", str(cfg), "--run-dir", str(reference), "--workers", "0")
    assert out.code == 0, out.stderr[-2000:]
    cfg = synthetic_fidelity(tmp_path, 24, seconds=1.5, name="slow.yaml", signal=signal)  # a 3-epoch rung: 0.33 s
    run = tmp_path / "run"
    kill_once_a_promotion_is_logged(cfg, run)
    before = log_lines(run)
    states = sorted(p.name for p in (run / "rungs").glob("*.safetensors"))
    assert any(r["epochs"] == 3 for r in before) and states, "killed while a promotion was under way"
    assert not any(r["epochs"] == 9 for r in before), "before the first batch reached its top rung"

    out = cli("resume", str(run), "--workers", "0")
    assert out.code == 0 and out.exception is None, (out.stderr[-2000:], out.exception)
    after = log_lines(run)
    assert after[: len(before)] == before, "nothing logged before the kill is lost"
    rungs = collections.Counter((r["key"], r["epochs"]) for r in after)
    assert max(rungs.values()) == 1, "no rung trained twice"
    trained = collections.defaultdict(int)
    for r in after:
        trained[r["key"]] += r["metrics"]["epochs_trained"]
    reached = {r["key"]: r["epochs"] for r in after}
    assert trained == reached, "each candidate trained each of its epochs exactly once, resumed rungs included"
    outcome = lambda lines: {(r["key"], r["epochs"], r["fitness"]) for r in lines}  # noqa: E731
    assert outcome(after) == outcome(log_lines(reference)), "the same search as the uninterrupted one"
    assert not list((run / "rungs").glob("*"))


def assert_each_epoch_trained_once(lines: list[dict]) -> None:
    assert collections.Counter((r["key"], r["epochs"]) for r in lines).most_common(1)[0][1] == 1, "a rung twice"
    trained = collections.defaultdict(int)
    for r in lines:
        trained[r["key"]] += r["metrics"]["epochs_trained"]
    assert trained == {r["key"]: r["epochs"] for r in lines}, "each promotion continued from its saved state"


def assert_asha_stopping_rule(lines: list[dict], eta: int = 3) -> None:
    """ASHA's stopping rule, read off the log: a rung line below the top is followed by a line of the next rung
    of its candidate exactly when, among the lines of its rung up to it (itself included), fewer than
    ceil(n / eta) are strictly better. The log's order is the order of decisions."""
    seen: dict[int, list[float]] = {e: [] for e in RUNGS}
    reached = {(r["key"], r["epochs"]) for r in lines}
    for r in lines:
        rung = seen[r["epochs"]]
        rung.append(r["fitness"])
        if r["epochs"] == RUNGS[-1]:
            continue
        went_on = (r["key"], RUNGS[RUNGS.index(r["epochs"]) + 1]) in reached
        better = sum(f > r["fitness"] for f in rung)
        assert went_on == (better < math.ceil(len(rung) / eta)), (r["key"][:12], r["epochs"], better, len(rung))
    for r in lines:
        if r["epochs"] != RUNGS[0]:
            assert (r["key"], RUNGS[RUNGS.index(r["epochs"]) - 1]) in reached, "a rung only after the one below"


def test_async_search_with_fidelity_runs_asha_to_the_budget(tmp_path):
    """`search.mode: async` with `search.fidelity`: ASHA in the real driver. The budget counts candidates, the
    candidates in flight when it is spent go on until settled, each is told once at its highest rung, and the
    best is ranked by rung first."""
    cfg = synthetic_fidelity(tmp_path, 40, mode="async")
    run = tmp_path / "run"
    out = cli("search", str(cfg), "--run-dir", str(run), "--workers", "0")
    assert out.code == 0 and out.exception is None, (out.stderr[-2000:], out.exception)
    lines = log_lines(run)
    assert len({r["key"] for r in lines}) == 40, "the budget counts candidates, not rungs"
    assert {r["epochs"] for r in lines} == set(RUNGS)
    assert_each_epoch_trained_once(lines)
    assert_asha_stopping_rule(lines)
    checkpoint = json.loads((run / "checkpoint.json").read_text())
    assert checkpoint["strategy"]["told"] == 40, "told once a candidate, when it is settled"
    told = {tuple(e[:2]) for e in checkpoint["strategy"]["evaluated"]}
    highest = {r["key"]: (r["epochs"], r["fitness"]) for r in lines}
    assert told == {(k, told_fitness(f, RUNGS.index(e), 3)) for k, (e, f) in highest.items()}, "at its highest rung"
    assert not list((run / "rungs").glob("*")), "the finished search removed its states"
    best = yaml.safe_load((run / "best/architecture.yaml").read_text())["provenance"]["key"]
    assert any(r["key"] == best and r["epochs"] == RUNGS[-1] for r in lines), "the best is ranked by rung first"
    out = cli("resume", str(run), "--workers", "0")
    assert out.code == 0 and log_lines(run) == lines, "a finished search resumes to itself"
    assert cli("report", str(run)).code == 0
    summary = (run / "report" / "summary.md").read_text()
    promoted = len(lines) - 40
    assert "| evaluations | 40 (" in summary, "the report counts candidates, not rung lines"
    assert f"| promotions | {promoted:,} rungs trained beyond the first ({len(lines):,} log lines) |" in summary


def test_async_fidelity_sigkill_then_resume_continues_the_same_run(tmp_path):
    """A SIGKILL while an async ASHA search promotes: the resume loses no line, trains no epoch twice, picks
    the lost promotion again from its saved state, and ends as the uninterrupted run (one in-process slot, so
    the completion order is the submission order)."""
    reference = tmp_path / "reference"
    cfg = synthetic_fidelity(tmp_path, 24, mode="async")
    assert cli("search", str(cfg), "--run-dir", str(reference), "--workers", "0").code == 0
    slow = synthetic_fidelity(tmp_path, 24, seconds=1.5, name="slow.yaml", mode="async")
    run = tmp_path / "run"
    kill_once_a_promotion_is_logged(slow, run)
    before = log_lines(run)
    assert any(r["epochs"] == 3 for r in before) and list((run / "rungs").glob("*.safetensors"))
    out = cli("resume", str(run), "--workers", "0")
    assert out.code == 0 and out.exception is None, (out.stderr[-2000:], out.exception)
    after = log_lines(run)
    assert after[: len(before)] == before, "nothing logged before the kill is lost"
    assert_each_epoch_trained_once(after)
    outcome = lambda lines: {(r["key"], r["epochs"], r["fitness"]) for r in lines}  # noqa: E731
    assert outcome(after) == outcome(log_lines(reference)), "the same search as the uninterrupted one"
    assert not list((run / "rungs").glob("*"))


def tiny_digits(folder: Path) -> Path:
    data = yaml.safe_load((ROOT / "search_configs/digits_quick.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["dataset"].update({"train_subset": 0.3, "validation_fraction": 0.2})
    data["fitness"].update({"epochs": 3, "device": "cpu"})
    data["search"].update({"fidelity": {"min_epochs": 1, "eta": 3}, "pso": {"swarm_size": 2},
                           "ga": {"population": 3, "generations": 2, "tournament_size": 2, "elitism": 1}})  # fmt: skip
    path = folder / "digits_fid.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_real_training_top_rung_is_the_full_training_bit_for_bit(tmp_path):
    """One batch of 6 real candidates through rungs 1 and 3 of a 3-epoch budget: the candidate promoted to the
    top has exactly the validation accuracy of an uninterrupted full training of its genome."""
    import torch

    torch.set_num_threads(1)
    cfg = tiny_digits(tmp_path)
    run = tmp_path / "run"
    out = cli("search", str(cfg), "--run-dir", str(run), "--workers", "0", "--max-evaluations", "6")
    assert out.code == 0 and out.exception is None, (out.stderr[-2000:], out.exception)
    lines = log_lines(run)
    assert [r["epochs"] for r in lines] == [1] * 6 + [3] * 2
    assert all(r["metrics"]["epochs_trained"] == 2 for r in lines[6:]), "promoted candidates continued"
    config = load_config(cfg)
    space = load_space(config.encoding)
    objective = TrainObjective(config, space, load_dataset(config.dataset, config.seed))
    for top in lines[6:]:
        full = objective(Genome.from_dict(top["genome"]))
        assert full.fitness == top["fitness"]
    checkpoint = json.loads((run / "checkpoint.json").read_text())
    assert checkpoint["step"] == 1, "the whole batch was told"


def test_rungs_through_ray_give_the_in_process_search(tmp_path):
    cfg = synthetic_fidelity(tmp_path, 12)
    local, ray_run = tmp_path / "local", tmp_path / "ray"
    assert cli("search", str(cfg), "--run-dir", str(local), "--workers", "0").code == 0
    out = subprocess.run([sys.executable, "-m", "nas", "search", str(cfg), "--run-dir", str(ray_run), "--workers",
                          "2"], env=env(), cwd=ROOT, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    outcome = lambda lines: sorted((r["key"], r["epochs"], r["fitness"], r["step"]) for r in lines)  # noqa: E731
    assert outcome(log_lines(ray_run)) == outcome(log_lines(local))
    assert all(r["worker"].startswith("ray:") for r in log_lines(ray_run))


def asha_search(run: Path, candidates: int, stop_after: int | None = None):
    """What the async policy does with `AshaScheduler`, on the in-process evaluator (one slot): when the slot
    frees, the candidate that continues goes on, else a new random candidate starts. Stops early after
    `stop_after` results, leaving the job in flight (as a crash would). Returns (log, the job in flight or None)."""
    import random

    from nas.config import FidelityConfig
    from nas.evaluate.evaluator import LocalEvaluator
    from nas.run.runlog import EvaluationLog
    from nas.run.schedulers import AshaScheduler
    from nas.strategies.random_search import random_genome

    config = load_config(synthetic_fidelity(run.parent))
    space = load_space(config.encoding)
    run.mkdir(exist_ok=True)
    log = EvaluationLog(run / "evaluations.jsonl")
    rungs = AshaScheduler(
        run, FidelityConfig(min_epochs=1, eta=3, signal="accuracy"), 9, log, lambda results: log.append(*results)
    )
    evaluator = LocalEvaluator(build_synthetic(config, space))
    rng = random.Random(0)
    jobs: dict = {}
    started = len(log)
    arrived = 0

    def fill(going_on: Genome | None) -> None:
        nonlocal started
        if going_on is not None:
            job = rungs.next_job(going_on)
        else:
            genome = random_genome(space, rng)
            while genome.key in log:
                genome = random_genome(space, rng)
            if started >= candidates:
                return
            job, started = rungs.next_job(genome), started + 1
        jobs[evaluator.submit(job)] = job

    fill(None)
    while evaluator.outstanding():
        if stop_after is not None and arrived == stop_after:
            log.close()
            return log, next(iter(jobs.values()))
        for ticket, result in evaluator.wait():
            job = jobs.pop(ticket)
            settled = bool(rungs.arrived([(job, result)]).settled)
            arrived += 1
        fill(None if settled else job.genome)
    rungs.finish()
    log.close()
    return log, None


def test_asha_continues_the_top_of_each_rung_as_results_arrive(tmp_path):
    run = tmp_path / "run"
    asha_search(run, 30)
    lines = log_lines(run)
    assert len({r["key"] for r in lines}) == 30 and {r["epochs"] for r in lines} == set(RUNGS)
    assert_asha_stopping_rule(lines)
    assert_each_epoch_trained_once(lines)
    assert not list((run / "rungs").glob("*")), "the finished search removed its states"


def test_asha_after_a_crash_resumes_the_continuation_in_flight_from_its_state(tmp_path):
    from nas.config import FidelityConfig
    from nas.run.runlog import EvaluationLog
    from nas.run.schedulers import AshaScheduler

    run = tmp_path / "run"
    for stop in range(2, 30):  # the first stop with a continuation in flight
        if run.exists():
            import shutil

            shutil.rmtree(run)
        _, job = asha_search(run, 30, stop_after=stop)
        if job is not None and job.epochs > RUNGS[0]:
            break
    assert job.state is not None
    below = RUNGS[RUNGS.index(job.epochs) - 1]
    assert {p.name for p in (run / "rungs").glob("*")} == {f"{job.key}.e{below}.safetensors"}, "only its state"
    log = EvaluationLog(run / "evaluations.jsonl")
    resumed = AshaScheduler(
        run, FidelityConfig(min_epochs=1, eta=3, signal="accuracy"), 9, log, lambda results: log.append(*results)
    )
    assert resumed.continuing == {job.key: RUNGS.index(below)}
    assert {key for _, key in resumed.settled} == {r.key for r in log.lines} - {job.key}, "the others settled"
    again = resumed.next_job(job.genome)
    assert (again.key, again.epochs, again.state) == (job.key, job.epochs, job.state)
    log.close()


def test_a_damaged_rung_state_is_a_warning_and_that_candidate_trains_from_epoch_zero(tmp_path, caplog):
    cfg = synthetic_fidelity(tmp_path, 24)  # one batch of the default swarm (8 particles x 3 strings)
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert cli("search", str(cfg), "--run-dir", str(reference), "--workers", "0").code == 0
    assert cli("search", str(cfg), "--run-dir", str(run), "--workers", "0", "--max-evaluations", "8").code == 0
    states = sorted((run / "rungs").glob("*.safetensors"))
    assert len(states) == 8, "the cut batch keeps its first-rung states for the resume"
    promoted = {r["key"] for r in log_lines(reference) if r["step"] == 0 and r["epochs"] == 3}
    damaged = [p for p in states if p.name.split(".")[0] in promoted]
    assert damaged, "the seed promotes one of the first eight (else pick another seed)"
    damaged[0].write_bytes(damaged[0].read_bytes()[:40])  # torn
    for p in damaged[1:]:
        p.unlink()
    with caplog.at_level("WARNING"):
        assert cli("resume", str(run), "--workers", "0").code == 0
    assert "trains again from epoch 0" in caplog.text
    lines = log_lines(run)
    outcome = lambda lines: {(r["key"], r["epochs"], r["fitness"]) for r in lines}  # noqa: E731
    assert outcome(lines) == outcome(log_lines(reference)), "the same numbers, only retrained"
    keys = {p.name.split(".")[0] for p in damaged}
    assert all(r["metrics"]["epochs_trained"] == 3 for r in lines if r["key"] in keys and r["epochs"] == 3)
