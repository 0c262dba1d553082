"""Kills: a real search (digits, real training) SIGKILLed at random instants while it works, resumed each time.

Each round starts `nas search` (then `nas resume`), waits until the log grows (so the process is past its
start-up and busy training, writing the log or a checkpoint), then kills it at a random instant within the
next candidate's training. At the end the run must be exactly the uninterrupted run: the same genomes with the
same outcomes and fitness to the last bit (CPU training is deterministic for a seed), the same best, and
nothing lost on the way (every line the log held at a kill is still there) or trained twice (no key twice).
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from reliability_runs import (
    DIGITS_EVALUATIONS,
    ROOT,
    THREADS_ENV,
    best,
    content,
    digits_reference,
    environ_without_ray,
    log_lines,
    synthetic_config,
    synthetic_reference,
)

MIN_KILLS = 6
MAX_KILLS = MIN_KILLS  # then the last resume runs to the end (each round costs a process start)
ROUND_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return digits_reference(tmp_path_factory)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **THREADS_ENV}


def wait_for_progress(proc: subprocess.Popen, run: Path, before: int) -> bool:
    """Until the log holds more complete lines than `before`; False if the process ended first."""
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if len(log_lines(run)) > before:
            return True
        time.sleep(0.02)
    assert proc.poll() is not None, "no progress within the round's time"
    return False


def training_seconds(run: Path) -> float:
    """How long one candidate trains here: the quickest so far (later ones in a process skip its start-up)."""
    return min(r["seconds"] for r in log_lines(run))


@pytest.mark.timeout(600)
def test_sigkill_at_random_instants_then_resume_equals_the_uninterrupted_run(reference, tmp_path, record_property):
    """SIGKILL at >= 6 random instants, resumed each time: the log ends as the uninterrupted run's, same best.

    Nothing finished is lost or trained twice, the log parses, and best/architecture.yaml names the best.
    """
    cfg, whole = reference
    run = tmp_path / "killed"
    rng = random.Random(9)
    command = ["search", str(cfg), "--run-dir", str(run), "--workers", "0"]
    kills, seen = 0, []
    for round_number in range(4 * DIGITS_EVALUATIONS):
        before = len(log_lines(run))
        stderr_path = tmp_path / f"stderr-{round_number}.txt"
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen([sys.executable, "-m", "nas", *command], cwd=ROOT, env=env(),
                                    stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
        if kills >= MAX_KILLS:  # enough kills landed: let this resume finish the search
            proc.wait(timeout=ROUND_TIMEOUT_S)
        elif wait_for_progress(proc, run, before):
            time.sleep(rng.uniform(0.0, 0.6 * training_seconds(run)))
        if proc.poll() is not None:
            text = stderr_path.read_text(errors="replace")
            assert proc.returncode == 0 and "Traceback" not in text, text[-3000:]
            break
        proc.kill()
        proc.wait()
        kills += 1
        seen.append(log_lines(run))
        command = ["resume", str(run), "--workers", "0"]
    else:
        pytest.fail("the search never finished")
    record_property("tried", kills)
    assert kills >= MIN_KILLS, f"only {kills} kills landed before the search finished"
    final = log_lines(run)
    for lines in seen:
        assert final[: len(lines)] == lines, "a finished evaluation was lost or rewritten after a kill"
    keys = [r["key"] for r in final]
    assert len(keys) == len(set(keys)) == DIGITS_EVALUATIONS, "a finished evaluation was trained twice"
    assert content(run) == content(whole)
    assert best(run) == best(whole)
    arch = yaml.safe_load((run / "best/architecture.yaml").read_text())
    assert arch["provenance"]["key"] == best(whole)[0]


# (signal, to the whole process group, once candidates are in flight rather than while Ray starts)
SIGNAL_ROUNDS = [(signal.SIGINT, False, True), (signal.SIGTERM, True, False), (signal.SIGTERM, False, True),
                 (signal.SIGINT, True, True)]  # fmt: skip


@pytest.mark.timeout(400)
def test_sigint_and_sigterm_under_ray_stop_cleanly_then_resume_equals_the_uninterrupted_run(
    tmp_path_factory, tmp_path, record_property
):
    """SIGINT and SIGTERM at random instants (Ray starting, candidates in flight) to a search on the embedded Ray
    (`--workers 2`), sent to the process and to its whole process group, resumed each time.

    Each stop exits 130 or 143 with the one-line warning and the summary, no traceback; no candidate is logged
    failed for the stop; the log parses, nothing is trained twice, and the finished run equals the uninterrupted
    one.
    """
    _, whole = synthetic_reference(tmp_path_factory)
    cfg = synthetic_config(tmp_path, fitness={"seconds_per_evaluation": 0.2})
    run = tmp_path / "run"
    rng = random.Random(12)
    command = ["search", str(cfg), "--run-dir", str(run), "--workers", "2"]
    environment = {**environ_without_ray(), "PYTHONUNBUFFERED": "1", **THREADS_ENV}
    for signum, to_group, in_flight in SIGNAL_ROUNDS:
        before = len(log_lines(run))
        proc = subprocess.Popen([sys.executable, "-m", "nas", *command], cwd=ROOT, env=environment, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        while not (run / "checkpoint.json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if in_flight:
            wait_for_progress(proc, run, before)
            time.sleep(rng.uniform(0.0, 1.0))
        else:
            time.sleep(rng.uniform(0.0, 3.0))  # Ray takes seconds to start
        assert proc.poll() is None, "the search ended before the signal"
        os.killpg(proc.pid, signum) if to_group else proc.send_signal(signum)
        out, err = proc.communicate(timeout=ROUND_TIMEOUT_S)
        name = signal.Signals(signum).name
        assert proc.returncode == 128 + signum, f"{name}: exit {proc.returncode}\n{err[-3000:]}"
        assert "Traceback" not in err and f"interrupted by {name}" in err, err[-3000:]
        assert "search paused" in out, out
        assert all(r["status"] == "ok" for r in log_lines(run)), "the stop was logged as a failed candidate"
        command = ["resume", str(run), "--workers", "2"]
    record_property("tried", len(SIGNAL_ROUNDS))
    out = subprocess.run([sys.executable, "-m", "nas", "resume", str(run), "--workers", "0"], cwd=ROOT,
                         env=environment, capture_output=True, text=True, timeout=ROUND_TIMEOUT_S)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    keys = [r["key"] for r in log_lines(run)]
    assert len(keys) == len(set(keys)), "a finished evaluation was trained twice"
    assert content(run) == content(whole)


# A `nas search` whose third write of a rung state (`search.fidelity`) SIGKILLs the process inside the write:
# the state is fsynced to its staged file, the rename has not happened.
KILLED_IN_A_RUNG_WRITE = """
import os, signal, sys
real, writes = os.replace, []
def replace(src, dst, *args, **kwargs):
    if os.path.basename(os.path.dirname(os.fspath(dst))) == "rungs":
        writes.append(dst)
        if len(writes) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
os.replace = replace
from nas.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.timeout(300)
def test_sigkill_inside_a_rung_state_write_leaves_a_staged_file_that_resume_removes(tmp_path):
    """An async ASHA search killed inside the write of a rung state leaves `rungs/.<key>.e1.safetensors.<random>
    .tmp`; `nas resume` removes it, trains what the kill lost, and ends with the uninterrupted run's evaluations."""
    from reliability_runs import cli

    fidelity = {"mode": "async", "fidelity": {"min_epochs": 1, "eta": 3}}
    cfg = synthetic_config(tmp_path, 24, search=fidelity, fitness={"epochs": 9})
    whole, run = tmp_path / "whole", tmp_path / "run"
    assert cli("search", str(cfg), "--run-dir", str(whole), "--workers", "0").code == 0
    argv = ["search", str(cfg), "--run-dir", str(run), "--workers", "0"]
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_A_RUNG_WRITE, *argv], cwd=ROOT, env=env(),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    staged = list((run / "rungs").glob(".*.safetensors.*.tmp"))
    assert len(staged) == 1 and staged[0].stat().st_size > 0, "the kill left the staged state"
    resumed = subprocess.run([sys.executable, "-m", "nas", "resume", str(run), "--workers", "0"], cwd=ROOT, env=env(),
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr[-3000:]
    assert not list((run / "rungs").iterdir()), "the staged file is gone, and the finished search kept no state"
    outcome = lambda r: sorted((x["key"], x["epochs"], x["status"], x["fitness"]) for x in log_lines(r))  # noqa: E731
    assert outcome(run) == outcome(whole)
