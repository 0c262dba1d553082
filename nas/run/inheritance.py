"""`search.inherit`: weight inheritance (Prellberg and Kramer 2018; LEMONADE's network morphisms). A new candidate
starts from the trained weights of its nearest evaluated relative and trains `search.inherit.epochs` epochs, a
complete learning-rate schedule of its own, instead of the whole `fitness.epochs`.

Files. Every ok whole evaluation returns its trained weights (`Result.weights`, `nas.evaluate.weightsfile`: a
sealed safetensors blob that names its genome key and carries a sha256 of tensors and header). The driver checks
each blob (intact, of that key, of bounded size) and writes it atomically to `RUN_DIR/weights/<key>.safetensors`
before the result's log line (`WeightStore.save`), so every ok line of such a run has its weights on disk unless
the write was refused. The driver reads the header and the digest alone, never a tensor. By default the files
are kept for the whole run, since any evaluated candidate may be the nearest relative of a later one (a few MB a
candidate; the synthetic objective's stand-in is a few hundred bytes); `keep` bounds them (below).

The parent (`Relatives.parents`), chosen by the driver when it makes a candidate's job: among the ok results of
the log (the results told to the strategy before the job's batch, in `sync`; every result logged so far, in
`async`), the genomes at the smallest `nas.genome.relatedness.distance` from the candidate, ties by key, none
at distance 0 (the same blocks under another learning rate: a fine-tuned copy would be compared with fresh
trainings, which misleads a search over the learning rate) and none beyond `max_distance` (a remote relative
gives little that a fresh start would not). The first of them whose weights file is intact is the parent;
a missing or damaged file is one warning line and that relative is skipped (for the rest of the invocation), so
a candidate whose relatives all lost their files trains from scratch. Never fatal.

Pruning (`search.inherit.keep: N`). Only the N best of those results (ranked as the search ranks them:
fitness, then params, then key) are parents, and when a batch's jobs are made (each job, in `async`) the
weights files of the others are deleted. A result outside the N best of a set of results stays outside them as
results are added, so no deleted file is ever wanted again; and a sync batch resumed after a kill reads the
same N best (those logged before its step) with their files intact, so it chooses the parents of the
uninterrupted run.

Why these choices. The distance is the one the transplant respects (links and growth rates matched by index), so
the nearest relative is the one whose weights cover most of the child. Sync batches read only the results of
earlier steps: the members of a batch are all made at its start, and a batch that a kill or `--max-evaluations`
cut is resumed with some of its members already logged (at the batch's own step), which must not change the
parents of the rest; the choice then depends only on the log and the files, so a killed and resumed sync run
chooses the same parents. In `async` a resumed run re-submits the genomes a crash lost after its replay, when
more results may be logged than when the lost job was made, so its parent may be a nearer relative found since
(the same holds for any async run, whose arrival order is not fixed): what each line inherited is in its log
line either way.

The job carries the parent's genome, its weight bytes, the distance and the epochs (`nas.evaluate.job.Parent`):
a worker never needs the driver's disk. What the objective did with them is in the result's metrics:
`inherited_from`, `distance`, `inheritance` (the transplant's counts, `train` only) and `epochs`, the epochs
trained, on every result of a search with `search.inherit`, so that compute is summed from the log. An inheriting
candidate is one evaluation of the budget like any other.
"""

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from nas.atomicfile import atomic_write_bytes, remove_staged
from nas.config import InheritConfig
from nas.evaluate.parent import Parent
from nas.evaluate.result import Result
from nas.evaluate.weightsfile import check
from nas.genome.genome import Genome
from nas.genome.relatedness import distance
from nas.run.rungs import MAX_STATE_BYTES, BadState, RungStore
from nas.run.runlog import EvaluationLog, ranked

log = logging.getLogger(__name__)

FOLDER = "weights"
SUFFIX = ".safetensors"


class WeightStore(RungStore):
    """`RUN_DIR/weights/`: one sealed weights file per evaluated candidate. It reads a file as the rung store
    does (a regular file inside the run's own folder, never a link or a FIFO, of bounded size; `RungStore.read`),
    and checks it with `nas.evaluate.weightsfile.check` (digest, key)."""

    def __init__(self, run_path: Path, max_bytes: int = MAX_STATE_BYTES):
        super().__init__(run_path, max_bytes)
        self.path = run_path / FOLDER

    def weights_file(self, key: str) -> Path:
        return self.path / f"{key}{SUFFIX}"

    def remove_staged(self) -> None:
        """The staged files of a write that a kill interrupted go (call it before the first write)."""
        removed = remove_staged(self.path, lambda target: target.endswith(SUFFIX))
        if removed:
            log.info("removed %d staged weights file(s) a killed run left in %s", len(removed), self.path)

    def save_weights(self, result: Result) -> None:
        """Write `result`'s weights, checked, atomically; a blob that fails its check, names another genome or
        is too large is not kept (a warning): no later candidate inherits from it. `DiskWriteError` when the
        disk refuses."""
        blob = result.weights
        if blob is None or not result.ok:
            return
        try:
            meta = check(blob)
            if meta["key"] != result.key:
                raise ValueError(f"they name candidate {str(meta['key'])[:12]}")
            if len(blob) > self.max_bytes:
                raise ValueError(f"{len(blob)} bytes, over the {self.max_bytes} a weights file may have")
        except ValueError as exc:
            log.warning("the weights of %s are not kept for inheritance: %s", result.key[:12], exc)
            return
        path = self.weights_file(result.key)
        if self.folder_at(path):
            log.warning("weights file %s %s", path, self.set_aside(path))
        atomic_write_bytes(path, blob)

    def load_weights(self, key: str) -> bytes | None:
        """The checked weights of `key`; None, with one warning line, when missing or unusable."""
        path = self.weights_file(key)
        try:
            blob = self.read(path)
            meta = check(blob)
            if meta["key"] != key:
                raise BadState(f"holds the weights of another candidate ({str(meta['key'])[:12]})")
        except ValueError as exc:
            log.warning("weights file %s is not usable (%s); it is no parent", path, exc)
            return None
        except BadState as exc:
            log.warning("weights file %s %s; it is no parent", path, exc)
            return None
        return blob


class Relatives:
    """The parents of new candidates, chosen from the run's log and weights files (module docstring)."""

    def __init__(self, run_path: Path, config: InheritConfig, log_: EvaluationLog):
        self.config = config
        self.log = log_
        self.store = WeightStore(run_path)
        self.genomes: dict[str, Genome] = {}  # key -> genome, parsed once
        self.unusable: set[str] = set()  # relatives whose file was missing or bad: one warning each, then skipped
        self.pruned: set[str] = set()  # results whose file `prune` has dealt with: never a parent again

    def keep(self, results: Iterable[Result]) -> None:
        """The weights of arrived results to disk, before their log lines."""
        for result in results:
            self.store.save_weights(result)

    def genome(self, result: Result) -> Genome:
        known = self.genomes.get(result.key)
        if known is None:
            known = self.genomes[result.key] = Genome.from_dict(result.genome)
        return known

    def parents(self, genomes: Sequence[Genome], before_step: int | None) -> list[Parent | None]:
        """The parent of each of a batch's genomes (`parent_of`), the files outside the `keep` best pruned
        first. `before_step`: only results logged at an earlier step (sync batches); None: every result."""
        logged = [
            r for r in self.log if r.ok and (before_step is None or (r.step is not None and r.step < before_step))
        ]
        pool = logged if self.config.keep is None else ranked(logged)[: self.config.keep]
        if self.config.keep is not None:
            self.prune(logged, {r.key for r in pool})
        return [self.parent_of(g, pool) for g in genomes]

    def prune(self, logged: list[Result], kept: set[str]) -> None:
        """Delete the weights files of the `logged` results that are not `kept` (module docstring)."""
        gone = 0
        for result in logged:
            if result.key in kept or result.key in self.pruned:
                continue
            self.pruned.add(result.key)
            path = self.store.weights_file(result.key)
            if path.is_file() and not path.is_symlink():
                path.unlink()
                gone += 1
        if gone:
            log.info("deleted the weights of %d candidate(s) outside the %d best", gone, self.config.keep)

    def nearest(self, genome: Genome, pool: list[Result]) -> list[tuple[float, str]]:
        """(distance, key) of every relative of `genome` in `pool`, nearest first, ties by key."""
        found = []
        for result in pool:
            if result.key == genome.key:
                continue
            d = distance(genome, self.genome(result))
            if 0 < d <= self.config.max_distance and math.isfinite(d):
                found.append((d, result.key))
        return sorted(found)

    def parent_of(self, genome: Genome, pool: list[Result]) -> Parent | None:
        """The nearest relative in `pool` with intact weights, as the job's `Parent`; None: train from scratch."""
        for d, key in self.nearest(genome, pool):
            if key in self.unusable:
                continue
            blob = self.store.load_weights(key)
            if blob is not None:
                return Parent(self.genomes[key], blob, self.config.epochs, d)
            self.unusable.add(key)
        return None
