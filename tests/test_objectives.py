"""The `train` objective: real training per genome; failures become failed results and the caller goes on."""

import pickle
import random

import pytest
from conftest import ROOT

from nas.config import parse_config
from nas.evaluate.evaluator import LocalEvaluator
from nas.evaluate.job import Job
from nas.evaluate.objective import build_objective
from nas.genome import load_space
from nas.genome import shortcuts as sc
from nas.genome.space import SearchSpace
from nas.model.cost import count_flops, count_params
from nas.model.network import build_model

SPACE = load_space(ROOT / "encodings/densenet_small.yaml")
CONFIG = {
    "seed": 0,
    "dataset": {"name": "digits"},
    "fitness": {"objective": "train", "epochs": 1, "batch_size": 16, "schedule": "cosine", "augment": False},
}


def config(**fitness):
    return parse_config({**CONFIG, "fitness": {**CONFIG["fitness"], **fitness}})


def genome_of(space: SearchSpace, seed: int = 0):
    rng = random.Random(seed)
    blocks = tuple((lo, g_lo) for (lo, _), (g_lo, _) in zip(space.layers, space.growth_rate, strict=True))
    lr = space.learning_rate[0] if space.learning_rate else None
    return space.genome(space.encode(blocks, lr), tuple(sc.random_bits(n, rng) for n, _ in blocks))


@pytest.fixture(scope="module")
def objective():
    return build_objective(config(test=True), SPACE)


def test_train_objective_scores_a_genome_with_exact_costs(objective):
    genome = genome_of(SPACE)
    result = objective(genome)
    assert result.status == "ok" and result.error is None, result.error
    assert 0.3 < result.fitness <= 1.0 and result.key == genome.key
    arch = objective.architecture(genome)
    assert (arch.in_channels, arch.num_classes, arch.input_size) == (1, 10, 8)
    model = build_model(arch)
    assert result.params == count_params(model) and result.flops == count_flops(model, 1, 8)
    assert {"images_per_second", "peak_memory_mb", "train_loss", "test_accuracy"} <= set(result.metrics)
    assert 0 < result.metrics["test_accuracy"] <= 1 and result.seconds > 0
    result.to_json()  # a log line: no NaN, JSON-safe


def test_objective_survives_pickling_and_gives_the_same_fitness(objective):
    genome = genome_of(SPACE, seed=3)
    copy = pickle.loads(pickle.dumps(objective))
    assert copy(genome).fitness == objective(genome).fitness


def test_a_training_that_raises_is_a_failed_result_and_the_caller_goes_on():
    """Five blocks pool 8x8 down to nothing: the network raises inside training, on the first batch."""
    deep = SearchSpace("deep", 8, 2, 0.5, ((1, 1),) * 5, ((4, 4),) * 5)
    objective = build_objective(config(), deep)
    shallow = build_objective(config(), SPACE)
    results = {}
    LocalEvaluator(objective).evaluate([Job(genome_of(deep))], lambda i, r: results.setdefault("bad", r))
    LocalEvaluator(shallow).evaluate([Job(genome_of(SPACE))], lambda i, r: results.setdefault("good", r))
    bad = results["bad"]
    assert bad.status == "failed" and bad.fitness is None
    assert bad.error.startswith("RuntimeError: ") and "too small" in bad.error
    assert "\n" not in bad.error
    bad.to_json()
    assert results["good"].status == "ok"


def test_the_genome_learning_rate_replaces_fitness_lr():
    space = SearchSpace("lr", 8, 2, 0.5, ((1, 1),), ((4, 4),), learning_rate=(1e-9, 1e-9))
    objective = build_objective(config(), space)
    frozen = objective(genome_of(space))
    assert frozen.status == "ok"
    assert frozen.fitness < 0.3, "a learning rate of 1e-9 cannot learn in one epoch"
