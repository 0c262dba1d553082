"""Worker memory: what one Ray worker training candidates holds (RSS, USS, PSS), before and after a change.

A search's evaluation runs as `nas search` runs it: the config's objective (its dataset loaded once by the
driver), an embedded local Ray, `RayEvaluator` with `--workers` candidates at once, `--candidates` random genomes
of the config's space (the same ones for every variant). This script runs that evaluation in a child process,
once per variant, and samples the memory of the child's process tree every `--interval` seconds from outside
(`/proc/<pid>/smaps_rollup`, `nas.evaluate.host_memory`): each Ray worker that trained a candidate, at its peak
and once idle after the last candidate, and the whole tree (driver, Ray's own processes, workers) as summed PSS.
Variants: `after` is this working tree; `before` is the package as of `--before` (a commit, extracted with
`git archive` into a temporary folder, put first on the child's and its workers' PYTHONPATH). A first row gives
the floor: a bare `python -c "import torch"` (which also loads torch's CUDA libraries, even on a CPU node).

RSS counts the shared pages (torch's and CUDA's library code, the object store's data) in every worker that
touched them; USS is what one more worker adds to a node. Prints a table and one JSON line with the machine and
the date.

    nice -n 10 .venv/bin/python benchmarks/worker_memory.py --workers 2 --candidates 4
"""

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__" and "--child" not in sys.argv:
    sys.path.insert(0, str(ROOT))  # the child imports the package from its PYTHONPATH (the variant's tree)

DEFAULT_CONFIG = "search_configs/cifar10_jpeg_lowfi.yaml"
BEFORE = "f243080e8537beaf73842a1366d61c374f56cfc4"  # the package before workers handed their freed heap back
IDLE_SETTLE_S = 1.0


def child(config_path: str, workers: int, candidates: int, seed: int) -> None:
    """The measured process: evaluate `candidates` random genomes through Ray; print which workers ran them,
    then keep Ray up (workers idle) until stdin closes, so the parent can read the idle figures."""
    import ray

    from nas.config import RayConfig, load_config
    from nas.evaluate.job import Job
    from nas.evaluate.objective import build_objective
    from nas.evaluate.ray_evaluator import RayEvaluator
    from nas.genome import load_space
    from nas.strategies.random_search import random_genome

    logging.basicConfig(level=logging.WARNING)
    config = load_config(config_path)
    space = load_space(config.encoding)
    objective = build_objective(config, space)
    rng = random.Random(seed)
    jobs = [Job(random_genome(space, rng)) for _ in range(candidates)]
    print(json.dumps({"event": "loaded"}), flush=True)
    evaluator = RayEvaluator(objective, config.resources, RayConfig(), workers=workers)
    results: list[dict] = []
    start = time.perf_counter()
    evaluator.evaluate(jobs, lambda i, r: results.append(
        {"index": i, "status": r.status, "fitness": r.fitness, "pid": int((r.worker or ":0").rsplit(":", 1)[1]),
         "peak_memory_mb": r.metrics.get("peak_memory_mb"), "seconds": r.seconds}))  # fmt: skip
    seconds = time.perf_counter() - start
    where = ray.get(ray.remote(num_cpus=0)(package_file).remote())  # which tree the workers imported
    print(json.dumps({"event": "done", "seconds": seconds, "results": results, "worker_nas": where}), flush=True)
    sys.stdin.read()
    evaluator.close()


def package_file() -> str:
    import nas

    return nas.__file__


def descendants(root: int) -> list[int]:
    """Every process below `root` (Ray's processes and its workers are children of the driver it started)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, parent in parents.items() if parent == pid]
        found += kids
        frontier += kids
    return found


@dataclass
class Peaks:
    """Highest figures seen per process (MiB), and the highest summed PSS of the whole tree."""

    rss: dict[int, float] = field(default_factory=dict)
    uss: dict[int, float] = field(default_factory=dict)
    tree_pss: float = 0.0


def sample(root: int, peaks: Peaks) -> None:
    from nas.evaluate.host_memory import process_memory

    total = 0.0
    for pid in [root, *descendants(root)]:
        memory = process_memory(pid)
        if memory is None:
            continue
        total += memory.pss
        peaks.rss[pid] = max(peaks.rss.get(pid, 0.0), memory.rss)
        peaks.uss[pid] = max(peaks.uss.get(pid, 0.0), memory.uss)
    peaks.tree_pss = max(peaks.tree_pss, total)


def extract(commit: str, into: Path) -> Path:
    """The `nas` package and the shipped spaces as of `commit`, extracted (read-only git) into `into`."""
    command = ["git", "-C", str(ROOT), "archive", commit, "nas", "encodings"]
    archive = subprocess.run(command, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def run_variant(name: str, source: Path, args: argparse.Namespace) -> dict:
    """Run the child on the package at `source`, sampling its tree; the per-worker figures and the tree's peak."""
    from nas.evaluate.host_memory import process_memory

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), os.environ.get("PYTHONPATH", "")]).rstrip(":")}
    config = str(Path(args.config).resolve())
    sizes = ["--workers", str(args.workers), "--candidates", str(args.candidates), "--seed", str(args.seed)]
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--config", config, *sizes]
    proc = subprocess.Popen(command, cwd=source, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    peaks, stop = Peaks(), threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            sample(proc.pid, peaks)
            stop.wait(args.interval)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    done = None
    assert proc.stdout is not None and proc.stdin is not None
    for line in proc.stdout:
        message = json.loads(line) if line.startswith("{") else {}
        if message.get("event") == "done":
            done = message
            break
    stop.set()
    thread.join()
    time.sleep(IDLE_SETTLE_S)
    idle = {}
    for pid in sorted({r["pid"] for r in (done or {}).get("results", [])}):
        memory = process_memory(pid)
        idle[pid] = asdict(memory) if memory is not None else None
    proc.stdin.close()
    proc.wait(timeout=120)
    if done is None:
        raise RuntimeError(f"variant {name}: the evaluation did not finish (exit {proc.returncode})")
    workers = []
    for pid, memory in idle.items():
        runs = [r for r in done["results"] if r["pid"] == pid]
        workers.append({"pid": pid, "candidates": len(runs), "ok": sum(r["status"] == "ok" for r in runs),
                        "peak_rss": peaks.rss.get(pid), "peak_uss": peaks.uss.get(pid), "idle": memory})  # fmt: skip
    return {"variant": name, "workers": workers, "tree_pss_peak": peaks.tree_pss, "seconds": done["seconds"],
            "worker_nas": done["worker_nas"],
            "fitness": [r["fitness"] for r in sorted(done["results"], key=lambda r: r["index"])]}  # fmt: skip


def floor() -> dict:
    """A bare interpreter that imported torch: the part of every worker no change to evonas can remove."""
    code = "import torch, pathlib; print(pathlib.Path('/proc/self/smaps_rollup').read_text())"
    text = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    from nas.evaluate.host_memory import smaps_rollup_kib

    kib = smaps_rollup_kib(text)
    uss = kib["Private_Clean"] + kib["Private_Dirty"]
    return {"rss": kib["Rss"] / 1024, "uss": uss / 1024, "pss": kib["Pss"] / 1024}


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_table(floor_row: dict, variants: list[dict]) -> None:
    print(f"{'variant':<8} {'pid':>8} {'cands':>5} {'peak RSS':>9} {'peak USS':>9} {'idle RSS':>9} {'idle USS':>9} "
          f"{'idle PSS':>9} {'shmem':>6}   (MiB)")  # fmt: skip
    print(f"{'torch':<8} {'-':>8} {'-':>5} {'-':>9} {'-':>9} {mib(floor_row['rss']):>9} {mib(floor_row['uss']):>9} "
          f"{mib(floor_row['pss']):>9} {'-':>6}   (python -c 'import torch')")  # fmt: skip
    for variant in variants:
        for w in variant["workers"]:
            idle = w["idle"] or {}
            print(f"{variant['variant']:<8} {w['pid']:>8} {w['candidates']:>5} {mib(w['peak_rss']):>9} "
                  f"{mib(w['peak_uss']):>9} {mib(idle.get('rss')):>9} {mib(idle.get('uss')):>9} "
                  f"{mib(idle.get('pss')):>9} {mib(idle.get('rss_shmem')):>6}")  # fmt: skip
        print(f"{variant['variant']:<8} whole tree (driver + Ray + workers), peak summed PSS: "
              f"{variant['tree_pss_peak']:.0f} MiB; evaluation {variant['seconds']:.0f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="draws the genomes")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    parser.add_argument("--before", default=BEFORE, help="commit of the 'before' variant ('none' to skip it)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.config, args.workers, args.candidates, args.seed)
        return
    from benchmarks.machine import machine

    variants = []
    with tempfile.TemporaryDirectory(prefix="worker-memory-") as tmp:
        if args.before != "none":
            variants.append(run_variant("before", extract(args.before, Path(tmp)), args))
        variants.append(run_variant("after", ROOT, args))
    floor_row = floor()
    print_table(floor_row, variants)
    print(json.dumps({"benchmark": "worker_memory", "config": args.config, "workers": args.workers,
                      "candidates": args.candidates, "before": args.before, "torch_floor": floor_row,
                      "variants": variants, "machine": machine()}))  # fmt: skip


if __name__ == "__main__":
    main()
