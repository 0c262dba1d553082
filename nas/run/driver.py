"""The driver behind `nas search` and `nas resume`: it sets a session up (new, resumed or restarted) and runs
the search loop of DESIGN.md section 1 (`nas.run.loop.SearchLoop`) with the policy its `search.mode` names
(`nas.run.policies`: sync, a barrier that tells whole batches in ask order; async, each result told at once).

Budget (`nas.run.budget`): `search.budget.evaluations` counts distinct genomes trained in the run (lines of the
log; repeats are free), `search.budget.hours` the summed wall time of all sessions, checked as results arrive:
once it is spent the candidates still in flight are cancelled, so a search stops within one candidate of its
limit. `--max-evaluations N` stops after N new evaluations of this invocation. `nas resume --budget N` raises the
evaluation budget of a run (finished or not) to N: it is recorded in the run directory (`nas.run.rundir`), and
the strategy and the loop of the resumed session are built from the raised config, so the search asks on until
N distinct evaluations.

A write the disk refuses (full, read-only) stops the command with one line (exit 2, a `DiskWriteError`) that
names the file and says what is safe: every result that arrived before is in the log (each append is fsynced
before anything else happens) and `checkpoint.json` still holds the last step (see `nas.run.checkpoint`), so
`nas resume` continues exactly once the disk is back. A run stopped before its first checkpoint (killed or out
of disk at start-up, so no log either) has told its strategy nothing: `nas resume` starts it from its config.

`search.fidelity` (successive halving) is the loop's scheduler (`nas.run.schedulers`): the strategy is told each
candidate at the highest rung it reached; the budget still counts distinct genomes.

`search_command` and `resume_command` take the flags as typed parameters (`nas.cli` passes the parsed ones), so
Python code starts or continues a search directly, without the command line's parser; how an invocation runs its
candidates and when it stops travels through the session's set-up as one `Launch`.
"""

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nas.atomicfile import DiskWriteError
from nas.config import Config, load_config
from nas.errors import UserError
from nas.evaluate.evaluator import Evaluator, LocalEvaluator
from nas.evaluate.objective import Objective, build_objective
from nas.evaluate.runtime_env import check_runtime_env
from nas.genome import shortcuts
from nas.genome.architecture import FIXED_KEYS, OPTIONAL_KEYS, check_input_size
from nas.genome.space import SearchSpace, load_space
from nas.run.checkpoint import has_checkpoint, saved_state
from nas.run.loop import SearchLoop, Session, save_state
from nas.run.policies import AsyncPolicy, SyncPolicy
from nas.run.rundir import (
    RunDir,
    check_inputs,
    check_run_dir_free,
    create_run_dir,
    default_run_dir,
    input_digests,
    open_run_dir,
)
from nas.run.rungs import prepare_folder
from nas.run.runlock import run_lock
from nas.run.runlog import check_log_complete
from nas.run.signals import Interrupted, SignalGuard
from nas.run.state import load_state
from nas.strategies.strategy import build_strategy

log = logging.getLogger(__name__)


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
    # the data's size against the space's depth
    check_input_size(arch["input_size"], space.num_blocks, "encoding", space.stem_stride)
    return {k: arch[k] for k in (*FIXED_KEYS, *OPTIONAL_KEYS) if k in arch}


def check_space_cost(objective: Objective, space: SearchSpace, config: Config) -> None:
    """Refuse, when the search starts, a space whose largest member is over `limits` (it would be refused at
    candidate 400 otherwise). Only a training objective builds networks."""
    if config.fitness.objective != "train":
        return
    from nas.model.analytic_cost import check_cost

    try:
        check_cost(objective.architecture(space.largest_genome()), config.limits, config.fitness.batch_size,
                   "the largest network of this search space")  # fmt: skip
    except UserError as exc:
        raise UserError(f"{exc} (narrow the ranges, or raise the limit)", key="encoding") from None


def uses_ray(config: Config, workers: int | None) -> bool:
    """Whether `make_evaluator` gives a Ray evaluator (its signals are then deferred to safe points)."""
    return (workers if workers is not None else config.ray.workers) != 0


def make_evaluator(objective: Objective, config: Config, workers: int | None, address: str | None) -> Evaluator:
    """`--workers 0` (or `ray.workers: 0` with no `--workers`): in-process. Otherwise Ray: an existing cluster at
    `address`, or an embedded local one. Under `search.fidelity` the loops submit rung jobs (`nas.evaluate.job`)
    to it instead of whole evaluations."""
    if not uses_ray(config, workers):
        return LocalEvaluator(objective)
    from nas.evaluate.ray_evaluator import RayEvaluator

    ray_config = dataclasses.replace(config.ray, address=address or config.ray.address)
    return RayEvaluator(objective, config.resources, ray_config, workers=workers or config.ray.workers)


@dataclasses.dataclass(frozen=True)
class Launch:
    """How one `nas search` or `nas resume` runs its candidates and when it stops: `workers` (0: in-process;
    None: the config's `ray.workers`), `ray_address` (None: the config's `ray.address`, else an embedded local
    cluster) and `max_evaluations` (new evaluations of this invocation; None: the budget alone)."""

    workers: int | None = None
    ray_address: str | None = None
    max_evaluations: int | None = None


def search_command(
    config_path: str | Path,
    *,
    overrides: Sequence[str] | None = None,
    run_dir: str | Path | None = None,
    seed: int | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    max_evaluations: int | None = None,
) -> int:
    """`nas search CONFIG`: a new search into `run_dir` (default runs/<name>-<time>), with `overrides` (`--set
    KEY.PATH=VALUE`) applied to the config and `seed` in place of its seed; returns the exit code (0, or 130/143
    after a signal). The run directory's config.yaml is the config with both applied, so a resume uses them."""
    launch = Launch(workers, ray_address, max_evaluations)
    config = load_config(config_path, overrides)
    check_runtime_env(config.ray.runtime_env)  # bad input of the file, refused whether or not Ray starts
    if seed is not None:
        config.seed = seed  # held to the config's range by the parser (`nas.cli`)
    space = load_search_space(config)
    strategy = build_strategy(config.search, space, config.seed)
    objective = build_objective(config, space)
    base = architecture_base(objective, space)  # before the run directory: a misfit is bad input, not a run
    check_space_cost(objective, space, config)
    path = Path(run_dir) if run_dir else default_run_dir(config)
    check_run_dir_free(path)
    try:
        evaluator = connect_first(objective, config, launch)  # a bad or unreachable Ray address leaves no run behind
    except Interrupted as exc:
        log.warning("interrupted by %s while connecting; nothing was started", exc)
        return exc.exit_code
    try:
        run = create_run_dir(path, config)
    except BaseException:
        evaluator.close()
        raise
    log.info("run directory %s", run.path)
    with run_lock(run.path):
        session = Session(run, config, space, strategy, objective, config_sha256=run.config_sha256(),
                          inputs=input_digests(config))  # fmt: skip
        return begin(session, base, launch, evaluator)


def connect_first(objective: Objective, config: Config, launch: Launch) -> Evaluator:
    """The evaluator of a new search, connected before its run directory exists: a malformed address, an
    unreachable cluster or a refused token is then a one-line error with nothing left behind, and the same
    command works once it is fixed. A signal while connecting raises `Interrupted` once Ray is back down."""
    with SignalGuard(deferred=uses_ray(config, launch.workers)) as guard:
        evaluator = make_evaluator(objective, config, launch.workers, launch.ray_address)
        stop_if_signalled(guard, evaluator)
    return evaluator


def stop_if_signalled(guard: SignalGuard, evaluator: Evaluator) -> None:
    """Raise the `Interrupted` of a signal that arrived while the evaluator connected, closing it first."""
    try:
        guard.check()
    except Interrupted:
        evaluator.close()
        raise


def resume_command(
    run_dir: str | Path,
    *,
    budget: int | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    max_evaluations: int | None = None,
) -> int:
    """`nas resume RUN_DIR`: continue the search of `run_dir` from its checkpoint and log; returns the exit code
    (0, or 130/143 after a signal). `budget` raises `search.budget.evaluations` to that many (recorded in the run
    directory's budget.json, see `nas.run.rundir`), so a finished search goes on to it."""
    run = open_run_dir(Path(run_dir))
    with run_lock(run.path):  # before reading anything: another driver may be writing it
        return resume_locked(run, Launch(workers, ray_address, max_evaluations), budget)


def resume_locked(run: RunDir, launch: Launch, budget: int | None = None) -> int:
    if not has_checkpoint(run.path) and not (run.log.exists() and run.log.stat().st_size):
        if budget is not None:
            with resumable_on_disk_error(run):
                run.raise_budget(budget, 0)
        return restart(run, launch)
    state = load_state(run.path)
    if state.config_sha256 != run.config_sha256():
        raise UserError(f"{run.config} changed since the run started; resume refuses it (start a new search)")
    check_log_complete(run.log, state.evaluations or 0)
    check_inputs(state.inputs)
    if budget is not None:  # after the checks: a run resume refuses gets no budget either
        with resumable_on_disk_error(run):
            run.raise_budget(budget, state.evaluations or 0)
    config = run.load_config()  # the strategy below is built from it, so it sees a raised budget
    space = load_search_space(config)
    strategy = build_strategy(config.search, space, config.seed)
    strategy.load_state_dict(state.strategy)
    objective = build_objective(config, space)
    session = Session(run, config, space, strategy, objective, step=state.step,
                      elapsed_seconds=state.elapsed_seconds, config_sha256=state.config_sha256,
                      stalled_steps=state.stalled_steps, inputs=state.inputs)  # fmt: skip
    if config.search.fidelity is not None:
        prepare_folder(run.path)  # `rungs` not a folder: exit 2; what a killed state write staged goes
    log.info("resuming %s at step %d", run.path, session.step)
    with resumable_on_disk_error(run):
        return drive(session, launch.workers, launch.ray_address, launch.max_evaluations)


def restart(run: RunDir, launch: Launch) -> int:
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
    session = Session(run, config, space, strategy, objective, config_sha256=run.config_sha256(),
                      inputs=input_digests(config))  # fmt: skip
    return begin(session, architecture_base(objective, space), launch)


def begin(session: Session, base: dict[str, Any], launch: Launch, evaluator: Evaluator | None = None) -> int:
    """Step 0 of a search whose run directory holds its config (the caller holds the lock): the first
    checkpoint, then the loop (on `evaluator` when the caller connected one already)."""
    try:
        with resumable_on_disk_error(session.run):
            save_state(session, base)
    except BaseException:
        if evaluator is not None:
            evaluator.close()
        raise
    with resumable_on_disk_error(session.run):
        return drive(session, launch.workers, launch.ray_address, launch.max_evaluations, evaluator)


@contextmanager
def resumable_on_disk_error(run: RunDir) -> Iterator[None]:
    """A write the disk refused ends the command with one line: which file, why, what is safe, what to do."""
    try:
        yield
    except DiskWriteError as exc:
        raise exc.with_hint(disk_error_hint(run)) from None


def disk_error_hint(run: RunDir) -> str:
    """What is safe after a refused write, as it is: a run stopped before its first checkpoint holds none."""
    held = saved_state(run.path, run.log)
    return f"{held}; once the disk is writable again, continue with: nas resume {run.path}"


def drive(
    session: Session, workers: int | None, address: str | None, limit: int | None, evaluator: Evaluator | None = None
) -> int:
    """Run the loop until the budget, the limit or a signal; print where everything is.

    The signal handlers are in place before Ray starts (a Ctrl-C while it starts is a clean stop too). With Ray
    they are deferred (see `nas.run.signals`): a signal sets a flag that the loop and the evaluator's wait loop
    turn into `Interrupted` at their next safe point, never inside a Ray call.
    """
    code = 0
    policy = AsyncPolicy if session.config.search.mode == "async" else SyncPolicy
    with SignalGuard(deferred=uses_ray(session.config, workers)) as guard:
        loop = SearchLoop(session, policy, limit, guard)
        try:
            loop.evaluator = connect_evaluator(session, workers, address, guard, evaluator)
            loop.run()
        except Interrupted as exc:
            log.warning("interrupted by %s; the log and the last checkpoint are intact: nas resume %s", exc,
                        session.run.path)  # fmt: skip
            code = exc.exit_code
        finally:
            if loop.evaluator is not None:
                loop.evaluator.close()
            loop.close()
    print_summary(session, loop)
    return code


def connect_evaluator(
    session: Session, workers: int | None, address: str | None, guard: SignalGuard, evaluator: Evaluator | None
) -> Evaluator:
    """The evaluator (`evaluator` when already connected), with the guard's handlers back in place (`ray.init`
    installs its own SIGTERM handler) and its safe point wired to the guard; a signal that arrived while Ray
    started stops here."""
    if evaluator is None:
        evaluator = make_evaluator(session.objective, session.config, workers, address)
    guard.install()
    evaluator.safe_point = guard.check
    stop_if_signalled(guard, evaluator)
    return evaluator


def print_summary(session: Session, loop: SearchLoop) -> None:
    run = session.run
    state = "finished" if loop.finished() else f"paused (continue with: nas resume {run.path})"
    lines = [f"search {state}: {len(loop.log)} evaluations ({loop.new} new), {session.step} steps completed"]
    if loop.best is not None:
        lines.append(f"best fitness {loop.best.fitness:.4f}  params {loop.best.params}  key {loop.best.key[:12]}")
        lines.append(f"best architecture  {run.best_architecture}")
    lines += [
        f"run directory      {run.path}",
        f"evaluations log    {run.log}",
        f"tensorboard        {run.tensorboard}",
    ]
    print("\n".join(lines), flush=True)
