"""Dispatch overhead: what Ray adds per candidate, against the in-process evaluator, in one run.

N candidates of a fixed synthetic cost (a sleep, so that parallel runs do not compete for the CPU) go through
the in-process `LocalEvaluator` and through `RayEvaluator` on one embedded Ray of 2 CPUs: capped at 1 and 2
workers, uncapped (all submitted at once, Ray queues them: the cluster default), and capped at 2 with a trial
timeout (which adds the start-log call the timeout clock reads). Per row: wall time,
overhead per candidate in ms (wall x slots / N - cost: the time each slot spent on anything but the
candidate) and parallel efficiency (N x cost / (wall x slots)). Target: under 20 ms of overhead per
candidate. Each Ray row is preceded by an untimed warm-up batch, so worker start-up is not counted. Prints a
table and one JSON line with the machine and the date.

    .venv/bin/python benchmarks/dispatch_overhead.py --candidates 60 --cost-ms 50
"""

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from nas.config import RayConfig, ResourcesConfig  # noqa: E402
from nas.evaluate.evaluator import Evaluator, LocalEvaluator  # noqa: E402
from nas.evaluate.job import Job  # noqa: E402
from nas.evaluate.result import Result  # noqa: E402
from nas.genome.genome import BlockGene, Genome  # noqa: E402


@dataclass
class FixedCost:
    """An objective that sleeps `seconds` and scores nothing: pure dispatch cost around it."""

    seconds: float

    def __call__(self, genome: Genome, device: str | None = None) -> Result:
        time.sleep(self.seconds)
        return Result(genome.key, genome.to_dict(), "ok", 0.5)

    def train_rung(
        self, genome: Genome, epochs: int, full_epochs: int, state: bytes | None, device: str | None
    ) -> Result:
        return self(genome, device)

    def architecture(self, genome: Genome):
        raise NotImplementedError


def genomes(n: int, offset: int = 0) -> list[Genome]:
    return [Genome(blocks=(BlockGene(layers=1, growth_rate=offset + i + 1, shortcuts="1"),)) for i in range(n)]


def timed(evaluator: Evaluator, n: int, offset: int) -> float:
    done: list[int] = []
    start = time.perf_counter()
    evaluator.evaluate([Job(g) for g in genomes(n, offset)], lambda index, result: done.append(index))
    wall = time.perf_counter() - start
    assert len(done) == n, f"{len(done)} of {n} results"
    return wall


def row(name: str, slots: int, n: int, cost: float, wall: float) -> dict:
    return {
        "evaluator": name,
        "slots": slots,
        "candidates": n,
        "wall_s": round(wall, 3),
        "overhead_ms": round((wall * slots / n - cost) * 1000, 2),
        "efficiency": round(n * cost / (wall * slots), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=60)
    parser.add_argument("--cost-ms", type=float, default=50.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    n, cost = args.candidates, args.cost_ms / 1000
    objective = FixedCost(cost)

    rows = [row("in-process", 1, n, cost, timed(LocalEvaluator(objective), n, 0))]
    from nas.evaluate.ray_cluster import connect
    from nas.evaluate.ray_evaluator import RayEvaluator

    connection = connect(RayConfig(), ResourcesConfig(), workers=2)
    try:
        # (name, workers cap, slots the candidates can use, timeout): uncapped, Ray queues by the 2 CPUs.
        variants = [("ray", 1, 1, None), ("ray", 2, 2, None), ("ray, uncapped", None, 2, None),
                    ("ray + timeout", 2, 2, 3600.0)]  # fmt: skip
        for offset, (name, cap, slots, timeout) in enumerate(variants, start=1):
            resources = ResourcesConfig(trial_timeout_s=timeout)
            evaluator = RayEvaluator(objective, resources, RayConfig(), workers=cap)
            timed(evaluator, 2 * slots, offset * 10_000)  # warm-up: worker processes started, objective fetched
            rows.append(row(name, slots, n, cost, timed(evaluator, n, offset * 10_000 + 100)))
            evaluator.close()
    finally:
        connection.close()

    print(f"{'evaluator':<14} {'slots':>5} {'candidates':>10} {'wall s':>8} {'overhead ms':>12} {'efficiency':>10}")
    for r in rows:
        print(f"{r['evaluator']:<14} {r['slots']:>5} {r['candidates']:>10} {r['wall_s']:>8.2f} "
              f"{r['overhead_ms']:>12.2f} {r['efficiency']:>10.3f}")  # fmt: skip
    print(json.dumps({"benchmark": "dispatch_overhead", "cost_ms": args.cost_ms, "rows": rows, "machine": machine()}))


if __name__ == "__main__":
    main()
