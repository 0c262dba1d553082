"""`nas search` / `nas resume` on the embedded Ray, against the in-process evaluator: the same log content and
best whatever the completion order, and a SIGKILL of the driver mid-search loses nothing finished."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
import yaml
from conftest import ROOT, run_nas

psutil = pytest.importorskip("psutil")


def write_config(path: Path) -> Path:
    """The smoke search with 40 evaluations of 0.05 s each: slow enough to kill mid-way, cheap on 2 cores."""
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["search"]["budget"] = {"evaluations": 40}
    data["fitness"]["seconds_per_evaluation"] = 0.05
    path.write_text(yaml.safe_dump(data))
    return path


def log_lines(run: Path) -> list[dict]:
    path = run / "evaluations.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]


def content(run: Path) -> dict[str, tuple]:
    return {r["key"]: (r["status"], r["fitness"], r["params"], r["flops"]) for r in log_lines(run)}


def best(run: Path) -> tuple:
    top = min((r for r in log_lines(run) if r["status"] == "ok"), key=lambda r: (-r["fitness"], r["params"], r["key"]))
    return top["key"], top["fitness"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """The config and its in-process run, which every Ray run must reproduce."""
    folder = tmp_path_factory.mktemp("reference")
    cfg = write_config(folder / "cfg.yaml")
    out = run_nas("search", str(cfg), "--run-dir", str(folder / "run"), "--workers", "0")
    assert out.returncode == 0, out.stderr
    return cfg, folder / "run"


def test_ray_with_two_workers_gives_the_in_process_log_and_best(reference, tmp_path):
    cfg, local = reference
    out = run_nas("search", str(cfg), "--run-dir", str(tmp_path / "ray"), "--workers", "2")
    assert out.returncode == 0, out.stderr
    assert "embedded Ray started" in out.stderr
    lines = log_lines(tmp_path / "ray")
    assert len(lines) == 40 and all(r["worker"].startswith("ray:") and r["attempts"] == 1 for r in lines)
    assert content(tmp_path / "ray") == content(local)
    assert best(tmp_path / "ray") == best(local)


def test_sigkill_of_the_driver_on_ray_then_resume_loses_nothing(reference, tmp_path):
    cfg, local = reference
    run = tmp_path / "run"
    args = [sys.executable, "-m", "nas", "search", str(cfg), "--run-dir", str(run), "--workers", "2"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while len(log_lines(run)) < 4:
        assert proc.poll() is None and time.monotonic() < deadline, "the search ended before it could be killed"
        time.sleep(0.02)
    family = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait()
    before = log_lines(run)
    reap(family)
    assert 4 <= len(before) < 40, "killed mid-search"

    out = run_nas("resume", str(run), "--workers", "2")
    assert out.returncode == 0, out.stderr
    after = log_lines(run)
    assert after[: len(before)] == before, "a finished evaluation was lost or rewritten"
    assert len({r["key"] for r in after}) == len(after) == 40, "a finished evaluation was trained twice"
    assert content(run) == content(local)
    assert best(run) == best(local)


def reap(processes: list) -> None:
    """End what the killed driver's embedded Ray left behind (Ray's agents can outlive a SIGKILLed driver)."""
    for p in processes:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=10)
    for p in alive:
        p.kill()
