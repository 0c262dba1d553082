"""The driver behind `nas search` and `nas resume`: the loop of DESIGN.md section 1, and nothing else.

ask -> answer repeats from the log (the cache) -> evaluate the misses -> append each result to the log the
moment it arrives -> tell the strategy in ask order -> checkpoint -> log scalars. Results are told in ask
order and the strategy's RNG lives in its state, so the same seed and fitness values give the same trajectory
whatever the number of workers or the order in which they finish. A checkpoint is written after every tell
(and one before the first ask), so after a crash the restored strategy re-asks the same batch and the log
answers what already finished. Strategies never ask a genome they were told (their state records them), so
the cache answers only such re-asked batches; each step logs how many repeats the strategy avoided.

Budget: `search.budget.evaluations` counts distinct genomes trained in the run (lines of the log; repeats
are free), `search.budget.hours` the summed wall time of all sessions (checked between batches).
`--max-evaluations N` stops after N new evaluations of this invocation; a batch cut short by either is not
told, so the checkpoint stays at the batch's start and `nas resume` continues it exactly.

A write the disk refuses (full, read-only) stops the command with one line (exit 2, a `DiskWriteError`) that
names the file and says what is safe: every result that arrived before is in the log (each append is fsynced
before anything else happens) and `checkpoint.json` still holds the last step (see `nas.run.checkpoint`), so
`nas resume` continues exactly once the disk is back. A run stopped before its first checkpoint (killed or out
of disk at start-up, so no log either) has told its strategy nothing: `nas resume` starts it from its config.
"""

import argparse
import dataclasses
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.atomicfile import DiskWriteError
from nas.config import Config, load_config
from nas.errors import UserError
from nas.evaluate.evaluator import Evaluator, LocalEvaluator
from nas.evaluate.objective import Objective, build_objective
from nas.evaluate.result import Result
from nas.genome import shortcuts
from nas.genome.architecture import FIXED_KEYS, Architecture, check_input_size, save_architecture
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace, load_space
from nas.run.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from nas.run.monitor import Monitor
from nas.run.rundir import RunDir, create_run_dir, default_run_dir, open_run_dir
from nas.run.runlock import run_lock
from nas.run.runlog import EvaluationLog, rank_key, ranked
from nas.run.signals import Interrupted, SignalGuard
from nas.strategies.strategy import Strategy, build_strategy
from nas.yamlfile import load_yaml_mapping

log = logging.getLogger(__name__)


@dataclass
class Session:
    """Everything one invocation of the driver works with."""

    run: RunDir
    config: Config
    space: SearchSpace
    strategy: Strategy
    objective: Objective
    step: int = 0
    elapsed_seconds: float = 0.0
    config_sha256: str = ""
    stalled_steps: int = 0


def load_search_space(config: Config) -> SearchSpace:
    """The config's search space; any fault of that file is reported under the config key that names it."""
    if config.encoding is None:
        raise UserError("is required for a search (a file under encodings/)", key="encoding")
    try:
        return load_space(config.encoding)
    except UserError as exc:
        raise UserError(str(exc), key="encoding") from None


def architecture_base(objective: Objective, space: SearchSpace) -> dict[str, Any]:
    """The fixed parts (channels, classes, input size, stem...) every candidate of this run shares."""
    blocks = tuple((lay[0], gro[0]) for lay, gro in zip(space.layers, space.growth_rate, strict=True))
    lr = space.learning_rate[0] if space.learning_rate else None
    probe = space.genome(space.encode(blocks, lr), tuple(shortcuts.all_ones(layers) for layers, _ in blocks))
    arch = objective.architecture(probe).to_dict()
    check_input_size(arch["input_size"], space.num_blocks, "encoding")  # the data's size against the space's depth
    return {k: arch[k] for k in FIXED_KEYS}


def architecture_of(base: dict[str, Any], genome: dict[str, Any], provenance: dict[str, Any]) -> Architecture:
    """A logged genome with the run's fixed parts: the network the log line describes."""
    return Architecture.from_dict({"format": "nas-architecture/1", **base, **genome, "provenance": provenance})


def make_evaluator(objective: Objective, config: Config, workers: int | None, address: str | None) -> Evaluator:
    """`--workers 0`: in-process. Otherwise Ray: an existing cluster at `address`, or an embedded local one."""
    if workers == 0:
        return LocalEvaluator(objective)
    from nas.evaluate.ray_evaluator import RayEvaluator

    ray_config = dataclasses.replace(config.ray, address=address or config.ray.address)
    return RayEvaluator(objective, config.resources, ray_config, workers=workers or config.ray.workers)


def search_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.seed is not None:
        config.seed = args.seed
    space = load_search_space(config)
    strategy = build_strategy(config.search, space, config.seed)
    objective = build_objective(config, space)
    base = architecture_base(objective, space)  # before the run directory: a misfit is bad input, not a run
    run = create_run_dir(Path(args.run_dir) if args.run_dir else default_run_dir(config), config)
    log.info("run directory %s", run.path)
    with run_lock(run.path):
        return begin(Session(run, config, space, strategy, objective, config_sha256=run.config_sha256()), base, args)


def resume_command(args: argparse.Namespace) -> int:
    run = open_run_dir(Path(args.run_dir))
    with run_lock(run.path):  # before reading anything: another driver may be writing it
        return resume_locked(run, args)


def resume_locked(run: RunDir, args: argparse.Namespace) -> int:
    if not has_checkpoint(run.path) and not (run.log.exists() and run.log.stat().st_size):
        return restart(run, args)
    checkpoint = load_checkpoint(run.path)
    if checkpoint.get("config_sha256") != run.config_sha256():
        raise UserError(f"{run.config} changed since the run started; resume refuses it (start a new search)")
    config = run.load_config()
    space = load_search_space(config)
    strategy = build_strategy(config.search, space, config.seed)
    strategy.load_state_dict(checkpoint["strategy"])
    objective = build_objective(config, space)
    session = Session(
        run,
        config,
        space,
        strategy,
        objective,
        step=int(checkpoint["step"]),
        elapsed_seconds=float(checkpoint.get("elapsed_seconds", 0.0)),
        config_sha256=checkpoint["config_sha256"],
        stalled_steps=int(checkpoint.get("stalled_steps", 0)),
    )
    log.info("resuming %s at step %d", run.path, session.step)
    with resumable_on_disk_error(run):
        return drive(session, args.workers, args.ray_address, args.max_evaluations)


def restart(run: RunDir, args: argparse.Namespace) -> int:
    """`nas resume` of a run that stopped before its first checkpoint: start it from its config at step 0.

    Nothing was evaluated or told to the strategy yet (no log either), so this is the search the run began. A
    run with a log but no checkpoint file at all is not this case: `load_checkpoint` refuses it.
    """
    log.warning("%s has no checkpoint (the search stopped before its first one); starting it from its config",
                run.path)  # fmt: skip
    config = run.load_config()
    space = load_search_space(config)
    strategy = build_strategy(config.search, space, config.seed)
    objective = build_objective(config, space)
    session = Session(run, config, space, strategy, objective, config_sha256=run.config_sha256())
    return begin(session, architecture_base(objective, space), args)


def begin(session: Session, base: dict[str, Any], args: argparse.Namespace) -> int:
    """Step 0 of a search whose run directory holds its config (the caller holds the lock): the first
    checkpoint, then the loop."""
    with resumable_on_disk_error(session.run):
        save_state(session, base)
        return drive(session, args.workers, args.ray_address, args.max_evaluations)


@contextmanager
def resumable_on_disk_error(run: RunDir) -> Iterator[None]:
    """A write the disk refused ends the command with one line: which file, why, what is safe, what to do."""
    try:
        yield
    except DiskWriteError as exc:
        hint = ("every finished evaluation is in the log and checkpoint.json holds the last step; once the disk "
                f"is writable again, continue with: nas resume {run.path}")  # fmt: skip
        raise exc.with_hint(hint) from None


def save_state(session: Session, base: dict[str, Any], evaluations: int = 0) -> None:
    save_checkpoint(
        session.run.path,
        {
            "step": session.step,
            "strategy": session.strategy.state_dict(),
            "config_sha256": session.config_sha256,
            "elapsed_seconds": session.elapsed_seconds,
            "stalled_steps": session.stalled_steps,
            "evaluations": evaluations,
            "seed": session.config.seed,
            "architecture_base": base,
        },
    )


class Loop:
    """One invocation's pass over the ask/evaluate/tell cycle, with its budget and its outputs."""

    def __init__(self, session: Session, evaluator: Evaluator, limit: int | None, guard: SignalGuard):
        self.s = session
        self.evaluator = evaluator
        self.guard = guard
        self.base = load_checkpoint(session.run.path)["architecture_base"]
        self.log = EvaluationLog(session.run.log)
        best = ranked(iter(self.log))
        self.best: Result | None = best[0] if best else None
        if self.best is not None and self.best_file_key() != self.best.key:
            self.write_best(self.best)  # the run stopped between a new best's log line and its file
        self.new = 0
        self.limit = limit
        budget = session.config.search.budget.evaluations
        failures = sum(1 for r in self.log if not r.ok)
        self.monitor = Monitor(session.run.tensorboard, budget, len(self.log), failures)
        self.started = time.monotonic()

    def remaining(self) -> int | None:
        """New evaluations still allowed (None: no evaluation-count limit)."""
        caps = []
        budget = self.s.config.search.budget.evaluations
        if budget is not None:
            caps.append(budget - len(self.log))
        if self.limit is not None:
            caps.append(self.limit - self.new)
        return max(min(caps), 0) if caps else None

    def elapsed(self) -> float:
        return self.s.elapsed_seconds + time.monotonic() - self.started

    def finished(self) -> bool:
        budget = self.s.config.search.budget
        if budget.evaluations is not None and len(self.log) >= budget.evaluations:
            return True
        if budget.hours is not None and self.elapsed() >= budget.hours * 3600:
            return True
        stall = self.s.config.search.stall_batches
        return self.s.strategy.done() or (stall is not None and self.s.stalled_steps >= stall)

    def record(self, result: Result) -> None:
        """A new result: into the log first (durably), then the best file and the monitor."""
        with self.guard.critical():
            result.step = self.s.step
            self.log.append(result)
            self.new += 1
            if (
                result.ok
                and result.fitness is not None
                and (self.best is None or rank_key(result) < rank_key(self.best))
            ):
                self.best = result
                self.write_best(result)
        self.monitor.evaluated(result)

    def write_best(self, result: Result) -> None:
        """`best/architecture.yaml` for `result`, with where it came from."""
        provenance = {"run": self.s.run.path.name, "key": result.key, "fitness": result.fitness,
                      "step": result.step, "params": result.params, "flops": result.flops}  # fmt: skip
        save_architecture(architecture_of(self.base, result.genome, provenance), self.s.run.best_architecture)

    def best_file_key(self) -> str | None:
        """The genome key `best/architecture.yaml` names, None when it is missing or unreadable."""
        try:
            provenance = load_yaml_mapping(self.s.run.best_architecture).get("provenance")
        except (UserError, OSError):
            return None
        return provenance.get("key") if isinstance(provenance, dict) else None

    def run_batch(self) -> bool:
        """Ask, evaluate, tell one batch. False when the batch was cut short by a limit (and not told)."""
        genomes = self.s.strategy.ask()
        if not genomes:  # the strategy found nothing new to ask: it is done
            if self.s.strategy.exhausted:
                log.warning("the strategy found no genome it has not evaluated: the search has converged")
            return False
        misses: dict[str, Genome] = {}
        for g in genomes:
            if g.key not in self.log and g.key not in misses:
                misses[g.key] = g
        remaining = self.remaining()
        todo = list(misses.values())[: remaining if remaining is not None else None]
        self.evaluator.evaluate(todo, lambda index, result: self.record(result))
        if any(g.key not in self.log for g in genomes):
            if self.best is not None:  # the batch is not told, but a best it found belongs on the curve
                self.monitor.best(self.s.step, self.best.fitness)  # type: ignore[arg-type]
            return False
        results = [self.log.get(g.key) for g in genomes]
        self.s.strategy.tell(results)  # type: ignore[arg-type]
        self.s.step += 1
        self.s.stalled_steps = 0 if todo else self.s.stalled_steps + 1
        if self.s.stalled_steps == self.s.config.search.stall_batches:
            log.warning(
                "the last %d batches held only genomes already evaluated: the search has converged",
                self.s.stalled_steps,
            )
        self.s.elapsed_seconds = self.elapsed()
        self.started = time.monotonic()
        with self.guard.critical():
            save_state(self.s, self.base, len(self.log))
        repeats = self.s.strategy.repeats
        log.info("step %d: %d asked, %d new, repeats avoided %d, slots left empty %d", self.s.step, len(genomes),
                 len(todo), repeats.avoided, repeats.unfilled)  # fmt: skip
        self.monitor.step(self.s.step, results, self.best.fitness if self.best else None)  # type: ignore[arg-type]
        self.monitor.repeats(self.s.step, repeats.avoided, repeats.unfilled)
        return True

    def run(self) -> None:
        while not self.finished() and self.remaining() != 0:
            if not self.run_batch():
                break

    def close(self) -> None:
        """Close the monitor and the log. A monitor that cannot flush (the disk that stopped the search) is only
        a warning: the scalars are a view, and the error that stopped the search is the one to show."""
        try:
            self.monitor.close()
        except OSError as exc:
            log.warning("could not close the TensorBoard writer: %s", exc)
        self.log.close()


def drive(session: Session, workers: int | None, address: str | None, limit: int | None) -> int:
    """Run the loop until the budget, the limit or a signal; print where everything is."""
    evaluator = make_evaluator(session.objective, session.config, workers, address)
    code = 0
    with SignalGuard() as guard:
        loop = Loop(session, evaluator, limit, guard)
        try:
            loop.run()
        except Interrupted as exc:
            log.warning("interrupted by %s; the log and the last checkpoint are intact: nas resume %s", exc,
                        session.run.path)  # fmt: skip
            code = exc.exit_code
        finally:
            evaluator.close()
            loop.close()
    print_summary(session, loop)
    return code


def print_summary(session: Session, loop: Loop) -> None:
    run = session.run
    state = "finished" if loop.finished() else f"paused (continue with: nas resume {run.path})"
    lines = [f"search {state}: {len(loop.log)} evaluations ({loop.new} new), step {session.step}"]
    if loop.best is not None:
        lines.append(f"best fitness {loop.best.fitness:.4f}  params {loop.best.params}  key {loop.best.key[:12]}")
        lines.append(f"best architecture  {run.best_architecture}")
    lines += [
        f"run directory      {run.path}",
        f"evaluations log    {run.log}",
        f"tensorboard        {run.tensorboard}",
    ]
    print("\n".join(lines), flush=True)
