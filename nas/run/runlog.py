"""`evaluations.jsonl`: the append-only log of every finished evaluation, which is also the search's cache.

Each result is one JSON line, written, flushed and fsynced the moment it arrives, before anything else happens,
so a crash at any instant loses at most the trainings still in flight. On open, the file is read once into a
key -> `Result` index (O(1) lookups and appends afterwards: nothing costs O(n) per candidate). A torn last line
(a crash mid-write) is skipped with a warning and cut off before the next append, so the file stays valid
JSON Lines; a malformed line anywhere else is corruption and an error (exit 2, naming the file and the line):
resume never drops a finished evaluation silently. A line is a result only if it is a JSON object with the
contract's fields of the right types (`result_of`): valid JSON that is not a result (`[]`, `{}`, a wrong
status, a string for a number) is as malformed as garbage, not a result with holes in it.

A write the operating system refuses (disk full, read-only) is a `DiskWriteError` naming the file. An append
that failed may have left part of its line in the file: the log then refuses every further append, so that no
complete line is ever written after a torn one (which would turn the torn tail into a corrupt middle line).
"""

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from nas.atomicfile import DiskWriteError, writing
from nas.errors import UserError
from nas.evaluate.result import Result
from nas.strategies.ranking import fitness_of, order

log = logging.getLogger(__name__)


class EvaluationLog:
    """The run's `evaluations.jsonl`, with an in-memory index by genome key."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.results: dict[str, Result] = {}
        self.order: list[str] = []
        self._failed: DiskWriteError | None = None
        if self.path.exists():
            self._load()
        with writing(self.path):
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (kept open for appends)

    def _load(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        for number, raw in enumerate(complete, start=1):
            if not raw.strip():
                continue
            try:
                self._index(result_of(raw))
            except ValueError as exc:
                if number == len(complete) and not tail:
                    self._drop_torn_tail(len(data) - len(raw) - 1, number)
                    return
                raise UserError(
                    f"{self.path}: line {number} is not a valid result ({why(exc)}); resume will not drop a "
                    "finished evaluation: repair or delete that line, or start a new search"
                ) from None
        if tail.strip():
            self._drop_torn_tail(len(data) - len(tail), len(complete) + 1)

    def _drop_torn_tail(self, offset: int, number: int) -> None:
        """Cut a torn last line off the file (it was never a finished evaluation) and say so."""
        log.warning("%s: line %d is incomplete or garbled (a crash mid-write); ignoring it", self.path, number)
        with writing(self.path), open(self.path, "r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())

    def _index(self, result: Result) -> None:
        if result.key not in self.results:
            self.order.append(result.key)
        self.results[result.key] = result

    def append(self, result: Result) -> None:
        """Write one result durably (flush + fsync), then index it."""
        if self._failed is not None:
            raise self._failed
        try:
            with writing(self.path):
                self._file.write(result.to_json() + "\n")
                self._file.flush()
                os.fsync(self._file.fileno())
        except DiskWriteError as exc:
            self._failed = exc
            raise
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
        """Close the file. After a failed append, failing again to flush the rest of its line is not news."""
        with writing(self.path):
            try:
                self._file.close()
            except OSError:
                if self._failed is None:
                    raise


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
            results.append(result_of(raw))
        except ValueError:
            if number >= len(lines) - 1:
                log.warning("%s: line %d is incomplete; ignoring it", p, number)
                continue
            raise UserError(f"{p}: line {number} is not a valid result") from None
    return results


STATUSES = ("ok", "failed", "timeout")
# field: (the types it may hold, whether it may be null); bool is excluded from the numbers below by hand
FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "key": ((str,), False),
    "genome": ((dict,), False),
    "status": ((str,), False),
    "fitness": ((int, float), True),
    "params": ((int,), True),
    "flops": ((int,), True),
    "seconds": ((int, float), False),
    "attempts": ((int,), False),
    "worker": ((str,), True),
    "error": ((str,), True),
    "step": ((int,), True),
    "metrics": ((dict,), False),
}
REQUIRED = ("key", "genome", "status", "fitness")


def result_of(raw: bytes) -> Result:
    """One log line as a `Result`; a `ValueError` saying why when it is not one (not only when not JSON)."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    missing = [name for name in REQUIRED if name not in data]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    for name, (types, nullable) in FIELDS.items():
        value = data.get(name)
        if name not in data or (value is None and nullable):
            continue
        if not isinstance(value, types) or isinstance(value, bool):
            raise ValueError(f"{name} is {type(value).__name__}")
    if data["status"] not in STATUSES:
        raise ValueError(f"status {data['status']!r}")
    if data["status"] == "ok" and data["fitness"] is None:
        raise ValueError("an ok result without fitness")
    return Result.from_dict(data)


def why(exc: ValueError) -> str:
    """What is wrong with a line, for the error message (JSON's own message speaks of "line 1", confusingly)."""
    return "not JSON" if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError) else str(exc)


def rank_key(result: Result) -> tuple[float, int, str]:
    """Sort key for "best first": the project's one ranking rule (`nas.strategies.ranking.order`: higher
    fitness, then fewer parameters, then genome key), the same the strategies and the swarm use."""
    return order(fitness_of(result), result.params, result.key)


def ranked(results: list[Result] | Iterator[Result]) -> list[Result]:
    """The `ok` results, best first, in an order that does not depend on completion order."""
    return sorted((r for r in results if r.ok and r.fitness is not None), key=rank_key)
