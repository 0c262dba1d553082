"""`RUN_DIR/pareto.json`: the front of a multi-objective search, rewritten whole (atomically) as results arrive.

With several objectives (`search.objectives`) a run has no single best: the answer is every candidate no other
beats in all objectives. The file holds them, one per genome (its highest rung under `search.fidelity`, as
`runlog.per_candidate` keeps), fittest first, each with its objective values, and the front's normalised
hypervolume when the largest costs are given (`pareto.normalised_hypervolume`: the measure the figures use).
Failed and infeasible candidates (`nas.evaluate.constraints`) are never on it. A search with one objective
writes no file. Plain JSON, so `nas report` and users' scripts read it without the package.
"""

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nas.atomicfile import atomic_write_text
from nas.evaluate.result import Result
from nas.run.runlog import per_candidate, rank_key
from nas.strategies import pareto

FORMAT = "nas-pareto/1"
NAME = "pareto.json"


def front_of(results: Iterable[Result], objectives: Sequence[str]) -> list[Result]:
    """The non-dominated candidates of `results`, fittest first (the ranking rule breaks ties)."""
    candidates = [r for r in per_candidate(results) if r.ok]
    vectors = [pareto.objective_vector(r, objectives) for r in candidates]
    front = [candidates[i] for i in pareto.pareto_front(vectors) if math.isfinite(vectors[i][0])]  # a cost lacking
    return sorted(front, key=rank_key)


def pareto_document(results: Iterable[Result], objectives: Sequence[str],
                    largest: Sequence[float] | None = None) -> dict[str, Any]:  # fmt: skip
    """What `pareto.json` holds: the objectives, the front (key, genome, objective values) and, with `largest`
    (one positive number per cost), its normalised hypervolume."""
    front = front_of(results, objectives)
    members = []
    for r in front:
        values = {n: r.fitness if n == pareto.FITNESS else pareto.cost_of(r, n) for n in objectives}
        members.append({"key": r.key, "genome": r.genome, "step": r.step, **values})
    document: dict[str, Any] = {"format": FORMAT, "objectives": list(objectives), "front": members}
    if largest is not None:
        vectors = [pareto.objective_vector(r, objectives) for r in front]
        document["hypervolume"] = pareto.normalised_hypervolume(vectors, largest)
    return document


def write_pareto(
    run_dir: str | Path,
    results: Iterable[Result],
    objectives: Sequence[str],
    largest: Sequence[float] | None = None,
    written: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Replace `RUN_DIR/pareto.json` with the front of `results` and return what it holds; nothing (None) for a
    single objective. `written`, the document this process last wrote, spares the write (and its fsync) when the
    front is unchanged, which is most arrivals once a search has found its front."""
    if len(objectives) < 2:
        return None
    document = pareto_document(results, objectives, largest)
    if document == written:
        return document
    atomic_write_text(Path(run_dir) / NAME, json.dumps(document, indent=1, allow_nan=False) + "\n")
    return document


def read_front(run_dir: str | Path) -> list[dict[str, Any]]:
    """The members of `RUN_DIR/pareto.json`, fittest first; empty when there is none (one objective, or nothing
    finished yet)."""
    path = Path(run_dir) / NAME
    if not path.is_file():
        return []
    document = json.loads(path.read_text(encoding="utf-8"))
    return list(document.get("front", [])) if isinstance(document, dict) else []
