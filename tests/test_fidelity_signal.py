"""`search.fidelity.signal`: what a rung is ranked by when promotion is decided (`nas.run.fidelity`, Signals).

`loss` promotes the lowest training losses, in sync halving and in ASHA; `restart` rung jobs carry no state and
train a complete schedule of the rung's own epochs (a real tiny training ends its 1-epoch schedule annealed);
whole searches with each signal on the synthetic objective promote by it and tell strategies the accuracy."""

import collections
import json
import math
import random
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from test_fidelity_search import RUNGS, by_step, cli, log_lines, synthetic_fidelity, tiny_digits

from nas.config import FidelityConfig, load_config
from nas.data.loading import load_dataset
from nas.evaluate.job import run_job
from nas.evaluate.result import Result
from nas.evaluate.schedules import learning_rate
from nas.evaluate.synthetic import build_synthetic
from nas.evaluate.train_objective import TrainObjective
from nas.evaluate.trainer import batch_bounds
from nas.genome.space import load_space
from nas.run.fidelity import Asha, promote, promotion_count, rank_value, rank_vector, told_fitness
from nas.run.runlog import EvaluationLog
from nas.run.schedulers import BatchHalving
from nas.strategies.random_search import random_genome

SIGNALS = ("accuracy", "loss", "restart")


def rung_result(i: int, accuracy: float, loss: float | None) -> Result:
    metrics = {} if loss is None else {"train_loss": loss}
    return Result(key=f"{i:064x}", genome={}, status="ok", fitness=accuracy, params=1, flops=1, metrics=metrics)


losses = st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=40)


@given(losses, st.integers(2, 5))
def test_promotion_by_loss_takes_the_lowest_losses(values, eta):
    results = [rung_result(i, 0.5, loss) for i, loss in enumerate(values)]
    chosen = promote([rank_value(r, "loss") for r in results], eta)
    lowest = sorted(range(len(values)), key=lambda i: (values[i], i))[: promotion_count(len(values), eta)]
    assert chosen == sorted(lowest)


@given(st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.floats(0, 10, allow_nan=False)), max_size=40))
def test_signals_read_the_accuracy_or_the_negated_loss_and_the_vector_swaps_only_the_accuracy(pairs):
    for i, (accuracy, loss) in enumerate(pairs):
        r = rung_result(i, accuracy, loss)
        assert rank_value(r, "accuracy") == rank_value(r, "restart") == accuracy
        assert rank_value(r, "loss") == -loss
        assert rank_vector(r, ["fitness", "params"], "loss") == (loss, 1.0)
        assert rank_vector(r, ["fitness", "params"], "accuracy") == (-accuracy, 1.0)


def test_a_rung_without_a_finite_training_loss_never_goes_on_by_loss():
    for loss in (None, math.nan, math.inf):
        assert rank_value(rung_result(0, 0.9, loss), "loss") is None
    assert rank_value(Result.failure("0" * 64, {}, "boom"), "loss") is None
    assert promote([rank_value(rung_result(0, 0.9, None), "loss"), -2.0], 2) == [1]


def test_asha_by_loss_stops_the_higher_loss():
    asha = Asha(levels=2, eta=2)
    assert asha.decide(0, rank_value(rung_result(0, 0.1, 1.0), "loss")), "the first of a rung goes on"
    assert not asha.decide(0, rank_value(rung_result(1, 0.9, 2.0), "loss")), "higher loss, better accuracy: stops"
    assert asha.decide(0, rank_value(rung_result(2, 0.0, 0.5), "loss")), "the lowest loss so far goes on"


def synthetic_parts(tmp_path: Path, signal: str):
    config = load_config(synthetic_fidelity(tmp_path))
    space = load_space(config.encoding)
    run = tmp_path / "run"
    run.mkdir()
    log = EvaluationLog(run / "evaluations.jsonl")
    return run, log, build_synthetic(config, space), space


@pytest.mark.parametrize("signal", SIGNALS)
def test_restart_rung_jobs_carry_no_state_and_train_their_own_schedule(tmp_path, signal):
    """Sync halving through every rung of one batch of 9: under `restart` every job is (e, e) from scratch and no
    state is ever kept; under the others a promoted job continues the full schedule from its saved state."""
    run, log, objective, space = synthetic_parts(tmp_path, signal)
    halving = BatchHalving(run, FidelityConfig(1, 3, signal), 9, log, lambda results: log.append(*results))
    rng = random.Random(0)
    jobs = halving.batch([random_genome(space, rng) for _ in range(9)], 0, None).jobs
    seen = []
    while jobs:
        seen += jobs
        verdict = halving.arrived([(job, run_job(objective, job)) for job in jobs])
        if signal == "restart":
            assert not halving.store.kept(), "a restart rung keeps no state"
        jobs = verdict.continued
    assert [j.epochs for j in seen] == [1] * 9 + [3] * 3 + [9]
    for job in seen:
        restarted = signal == "restart" or job.epochs == RUNGS[0]
        assert job.full_epochs == (job.epochs if signal == "restart" else 9)
        assert (job.state is None) == restarted, (signal, job.epochs)
    trained = [r.metrics["epochs_trained"] for r in log.lines]
    assert trained == ([r.epochs for r in log.lines] if signal == "restart" else [1] * 9 + [2] * 3 + [6])
    log.close()


@pytest.mark.full
def test_a_real_one_epoch_restart_rung_ends_its_own_schedule_annealed(tmp_path):
    """A real tiny training: the 1-epoch restart rung's last step is at the end of a 1-epoch one-cycle (below the
    schedule's starting value, annealed), where the truncated rung's is still near the peak; and its top rung is
    the ordinary full training, to the digit."""
    import torch

    torch.set_num_threads(1)
    path = tiny_digits(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["fitness"]["batch_size"] = 16  # some 20 steps an epoch, so that the last one is close to the schedule's end
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    space = load_space(config.encoding)
    objective = TrainObjective(config, space, load_dataset(config.dataset, config.seed))
    genome = random_genome(space, random.Random(1))
    fitness = config.fitness
    steps = len(batch_bounds(len(objective.data.y_train), fitness.batch_size))
    last = (steps - 1) / steps  # the progress of the last step of epoch 1

    def scheduled(epochs: int) -> float:
        return learning_rate(fitness.schedule, fitness.lr, last, epochs, warmup_fraction=fitness.warmup_fraction)

    log = EvaluationLog(tmp_path / "evaluations.jsonl")
    halvings = {s: BatchHalving(tmp_path, FidelityConfig(1, 3, s), 3, log, log.append) for s in ("accuracy", "restart")}
    restart, truncated = (run_job(objective, halvings[s].job(genome, 1)) for s in ("restart", "accuracy"))
    assert restart.ok and truncated.ok
    assert restart.metrics["schedule_epochs"] == 1 and truncated.metrics["schedule_epochs"] == 3
    assert restart.metrics["final_lr"] == pytest.approx(scheduled(1), rel=1e-6)
    assert truncated.metrics["final_lr"] == pytest.approx(scheduled(3), rel=1e-6)
    start, end = fitness.lr / 25, fitness.lr / 25 / 1e4  # one-cycle's first and last values
    assert scheduled(1) < start < fitness.lr / 2 < scheduled(3), "annealed in its own schedule, not in the full one"
    assert learning_rate(fitness.schedule, fitness.lr, 1.0, 1, warmup_fraction=fitness.warmup_fraction) == end
    assert restart.state is None, "no rung state travels back from a restart rung"
    top = run_job(objective, halvings["restart"].job(genome, 3))
    assert top.fitness == objective(genome).fitness, "the top restart rung is the ordinary full training"


def configured_signal(tmp_path: Path, signal: str, mode: str, evaluations: int = 30) -> Path:
    path = synthetic_fidelity(tmp_path, evaluations, mode=mode)
    data = yaml.safe_load(path.read_text())
    data["search"]["fidelity"]["signal"] = signal
    path.write_text(yaml.safe_dump(data))
    return path


def value(line: dict, signal: str) -> float:
    return -line["metrics"]["train_loss"] if signal == "loss" else line["fitness"]


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_search_promotes_by_its_signal_and_tells_the_accuracy(tmp_path, mode, signal):
    run = tmp_path / "run"
    out = cli("search", str(configured_signal(tmp_path, signal, mode)), "--run-dir", str(run), "--workers", "0")
    assert out.code == 0 and out.exception is None, (out.stderr[-2000:], out.exception)
    lines = log_lines(run)
    assert all("train_loss" in r["metrics"] for r in lines), "every synthetic rung line carries a training loss"
    assert {r["epochs"] for r in lines} == set(RUNGS)
    checkpoint = json.loads((run / "checkpoint.json").read_text())
    if mode == "sync":
        for step, rungs in by_step(lines).items():
            if step >= checkpoint["step"]:
                continue
            for low, high in zip(RUNGS, RUNGS[1:], strict=False):
                chosen = {rungs[low][i]["key"] for i in promote([value(r, signal) for r in rungs[low]], 3)}
                assert {r["key"] for r in rungs[high]} == chosen, (step, low)
    else:
        seen: dict[int, list[float]] = {e: [] for e in RUNGS}
        reached = {(r["key"], r["epochs"]) for r in lines}
        for r in lines:
            seen[r["epochs"]].append(value(r, signal))
            if r["epochs"] != RUNGS[-1]:
                better = sum(v > value(r, signal) for v in seen[r["epochs"]])
                went_on = (r["key"], RUNGS[RUNGS.index(r["epochs"]) + 1]) in reached
                assert went_on == (better < math.ceil(len(seen[r["epochs"]]) / 3))
        highest = {r["key"]: (r["epochs"], r["fitness"]) for r in lines}
        told = {tuple(e[:2]) for e in checkpoint["strategy"]["evaluated"]}
        assert told == {(k, told_fitness(f, RUNGS.index(e), 3)) for k, (e, f) in highest.items()}, "the accuracy"
    trained = collections.Counter()
    for r in lines:
        trained[r["key"]] += r["metrics"]["epochs_trained"]
    paid = {k: sum(RUNGS[: RUNGS.index(e) + 1]) if signal == "restart" else e
            for k, e in ((r["key"], r["epochs"]) for r in lines)}  # fmt: skip
    assert trained == paid, "restart pays every rung again; the others continue from their states"
    assert not list((run / "rungs").glob("*"))


def test_the_signal_key_is_checked_with_its_path(tmp_path):
    from nas.errors import UserError

    with pytest.raises(UserError, match="search.fidelity.signal"):
        load_config(configured_signal(tmp_path, "curve", "sync"))
    assert load_config(configured_signal(tmp_path, "loss", "sync")).search.fidelity.signal == "loss"
    data = yaml.safe_load(synthetic_fidelity(tmp_path).read_text())
    del data["search"]["fidelity"]["signal"]
    (tmp_path / "default.yaml").write_text(yaml.safe_dump(data))
    assert load_config(tmp_path / "default.yaml").search.fidelity.signal == "loss", "the default"


def test_a_run_saved_before_the_signal_existed_resumes_with_accuracy_and_a_new_one_with_its_own(tmp_path):
    from nas.run.rundir import RunDir

    data = yaml.safe_load(synthetic_fidelity(tmp_path).read_text())
    older, newer = tmp_path / "older", tmp_path / "newer"
    for run, signal in ((older, None), (newer, "loss")):
        run.mkdir()
        saved = json.loads(json.dumps(data))
        if signal is None:
            del saved["search"]["fidelity"]["signal"]
        else:
            saved["search"]["fidelity"]["signal"] = signal
        (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert RunDir(older).load_config().search.fidelity.signal == "accuracy", "what its promotions were made by"
    assert RunDir(newer).load_config().search.fidelity.signal == "loss"
    assert load_config(older / "config.yaml").search.fidelity.signal == "loss", "a new search takes the default"
