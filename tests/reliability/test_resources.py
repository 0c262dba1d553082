"""Resources and exactness: networks too big to build, the cores a training is given, and the arithmetic of
the network's widths.

An architecture can be within every per-field bound (layers <= 200, growth and stem <= 4096) and still need
1e10 parameters or terabytes of activations: every command that would build it (`nas inspect`, `nas train`,
a search's candidates, a search space's largest member) must refuse it in one line from the analytic cost,
before anything is allocated. The widths the contract fixes (floor(c * compression)) must be exact.
"""

import math
import random
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_runs import ROOT, cli

from nas.config import load_config
from nas.genome.architecture import load_architecture
from nas.genome.channels import transition_width
from nas.genome.shortcuts import bit_length
from nas.genome.space import load_space
from nas.model import network

DIGITS = ROOT / "search_configs/digits_quick.yaml"


def bomb(rng: random.Random) -> dict:
    """An architecture within every field's bound whose analytic cost is far over the default limits."""
    blocks = []
    for _ in range(rng.randint(1, 3)):
        layers = rng.randint(2, 40)
        blocks.append({"layers": layers, "growth_rate": rng.randint(1024, 4096), "shortcuts": "1" * bit_length(layers)})
    return {"format": "nas-architecture/1", "in_channels": 1, "num_classes": 10, "input_size": 8,
            "stem_channels": rng.randint(1024, 4096), "bottleneck_width": rng.randint(4, 64),
            "compression": 0.5, "blocks": blocks}  # fmt: skip


@pytest.fixture
def no_build(monkeypatch):
    """Building a network fails the test: the refusal must come from the formula, before torch allocates."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network over the limits was built")

    monkeypatch.setattr(network, "build_model", refuse)
    monkeypatch.setattr("nas.model.cost.build_model", refuse, raising=False)


def assert_one_line(out, *words: str) -> None:
    assert out.exception is None, out.exception
    assert out.code == 2, (out.code, out.stderr[-2000:])
    lines = out.error_lines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), out.stderr[-2000:]


def test_memory_bomb_architectures_are_refused_by_inspect_and_train_before_building(
    tmp_path, no_build, record_property
):
    """Generated in-bounds architectures of 1e9 to 1e13 parameters given to `nas inspect` and `nas train`:
    exit 2, one line naming the limit, nothing built."""
    rng = random.Random(3)
    cases = 12
    for i in range(cases):
        path = tmp_path / f"bomb{i}.yaml"
        path.write_text(yaml.safe_dump(bomb(rng)))
        assert_one_line(cli("inspect", str(path)), str(path), "limits.max_params")
        assert_one_line(cli("train", str(path), "--config", str(DIGITS)), str(path), "limits.max_params")
    record_property("tried", 2 * cases)


def test_activation_memory_over_the_limit_is_refused_at_the_batch_size(tmp_path, no_build, record_property):
    """A small network (few parameters) at a batch size whose activations exceed `limits.max_activation_gib`:
    `nas train` refuses it in one line naming the limit and the batch size."""
    data = yaml.safe_load(DIGITS.read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["fitness"]["batch_size"] = 65_536
    data["limits"] = {"max_activation_gib": 0.5}
    cfg = tmp_path / "big_batch.yaml"
    cfg.write_text(yaml.safe_dump(data))
    out = cli("train", str(ROOT / "examples/densenet_small.yaml"), "--config", str(cfg))
    assert_one_line(out, "limits.max_activation_gib", "batch size 65536")
    record_property("tried", 1)


def test_a_search_space_whose_largest_member_is_over_the_limit_is_refused_at_the_start(tmp_path, record_property):
    """Search spaces whose largest member is over the limits (wide ranges, or a tight `limits.max_params`):
    `nas search` exits 2 at once with one line under `encoding`, and makes no run directory."""
    wide = yaml.safe_load((ROOT / "encodings/densenet_small.yaml").read_text())
    wide["stem_channels"] = 2048
    for block in wide["blocks"]:
        block.update({"layers": [2, 64], "growth_rate": [8, 512]})
    space = tmp_path / "wide.yaml"
    space.write_text(yaml.safe_dump(wide))
    cases = [({"encoding": str(space)}, "limits.max_params"),
             ({"limits": {"max_params": 10_000}}, "limits.max_params"),
             ({"limits": {"max_activation_gib": 0.001}}, "limits.max_activation_gib")]  # fmt: skip
    for i, (change, words) in enumerate(cases):
        data = yaml.safe_load(DIGITS.read_text())
        data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
        data.update(change)
        cfg = tmp_path / f"c{i}.yaml"
        cfg.write_text(yaml.safe_dump(data))
        run = tmp_path / f"run{i}"
        out = cli("search", str(cfg), "--run-dir", str(run), "--workers", "0")
        assert_one_line(out, "encoding:", "largest network", words)
        assert not run.exists(), "a run directory was made for a refused search"
    record_property("tried", len(cases))


def test_a_candidate_over_the_limit_is_a_failed_result_and_never_built(tmp_path, no_build, record_property):
    """Candidates of a search space evaluated under a `limits.max_params` below them: each is a failed result
    naming the limit (the search goes on), and no network is built."""
    from nas.evaluate.objective import build_objective
    from nas.strategies.strategy import build_strategy

    data = yaml.safe_load(DIGITS.read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["dataset"]["train_subset"] = 0.2
    data["limits"] = {"max_params": 1_000}
    cfg = tmp_path / "tight.yaml"
    cfg.write_text(yaml.safe_dump(data))
    config = load_config(cfg)
    space = load_space(config.encoding)
    objective = build_objective(config, space)
    genomes = build_strategy(config.search, space, config.seed).ask()
    for genome in genomes:
        result = objective(genome, "cpu")
        assert result.status == "failed" and "limits.max_params" in result.error, result
    record_property("tried", len(genomes))


def test_transition_width_is_exact(record_property):
    """floor(c * compression) for compressions written with up to three decimals (0.001 to 1.000) and widths
    up to 100,000 (hypothesis), against exact decimal arithmetic (100 x 0.29 is 29, not 28)."""
    tried = 0

    @settings(max_examples=400, deadline=None, derandomize=True, database=None)
    @given(channels=st.integers(1, 100_000), thousandths=st.integers(1, 1000))
    def check(channels: int, thousandths: int) -> None:
        nonlocal tried
        text = f"{thousandths / 1000:.3f}"
        assert transition_width(channels, float(text)) == math.floor(channels * Decimal(text))
        tried += 1

    check()
    assert transition_width(100, 0.29) == 29
    record_property("tried", tried + 1)


def test_transition_width_of_the_built_network_is_exact(tmp_path, record_property):
    """A network with c = 100 entering the transition and compression 0.29 has a 29-channel transition conv."""
    block = {"layers": 1, "growth_rate": 1, "shortcuts": "1"}  # the output: the stem's 99 channels + 1
    arch = {"format": "nas-architecture/1", "in_channels": 1, "num_classes": 10, "input_size": 8,
            "stem_channels": 99, "bottleneck_width": 1, "compression": 0.29, "blocks": [block, block]}  # fmt: skip
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(arch))
    model = network.build_model(load_architecture(path))
    convs = [m for m in model.modules() if type(m).__name__ == "Conv2d" and m.kernel_size == (1, 1)]
    assert 29 in {m.out_channels for m in convs} and 28 not in {m.out_channels for m in convs}
    record_property("tried", 1)


def untuned_environment() -> dict[str, str]:
    """This environment without the thread variables the suite sets, as a user's shell would be."""
    import os

    drop = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "PYTHONUNBUFFERED": "1"}


def tiny_digits(tmp_path: Path, cpus: float) -> Path:
    data = yaml.safe_load(DIGITS.read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["dataset"].update({"train_subset": 0.2})
    data["fitness"].update({"epochs": 1, "device": "cpu"})
    data["resources"]["cpus_per_trial"] = cpus
    path = tmp_path / f"digits-{cpus}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_training_uses_the_cores_it_was_given_not_the_machines(tmp_path, monkeypatch, record_property):
    """`nas train` (a real process, no OMP_NUM_THREADS) and the objective every search path runs (in-process
    and on Ray workers), with `resources.cpus_per_trial` 1 and with the affinity mask narrowed to one core:
    torch trains with that many threads, not one per core of the machine."""
    import os
    import subprocess
    import sys

    import torch

    from nas.evaluate import threads
    from nas.evaluate.objective import build_objective
    from nas.strategies.strategy import build_strategy

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cfg = tiny_digits(tmp_path, 1)
    out = subprocess.run([sys.executable, "-m", "nas", "train", str(ROOT / "examples/densenet_small.yaml"),
                          "--config", str(cfg), "--json"], cwd=ROOT, env=untuned_environment(),
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert json_line(out.stdout)["threads"] == 1, out.stdout
    cores = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(cores)})  # this process pinned to one core, asking for 8
        assert threads.given_cores(8) == 1
    finally:
        os.sched_setaffinity(0, cores)
    tried = 2
    config = load_config(tiny_digits(tmp_path, 1))
    space = load_space(config.encoding)
    objective = build_objective(config, space)
    genome = build_strategy(config.search, space, config.seed).ask()[0]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # what torch starts with on this 2-core machine, or more on a bigger one
        result = objective(genome, "cpu")
        assert result.ok and torch.get_num_threads() == 1 and result.metrics["threads"] == 1, result
    finally:
        torch.set_num_threads(before)
    record_property("tried", tried + 1)


def test_a_container_cpu_quota_bounds_the_threads(tmp_path, record_property):
    """cgroup v2 `cpu.max` quotas (none, 1.5 cores, 1 core, unreadable) beside `cpus_per_trial` 8: the thread
    count is the smallest of the quota (rounded up), the request and the affinity mask."""
    from nas.evaluate import threads

    cases = {"max 100000": None, "150000 100000": 2, "100000 100000": 1, "garbage": None}
    for text, want in cases.items():
        path = tmp_path / "cpu.max"
        path.write_text(text)
        assert threads.quota_cores(path) == want, text
    assert threads.quota_cores(tmp_path / "absent") is None
    assert threads.given_cores(8) <= threads.affinity_cores() and threads.given_cores(1) == 1
    record_property("tried", len(cases) + 1)


def json_line(stdout: str) -> dict:
    import json

    return json.loads(stdout.strip().splitlines()[-1])
