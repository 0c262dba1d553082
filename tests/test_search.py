"""The driver through the real `nas search` / `nas resume` commands: determinism, resume, crash safety."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_nas
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

STRATEGIES = ["hgapso", "pso", "ga", "random", "regularized-evolution"]
TENSORBOARD_SCALARS = (
    "best_fitness",
    "mean_fitness",
    "evaluations_per_second",
    "failures",
    "repeats_avoided",
    "unfilled",
)


def smoke_config(tmp_path: Path, name: str = "cfg", **search) -> Path:
    """The shipped smoke config with overrides, written beside the test (paths made absolute)."""
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    budget = search.pop("evaluations", 60)
    seconds = search.pop("seconds", 0)
    data["search"].update(search)
    data["search"]["budget"] = {"evaluations": budget}
    data["fitness"]["seconds_per_evaluation"] = seconds
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def log_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines() if line.strip()]


def content(run: Path) -> dict[str, tuple]:
    """What must not depend on how the run was executed: each genome's outcome."""
    return {r["key"]: (r["status"], r["fitness"], r["params"]) for r in log_lines(run)}


def best(run: Path) -> tuple:
    ok = [r for r in log_lines(run) if r["status"] == "ok"]
    top = min(ok, key=lambda r: (-r["fitness"], r["params"], r["key"]))
    return top["key"], top["fitness"]


def search(cfg: Path, run: Path, *extra: str):
    out = run_nas("search", str(cfg), "--run-dir", str(run), "--workers", "0", *extra)
    assert out.returncode == 0, out.stderr
    return out


def test_same_seed_gives_the_same_log_and_best(tmp_path):
    cfg = smoke_config(tmp_path)
    search(cfg, tmp_path / "a")
    search(cfg, tmp_path / "b")
    a, b = log_lines(tmp_path / "a"), log_lines(tmp_path / "b")
    assert [r["key"] for r in a] == [r["key"] for r in b]
    assert len(a) == 60
    assert best(tmp_path / "a") == best(tmp_path / "b")
    arch = yaml.safe_load((tmp_path / "a/best/architecture.yaml").read_text())
    assert arch["provenance"]["key"] == best(tmp_path / "a")[0]
    scalars = EventAccumulator(str(tmp_path / "a/tensorboard"))
    scalars.Reload()
    assert set(scalars.Tags()["scalars"]) == {f"search/{t}" for t in TENSORBOARD_SCALARS}
    assert scalars.Scalars("search/best_fitness")[-1].value == pytest.approx(best(tmp_path / "a")[1])


def test_another_seed_gives_another_trajectory(tmp_path):
    cfg = smoke_config(tmp_path)
    search(cfg, tmp_path / "a")
    search(cfg, tmp_path / "b", "--seed", "7")
    assert [r["key"] for r in log_lines(tmp_path / "a")] != [r["key"] for r in log_lines(tmp_path / "b")]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_resume_after_max_evaluations_equals_an_uninterrupted_run(tmp_path, strategy):
    cfg = smoke_config(tmp_path, strategy=strategy, evaluations=40)
    search(cfg, tmp_path / "whole")
    out = search(cfg, tmp_path / "parts", "--max-evaluations", "13")
    assert "paused" in out.stdout
    assert len(log_lines(tmp_path / "parts")) == 13
    for _ in range(5):
        resumed = run_nas("resume", str(tmp_path / "parts"), "--workers", "0", "--max-evaluations", "9")
        assert resumed.returncode == 0, resumed.stderr
    assert content(tmp_path / "parts") == content(tmp_path / "whole")
    assert best(tmp_path / "parts") == best(tmp_path / "whole")


def wait_for_progress(proc: subprocess.Popen, run: Path, before: int, timeout: float = 120) -> bool:
    """Wait until the log holds more lines than `before` (or the process exits); True if it grew."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "evaluations.jsonl").exists() and len(log_lines(run)) > before:
            return True
        time.sleep(0.02)
    return False


def test_sigkill_at_random_instants_loses_nothing(tmp_path):
    cfg = smoke_config(tmp_path, evaluations=50, seconds=0.05)
    search(cfg, tmp_path / "whole")
    run = tmp_path / "killed"
    rng = random.Random(1)
    args = [sys.executable, "-m", "nas", "search", str(cfg), "--run-dir", str(run), "--workers", "0"]
    kills = 0
    for _ in range(40):
        before = len(log_lines(run)) if (run / "evaluations.jsonl").exists() else 0
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if wait_for_progress(proc, run, before):
            time.sleep(rng.uniform(0.0, 0.4))  # a random instant while evaluations are being written
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()
            break
        proc.kill()
        proc.wait()
        kills += 1
        args = [sys.executable, "-m", "nas", "resume", str(run), "--workers", "0"]
    assert kills >= 3, "the search finished before it could be killed often enough"
    keys = [r["key"] for r in log_lines(run)]
    assert len(keys) == len(set(keys)), "a finished evaluation was trained twice"
    assert content(run) == content(tmp_path / "whole")
    assert best(run) == best(tmp_path / "whole")


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_stop_cleanly_and_resume(tmp_path, signum, code):
    cfg = smoke_config(tmp_path, evaluations=40, seconds=0.05)
    search(cfg, tmp_path / "whole")
    run = tmp_path / "run"
    args = [sys.executable, "-m", "nas", "search", str(cfg), "--run-dir", str(run), "--workers", "0"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "evaluations.jsonl").exists() or not log_lines(run):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert run_nas("resume", str(run), "--workers", "0").returncode == 0
    assert content(run) == content(tmp_path / "whole")


def test_refuses_a_non_empty_run_dir(tmp_path):
    cfg = smoke_config(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run/keep.txt").write_text("mine")
    out = run_nas("search", str(cfg), "--run-dir", str(tmp_path / "run"), "--workers", "0")
    assert out.returncode == 2 and "not empty" in out.stderr
    assert (tmp_path / "run/keep.txt").read_text() == "mine"


def test_resume_refuses_a_changed_config(tmp_path):
    cfg = smoke_config(tmp_path)
    run = tmp_path / "run"
    search(cfg, run, "--max-evaluations", "10")
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("seed: 0", "seed: 1"))
    out = run_nas("resume", str(run), "--workers", "0")
    assert out.returncode == 2 and "changed" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_resume_survives_a_corrupt_checkpoint_and_a_torn_log_line(tmp_path):
    cfg = smoke_config(tmp_path, evaluations=40)
    search(cfg, tmp_path / "whole")
    run = tmp_path / "run"
    search(cfg, run, "--max-evaluations", "30")
    (run / "checkpoint.json").write_text((run / "checkpoint.json").read_text()[:40])
    with open(run / "evaluations.jsonl", "a") as f:
        f.write('{"key": "torn", "genome": {"blo')
    out = run_nas("resume", str(run), "--workers", "0")
    assert out.returncode == 0, out.stderr
    assert "falling back" in out.stderr and "incomplete" in out.stderr
    assert content(run) == content(tmp_path / "whole")


def test_resume_with_both_checkpoints_corrupt_exits_2_untouched(tmp_path):
    cfg = smoke_config(tmp_path)
    run = tmp_path / "run"
    search(cfg, run, "--max-evaluations", "30")
    (run / "checkpoint.json").write_text("{")
    (run / "checkpoint.prev.json").write_text("[]")
    out = run_nas("resume", str(run), "--workers", "0")
    assert out.returncode == 2 and "corrupt" in out.stderr
    assert (run / "checkpoint.json").read_text() == "{" and (run / "checkpoint.prev.json").read_text() == "[]"


def test_a_search_whose_asks_are_all_repeats_ends_as_converged(tmp_path):
    cfg = smoke_config(tmp_path, strategy="ga", evaluations=100, architecture=[{"layers": 1, "growth_rate": 4}] * 2)
    out = search(cfg, tmp_path / "run")
    assert "converged" in out.stderr and "finished" in out.stdout
    assert len(log_lines(tmp_path / "run")) == 4  # 2 blocks of 1 bit: every genome there is


def test_sigterm_during_real_training_logs_nothing_for_the_interrupted_candidate(tmp_path):
    """The stop arrives inside a real training: that candidate is not recorded (neither ok nor failed), and
    resume trains it, so the run ends with every genome ok once."""
    data = yaml.safe_load((ROOT / "search_configs/digits_quick.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["dataset"]["train_subset"] = 0.5
    data["fitness"].update({"epochs": 2, "device": "cpu"})
    data["search"].update({"strategy": "random", "budget": {"evaluations": 3}})
    cfg = tmp_path / "digits.yaml"
    cfg.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    args = [sys.executable, "-m", "nas", "search", str(cfg), "--run-dir", str(run), "--workers", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (run / "evaluations.jsonl").exists() or not log_lines(run):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)  # into the next candidate's training (seconds long)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert all(r["status"] == "ok" for r in log_lines(run)), "the interrupted candidate was logged"
    assert run_nas("resume", str(run), "--workers", "0", env={"OMP_NUM_THREADS": "1"}).returncode == 0
    lines = log_lines(run)
    assert len(lines) == 3 and len({r["key"] for r in lines}) == 3
    assert all(r["status"] == "ok" for r in lines)


def test_a_second_driver_on_a_running_search_is_refused_and_changes_nothing(tmp_path):
    """`nas resume` (or a second `nas search` into the same folder) while a search runs there: exit 2, one
    line, the log untouched; once the first is killed (SIGKILL leaves no stale lock), resume works."""
    cfg = smoke_config(tmp_path, evaluations=32, seconds=0.25)  # 8 s: the second driver starts well within
    run = tmp_path / "run"
    args = [sys.executable, "-m", "nas", "search", str(cfg), "--run-dir", str(run), "--workers", "0"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_progress(proc, run, 0)
        second = run_nas("resume", str(run), "--workers", "0")
        assert second.returncode == 2 and "in use by another" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        keys = [r["key"] for r in log_lines(run)]
        assert len(keys) == len(set(keys))
    finally:
        proc.kill()
        proc.wait()
    assert run_nas("resume", str(run), "--workers", "0").returncode == 0
    keys = [r["key"] for r in log_lines(run)]
    assert len(keys) == len(set(keys)) == 32
