"""`evaluations.jsonl`: the append-only log of every finished evaluation, which is also the search's cache.

Each result is one JSON line, written, flushed and fsynced the moment it arrives, before anything else happens,
so a crash at any instant loses at most the trainings still in flight. On open, the file is read once into a
key -> `Result` index (O(1) lookups and appends afterwards: nothing costs O(n) per candidate). A torn last line
(a crash mid-write) is skipped with a warning and cut off before the next append, so the file stays valid
JSON Lines; a malformed line anywhere else is corruption and an error (exit 2, naming the file and the line):
resume never drops a finished evaluation silently. A line is a result only if it is a JSON object with the
contract's fields of the right types (`result_of`): valid JSON that is not a result (`[]`, `{}`, a wrong
status, a string for a number) is as malformed as garbage, not a result with holes in it. Opened by a run, the log
also holds each line to what an evaluation of that run's config can write (`line_rules`): `epochs` absent without
`search.fidelity` and one of its rungs with it, `attempts` within the retries the config allows. A line a
crafted or foreign log slipped past those (a 1-epoch candidate logged as `epochs: 999` would rank first) is
refused like any other bad line.

An `oom` line (the transient status, see `nas.evaluate.result`) is kept and readable, but `key in log` is
False for it: the cache does not answer that genome, and resume trains it again; a later line of the same key
replaces it. `len(log)` counts the finished evaluations (distinct keys whose latest line is not `oom`): the
budget counts those, and the checkpoint records that number.

A write the operating system refuses (disk full, read-only) is a `DiskWriteError` naming the file. An append
that failed may have left part of its line in the file: the log then refuses every further append, so that no
complete line is ever written after a torn one (which would turn the torn tail into a corrupt middle line).
"""

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.atomicfile import DiskWriteError, writing
from nas.config import Config
from nas.errors import UserError, shown
from nas.evaluate.result import Result
from nas.genome.genome import Genome
from nas.run.fidelity import rung_epochs
from nas.strategies.ranking import fitness_of, order

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LineRules:
    """What an evaluation of one run's config can write, beyond what every line obeys (`result_of`): the values
    its `epochs` field may take (None: the field is absent) and the most `attempts` a candidate is given."""

    epochs: frozenset[int | None]
    attempts: int


def line_rules(config: Config) -> LineRules:
    """The `LineRules` of a run of `config`. Without `search.fidelity` no line carries `epochs` (every candidate
    trains the whole `fitness.epochs`); with it every line is one rung, the top one being `fitness.epochs`. The
    Ray evaluator retries a lost worker `resources.max_retries` times, and an out-of-memory while packed once
    more on a whole card; the in-process evaluator makes one attempt."""
    fidelity = config.search.fidelity
    epochs: frozenset[int | None] = frozenset([None])
    if fidelity is not None:
        epochs = frozenset(rung_epochs(fidelity.min_epochs, fidelity.eta, config.fitness.epochs))
    return LineRules(epochs, config.resources.max_retries + 2)


class EvaluationLog:
    """The run's `evaluations.jsonl`, with an in-memory index by genome key; `rules` (`line_rules` of the run's
    config) holds every line read to what this run can write."""

    def __init__(self, path: str | Path, rules: LineRules | None = None):
        self.path = Path(path)
        self.rules = rules
        self.results: dict[str, Result] = {}
        self.rungs: dict[tuple[str, int | None], Result] = {}
        self.order: list[str] = []
        self.lines: list[Result] = []  # every line, in file order (ASHA's decisions are replayed from it)
        self.finished = 0
        self._failed: DiskWriteError | None = None
        if self.path.exists():
            self._load()
        with writing(self.path):
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (kept open for appends)

    def _load(self) -> None:
        data = read_log_bytes(self.path)
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        for number, raw in enumerate(complete, start=1):
            if not raw.strip():
                continue
            try:
                self._index(result_of(raw, self.rules))
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
        self.lines.append(result)
        previous = self.results.get(result.key)
        if previous is None:
            self.order.append(result.key)
        if supersedes(result, previous):
            self.finished += (not result.transient) - (previous is not None and not previous.transient)
            self.results[result.key] = result
        self.rungs[(result.key, result.epochs)] = result

    def append(self, *results: Result) -> None:
        """Write results durably (flush + fsync), then index them. Several results that arrived together go in
        one write and one fsync: each is in the file before anything else happens to it, at one disk flush for
        the lot instead of one a line."""
        if self._failed is not None:
            raise self._failed
        try:
            with writing(self.path):
                self._file.write("".join(r.to_json() + "\n" for r in results))
                self._file.flush()
                os.fsync(self._file.fileno())
        except DiskWriteError as exc:
            self._failed = exc
            raise
        for result in results:
            self._index(result)

    def get(self, key: str) -> Result | None:
        return self.results.get(key)

    def at(self, key: str, epochs: int | None) -> Result | None:
        """The result of `key` at rung `epochs` (`search.fidelity`); None when it did not reach it (an `oom` at that
        rung did not reach it either: it is trained again)."""
        result = self.rungs.get((key, epochs))
        return None if result is None or result.transient else result

    def __contains__(self, key: str) -> bool:
        """Whether the log answers `key` (a finished evaluation; an `oom` line is not one)."""
        result = self.results.get(key)
        return result is not None and not result.transient

    def __len__(self) -> int:
        """Finished evaluations (an `oom` genome is not one until a later line finishes it)."""
        return self.finished

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


def check_log_complete(path: Path, known: int) -> None:
    """Refuse a log that holds fewer results than the checkpoint counted when it was written (`known`).

    The log only ever grows, so fewer lines mean it was cut short, replaced or deleted: the missing results
    would be lost for good (the strategy was told them, resume would never re-ask them) and the run would
    silently differ from the one that was checkpointed.
    """
    present = finished_count(read_results(path)) if path.exists() else 0
    if present < known:
        where = f"{path} holds {present} results" if path.exists() else f"{path} is missing: it holds 0 results"
        raise UserError(f"{where} but the checkpoint counted {known}: the log was cut short or replaced; resume "
                        "refuses to lose finished evaluations (restore the log, or start a new search)")  # fmt: skip


def read_log_bytes(path: Path) -> bytes:
    """The log's bytes; one that cannot be read (a folder in its place, no permission) is a `UserError`."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the evaluations log ({exc.strerror or type(exc).__name__})") from None


def finished_count(results: list[Result]) -> int:
    """Distinct keys whose latest line is a finished evaluation: what `len(EvaluationLog)` counts."""
    latest = {r.key: r for r in results}
    return sum(1 for r in latest.values() if not r.transient)


def read_results(path: str | Path, rules: LineRules | None = None) -> list[Result]:
    """All results of a log, in log order, without opening it for writing (for export and report); `rules` as
    `EvaluationLog` takes them."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"no evaluations.jsonl in {p.parent}: not a run directory, or nothing finished yet")
    results = []
    lines = read_log_bytes(p).split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            results.append(result_of(raw, rules))
        except ValueError as exc:
            if number >= len(lines) - 1:
                log.warning("%s: line %d is incomplete; ignoring it", p, number)
                continue
            raise UserError(f"{p}: line {number} is not a valid result ({why(exc)})") from None
    return results


STATUSES = ("ok", "failed", "timeout", "oom")
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
    "epochs": ((int,), True),
}
REQUIRED = ("key", "genome", "status", "fitness")


def result_of(raw: bytes, rules: LineRules | None = None) -> Result:
    """One log line as a `Result`; a `ValueError` saying why when it is not one (not only when not JSON), or when
    it is not one an evaluation under `rules` writes."""
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
        raise ValueError(f"status {shown(data['status'])}")
    if data["status"] == "ok" and data["fitness"] is None:
        raise ValueError("an ok result without fitness")
    if data["status"] != "ok" and data["fitness"] is not None:
        raise ValueError(f"a {data['status']} result with a fitness")
    if data["status"] in ("ok", "timeout") and data.get("error") is not None:
        raise ValueError(f"a {data['status']} result with an error")
    check_values(data)
    if rules is not None:
        check_rules(data, rules)
    check_genome(data)
    return Result.from_dict(data)


# field: (lowest, highest) a value may take; NaN and infinities never
RANGES: dict[str, tuple[float, float]] = {
    "fitness": (0.0, 1.0),
    "params": (0, math.inf),
    "flops": (0, math.inf),
    "seconds": (0.0, math.inf),
    "attempts": (1, math.inf),
    "step": (0, math.inf),
    "epochs": (1, math.inf),
}


def check_values(data: dict[str, Any]) -> None:
    """Numbers no evaluation can produce (fitness NaN, 5.0 or -inf, negative params, `attempts: 0`) are a bad
    line: ranked first or summed, they would poison export, report and the strategy."""
    for name, (low, high) in RANGES.items():
        value = data.get(name)
        if value is None:
            continue
        if not math.isfinite(value):
            raise ValueError(f"{name} is {value}")
        if not low <= value <= high:
            raise ValueError(f"{name} {shown(value)} is outside [{low:g}, {high:g}]")


def check_rules(data: dict[str, Any], rules: LineRules) -> None:
    """A line this run cannot have written: `epochs` that is not one of its rungs (or any, without
    `search.fidelity`), more attempts than its retries allow."""
    epochs = data.get("epochs")
    if epochs not in rules.epochs:
        rungs = sorted(e for e in rules.epochs if e is not None)
        if not rungs:
            raise ValueError(f"epochs {shown(epochs)} in a run without search.fidelity, which logs no epochs")
        allowed = ", ".join(map(str, rungs))
        if epochs is None:
            raise ValueError(f"no epochs in a run with search.fidelity, whose every line is a rung ({allowed})")
        raise ValueError(f"epochs {shown(epochs)} is not a rung of this run ({allowed})")
    attempts = data.get("attempts", 1)
    if attempts > rules.attempts:
        raise ValueError(f"attempts {attempts} is more than this run gives a candidate ({rules.attempts})")


def check_genome(data: dict[str, Any]) -> None:
    """The genome must be a valid one, and the key its sha256: a line whose key names another genome would
    answer the cache for the wrong network."""
    try:
        genome = Genome.from_dict(data["genome"])
    except UserError as exc:
        raise ValueError(str(exc)) from None
    if genome.key != data["key"]:
        raise ValueError(f"key {shown(data['key'], 20)} is not its genome's ({genome.key[:12]}...)")


def why(exc: ValueError) -> str:
    """What is wrong with a line, for the error message (JSON's own message speaks of "line 1", confusingly)."""
    return "not JSON" if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError) else str(exc)


def supersedes(result: Result, previous: Result | None) -> bool:
    """Whether a later line of a candidate replaces its earlier one as what the candidate is: under
    `search.fidelity` the highest rung reached (rungs are logged in order), where a failure at a later rung
    does not undo an earlier success."""
    return previous is None or result.ok or not previous.ok


def per_candidate(results: Iterable[Result]) -> list[Result]:
    """One result a candidate, in the order candidates first appear: what `supersedes` keeps (a log without
    `search.fidelity` has a line a candidate already, bar `oom` retries)."""
    kept: dict[str, Result] = {}
    for result in results:
        if supersedes(result, kept.get(result.key)):
            kept[result.key] = result
    return list(kept.values())


def rank_key(result: Result) -> tuple[int, float, int, str]:
    """Sort key for "best first": higher rung first (`search.fidelity`; equal without it: accuracies after fewer
    epochs are not comparable with those after the full budget, so a candidate stopped at a low rung never
    outranks one trained further), then the project's one ranking rule (`nas.strategies.ranking.order`: higher
    fitness, then fewer parameters, then genome key), the same the strategies and the swarm use."""
    return (-(result.epochs or 0), *order(fitness_of(result), result.params, result.key))


def ranked(results: list[Result] | Iterator[Result]) -> list[Result]:
    """The `ok` results, best first, in an order that does not depend on completion order; one per genome (its
    highest rung under `search.fidelity`, whose log has a line per rung reached)."""
    best: dict[str, Result] = {}
    for r in results:
        if r.ok and r.fitness is not None and (r.key not in best or rank_key(r) < rank_key(best[r.key])):
            best[r.key] = r
    return sorted(best.values(), key=rank_key)
