"""The NAS arm's per-dataset recipe (`fitness.augmentation`, `fitness.class_weights`) and `fitness.deterministic`,
through real training of a tiny network on a small unbalanced set."""

import os

import numpy as np
import pytest
import torch
from conftest import ROOT
from test_objectives import genome_of

from nas.config import FitnessConfig, parse_config
from nas.data.dataset import ImageData
from nas.evaluate.determinism import set_deterministic
from nas.evaluate.recipe import augmentation_for, recipe, weighting_for
from nas.evaluate.train_objective import TrainObjective
from nas.evaluate.trainer import seeded_model, train_model
from nas.genome import load_space
from nas.genome.architecture import Architecture

SPACE = load_space(ROOT / "encodings/densenet_small.yaml")


@pytest.mark.parametrize(
    "dataset, settings, want",
    [
        ("bbbc021", {}, ("dihedral", "balanced")),
        ("bbbc014", {}, ("dihedral", "balanced")),
        ("cifar10", {}, ("crop-flip", "none")),
        ("bbbc014", {"augmentation": "crop-flip", "class_weights": "none"}, ("crop-flip", "none")),
        ("digits", {"augmentation": "dihedral", "class_weights": "balanced"}, ("dihedral", "balanced")),
        ("bbbc021", {"augment": False}, ("none", "balanced")),
    ],
)
def test_auto_is_the_transfer_arms_recipe_on_cells_and_each_key_overrides(dataset, settings, want):
    fitness = FitnessConfig(**settings)
    assert (augmentation_for(fitness, dataset), weighting_for(fitness, dataset)) == want


def unbalanced_cells(seed: int = 0) -> ImageData:
    """48 two-channel 8x8 uint8 'tiles', 36 of class 0 and 12 of class 1, which differ in brightness."""
    rng = np.random.default_rng(seed)
    y = np.array([0] * 36 + [1] * 12)
    x = rng.integers(0, 150, (48, 2, 8, 8)).astype(np.uint8) + (y * 60).astype(np.uint8)[:, None, None, None]
    return ImageData(x, y, x[:16], y[:16], None, None, 2, ["negative", "positive"], (100.0, 100.0), (50.0, 50.0))


def objective_for(dataset: str, **fitness) -> TrainObjective:
    config = parse_config({"seed": 0, "dataset": {"name": dataset},
                           "fitness": {"objective": "train", "epochs": 1, "batch_size": 16, **fitness}})  # fmt: skip
    return TrainObjective(config, SPACE, unbalanced_cells())


def test_the_search_objective_trains_bbbc014_with_dihedral_and_balanced_weights_by_default():
    genome = genome_of(SPACE)
    loss = {}
    for name, dataset, fitness in [
        ("auto", "bbbc014", {}),
        ("explicit", "bbbc014", {"augmentation": "dihedral", "class_weights": "balanced"}),
        ("unweighted", "bbbc014", {"class_weights": "none"}),
        ("crop-flip", "bbbc014", {"augmentation": "crop-flip"}),
    ]:
        result = objective_for(dataset, **fitness)(genome)
        assert result.status == "ok", result.error
        loss[name] = result.metrics["train_loss"]
    assert loss["auto"] == loss["explicit"]
    assert loss["unweighted"] != loss["auto"] and loss["crop-flip"] != loss["auto"]


def test_balanced_weights_are_those_of_the_training_images():
    data = unbalanced_cells()
    weights = recipe(FitnessConfig(), "bbbc014", data)["class_weights"]
    np.testing.assert_allclose(weights, [48 / (2 * 36), 48 / (2 * 12)])
    assert recipe(FitnessConfig(), "cifar10", data)["class_weights"] is None


def train_once(deterministic: bool) -> float:
    data = unbalanced_cells()
    fitness = FitnessConfig(epochs=1, batch_size=16, deterministic=deterministic, device="cpu")
    arch = Architecture.from_space(SPACE, genome_of(SPACE), 2, 2, 8)
    report = train_model(seeded_model(arch, 0), data, fitness, seed=0, **recipe(fitness, "bbbc014", data))
    return report.train_loss


def test_deterministic_mode_is_set_for_the_training_and_gives_the_same_numbers(monkeypatch):
    """On the CPU every op the trainer uses (dihedral gathers, weighted loss) has a deterministic kernel, so the
    mode never raises there; the mode is switched off again by a training without it."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        first = train_once(True)
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert train_once(True) == first
        assert train_once(False) == first  # the CPU is deterministic without it
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        set_deterministic(False)
