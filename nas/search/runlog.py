"""`evaluations.jsonl`: the append-only log of every finished evaluation, which is also the search's cache.

Each result is one JSON line, written, flushed and fsynced the moment it arrives, before anything else happens,
so a crash at any instant loses at most the trainings still in flight. On open, the file is read once into a
key -> `Result` index (O(1) lookups and appends afterwards: nothing costs O(n) per candidate). A torn last line
(a crash mid-write) is skipped with a warning and cut off before the next append, so the file stays valid
JSON Lines; a malformed line anywhere else is corruption and an error.
"""

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from nas.errors import UserError
from nas.evaluate.result import Result

log = logging.getLogger(__name__)


class EvaluationLog:
    """The run's `evaluations.jsonl`, with an in-memory index by genome key."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.results: dict[str, Result] = {}
        self.order: list[str] = []
        if self.path.exists():
            self._load()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (kept open for appends)

    def _load(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        for number, raw in enumerate(complete, start=1):
            if not raw.strip():
                continue
            try:
                self._index(Result.from_dict(json.loads(raw)))
            except (ValueError, TypeError) as exc:
                if number == len(complete) and not tail:
                    self._drop_torn_tail(len(data) - len(raw) - 1, number)
                    return
                raise UserError(f"{self.path}: line {number} is not a valid result ({type(exc).__name__})") from None
        if tail.strip():
            self._drop_torn_tail(len(data) - len(tail), len(complete) + 1)

    def _drop_torn_tail(self, offset: int, number: int) -> None:
        """Cut a torn last line off the file (it was never a finished evaluation) and say so."""
        log.warning("%s: line %d is incomplete (a crash mid-write); ignoring it", self.path, number)
        with open(self.path, "r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())

    def _index(self, result: Result) -> None:
        if result.key not in self.results:
            self.order.append(result.key)
        self.results[result.key] = result

    def append(self, result: Result) -> None:
        """Write one result durably (flush + fsync), then index it."""
        self._file.write(result.to_json() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._index(result)

    def get(self, key: str) -> Result | None:
        return self.results.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.results

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[Result]:
        return (self.results[k] for k in self.order)

    def close(self) -> None:
        self._file.close()


def read_results(path: str | Path) -> list[Result]:
    """All results of a log, in log order, without opening it for writing (for export and report)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"no evaluations.jsonl in {p.parent}: not a run directory, or nothing finished yet")
    results = []
    lines = p.read_bytes().split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            results.append(Result.from_dict(json.loads(raw)))
        except (ValueError, TypeError):
            if number >= len(lines) - 1:
                log.warning("%s: line %d is incomplete; ignoring it", p, number)
                continue
            raise UserError(f"{p}: line {number} is not a valid result") from None
    return results


def rank_key(result: Result) -> tuple[float, int, str]:
    """Sort key for "best first": higher fitness, then fewer parameters, then genome key (a total order)."""
    return (-(result.fitness or 0.0), result.params if result.params is not None else 1 << 62, result.key)


def ranked(results: list[Result] | Iterator[Result]) -> list[Result]:
    """The `ok` results, best first, in an order that does not depend on completion order."""
    return sorted((r for r in results if r.ok and r.fitness is not None), key=rank_key)
