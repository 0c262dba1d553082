"""The unit of work (`nas.evaluate.job.Job`) and the objective protocol it runs on: every objective implements
the whole protocol (a whole evaluation and one rung), and a job gives the same result whichever way it is run."""

import importlib
import inspect
import pickle
import random
from typing import get_type_hints

import pytest
from conftest import ROOT
from probe_objective import ProbeObjective

from nas.config import parse_config
from nas.evaluate.evaluator import LocalEvaluator
from nas.evaluate.job import Job, run_job
from nas.evaluate.objective import OBJECTIVE_MODULES, OBJECTIVES, Objective, build_objective
from nas.evaluate.rungfile import read_header
from nas.genome import load_space
from nas.genome import shortcuts as sc

SPACE = load_space(ROOT / "encodings/densenet_small.yaml")
# The protocol's methods, read from the protocol itself, so that a method added to it is checked here at once.
PROTOCOL = sorted(n for n, v in vars(Objective).items() if callable(v) and (n == "__call__" or not n.startswith("_")))


def genome(seed: int = 0):
    rng = random.Random(seed)
    position = SPACE.random_position(rng)
    blocks, _ = SPACE.decode(position)
    return SPACE.genome(position, tuple(sc.random_bits(n, rng) for n, _ in blocks))


def synthetic():
    return build_objective(parse_config({"fitness": {"objective": "synthetic"}}), SPACE)


def parameters(method) -> list[str]:
    return [p for p in inspect.signature(method).parameters if p != "self"]


def registered_objective_classes() -> dict[str, type]:
    """Every objective `fitness.objective` can name, by the class its factory declares it returns."""
    for module in OBJECTIVE_MODULES.values():
        importlib.import_module(module)
    return {name: get_type_hints(OBJECTIVES.get(name))["return"] for name in OBJECTIVES.names()}


def test_the_protocol_has_a_whole_evaluation_a_rung_and_an_inheriting_evaluation():
    assert PROTOCOL == ["__call__", "architecture", "inherit", "train_rung"]


@pytest.mark.parametrize("name", sorted(registered_objective_classes()) + ["tests/probe_objective"])
def test_every_objective_implements_the_whole_protocol(name):
    cls = registered_objective_classes().get(name, ProbeObjective)
    for method in PROTOCOL:
        assert callable(getattr(cls, method, None)), f"{cls.__name__} lacks {method}"
        assert parameters(getattr(cls, method)) == parameters(getattr(Objective, method)), (cls.__name__, method)


def test_every_objective_module_is_registered():
    assert set(registered_objective_classes()) == set(OBJECTIVE_MODULES)


def test_a_job_is_a_whole_evaluation_or_a_rung():
    g = genome()
    assert Job(g).key == g.key and Job(g).epochs is None
    with pytest.raises(ValueError, match="both epochs and full_epochs"):
        Job(g, epochs=1)
    with pytest.raises(ValueError, match="both epochs and full_epochs"):
        Job(g, full_epochs=9)
    with pytest.raises(ValueError, match="only a rung job starts from a state"):
        Job(g, state=b"x")
    job = Job(g, epochs=3, full_epochs=9, state=b"\x00" * 1000)
    assert "state" not in repr(job)  # a state may be gigabytes: never printed
    assert pickle.loads(pickle.dumps(job)) == job


def test_run_job_is_the_objective_whole_or_one_rung():
    objective, g = synthetic(), genome(1)
    assert run_job(objective, Job(g)).fitness == objective(g).fitness
    first = run_job(objective, Job(g, epochs=1, full_epochs=9))
    assert first.ok and first.epochs == 1 and first.metrics["epochs_trained"] == 1
    header = read_header(first.state)
    assert header is not None and header["epochs_done"] == 1 and header["key"] == g.key
    second = run_job(objective, Job(g, epochs=3, full_epochs=9, state=first.state))
    assert second.epochs == 3 and second.metrics["epochs_trained"] == 2  # continued from the first rung
    assert second.fitness == objective.train_rung(g, 3, 9, None, None).fitness  # the same as from scratch
    other = run_job(objective, Job(genome(2), epochs=3, full_epochs=9, state=first.state))
    assert other.status == "failed" and other.epochs == 3  # another candidate's state: a failed result


def test_the_local_evaluator_runs_every_kind_of_job():
    objective, g = synthetic(), genome(3)
    first = run_job(objective, Job(g, epochs=1, full_epochs=9))
    jobs = [Job(g), Job(g, epochs=1, full_epochs=9), Job(g, epochs=9, full_epochs=9, state=first.state)]
    got: dict[int, object] = {}
    LocalEvaluator(objective).evaluate(jobs, lambda i, r: got.__setitem__(i, r))
    expected = [run_job(objective, job) for job in jobs]
    assert [(r.key, r.fitness, r.epochs, r.state) for r in (got[i] for i in range(3))] == [
        (r.key, r.fitness, r.epochs, r.state) for r in expected
    ]
    assert got[2].metrics["epochs_trained"] == 8
