"""`latency_ms`: measured on the training device when a search ranks or caps by it (a bounded
`torch.utils.benchmark` measurement, once per genome and process), and a deterministic analytic stand-in in the
synthetic objective; the Pareto machinery reads it from the result's metrics."""

import random
import time

import pytest
import yaml
from conftest import ROOT

from nas.config import load_config, parse_config
from nas.evaluate.constraints import over_cap
from nas.evaluate.latency import CACHE, LATENCY, LATENCY_BATCH, analytic_latency, measure_latency, wants_latency
from nas.evaluate.synthetic import build_synthetic
from nas.genome.space import load_space
from nas.strategies import pareto
from nas.strategies.random_search import random_genome

SMALL = load_space(ROOT / "encodings" / "densenet_small.yaml")


def config_with(search: dict):
    return parse_config({"fitness": {"objective": "synthetic", "batch_size": 32}, "search": search})


def test_latency_is_wanted_when_it_is_an_objective_or_capped_and_only_then():
    assert wants_latency(config_with({"objectives": ["fitness", "latency_ms"]}))
    assert wants_latency(config_with({"constraints": {"latency_ms": 5.0}}))
    assert not wants_latency(config_with({"objectives": ["fitness", "params"], "constraints": {"flops": 10**9}}))
    assert not wants_latency(config_with({}))


def test_the_synthetic_latency_is_analytic_deterministic_and_read_as_the_objective():
    objective = build_synthetic(config_with({"objectives": ["fitness", "latency_ms"]}), SMALL)
    rng = random.Random(0)
    genomes = [random_genome(SMALL, rng) for _ in range(10)]
    for genome in genomes:
        result = objective(genome)
        assert result.metrics == analytic_latency(result.flops, 32) == objective(genome).metrics
        assert pareto.objective_vector(result, ["fitness", "latency_ms"]) == (-result.fitness, result.metrics[LATENCY])
        rung = objective.train_rung(genome, 1, 9, None, None)
        assert rung.metrics[LATENCY] == result.metrics[LATENCY], "every rung carries it"
    order = sorted((objective(g) for g in genomes), key=lambda r: r.flops)
    assert [r.metrics[LATENCY] for r in order] == sorted(r.metrics[LATENCY] for r in order), "monotone in FLOPs"
    assert all(r.metrics[LATENCY_BATCH] > r.metrics[LATENCY] for r in order)
    plain = build_synthetic(config_with({"objectives": ["fitness", "params"]}), SMALL)(genomes[0])
    assert plain.metrics == {}, "no latency in the log of a search that does not ask for it"
    capped = over_cap(order[0], {"latency_ms": order[0].metrics[LATENCY] / 2})
    assert capped.status == "failed" and "latency_ms" in capped.error


def test_a_forward_pass_is_timed_briefly_at_batch_one_and_at_the_batch_size():
    import torch

    from nas.genome.architecture import Architecture
    from nas.model.network import build_model

    torch.set_num_threads(1)
    genome = random_genome(SMALL, random.Random(1))
    model = build_model(Architecture.from_space(SMALL, genome, 1, 10, 8))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    start = time.perf_counter()
    values = measure_latency(model, (1, 8, 8), 64, torch.device("cpu"), bf16=False)
    assert time.perf_counter() - start < 5, "a short, bounded measurement"
    assert set(values) == {LATENCY, LATENCY_BATCH} and 0 < values[LATENCY] < values[LATENCY_BATCH]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "weights and statistics untouched"


@pytest.mark.full
def test_the_train_objective_measures_latency_once_per_genome_when_the_search_ranks_by_it(tmp_path):
    import torch

    from nas.data.loading import load_dataset
    from nas.evaluate.train_objective import TrainObjective

    torch.set_num_threads(1)
    data = yaml.safe_load((ROOT / "search_configs/digits_quick.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["dataset"].update({"train_subset": 0.2, "validation_fraction": 0.2})
    data["fitness"].update({"epochs": 1, "device": "cpu"})
    data["search"]["objectives"] = ["fitness", "params", "latency_ms"]
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    objective = TrainObjective(config, SMALL, load_dataset(config.dataset, config.seed))
    genome = random_genome(SMALL, random.Random(2))
    CACHE.values.pop(genome.key, None)
    result = objective(genome)
    assert result.ok and 0 < result.metrics[LATENCY] < result.metrics[LATENCY_BATCH]
    assert CACHE.get(genome.key) == {LATENCY: result.metrics[LATENCY], LATENCY_BATCH: result.metrics[LATENCY_BATCH]}
    again = objective(genome)
    assert again.metrics[LATENCY] == result.metrics[LATENCY], "the second training reuses the measurement"
    rung = objective.train_rung(genome, 1, 2, None, None)
    assert rung.metrics[LATENCY_BATCH] == result.metrics[LATENCY_BATCH]
    data["search"].pop("objectives")
    path.write_text(yaml.safe_dump(data))
    plain = TrainObjective(load_config(path), SMALL, objective.data)(genome)
    assert LATENCY not in plain.metrics, "not measured when nobody asks"
