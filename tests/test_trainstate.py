"""A training stopped after a rung and continued later ends bit for bit where an uninterrupted one does (CPU).

Real trainings of the small example network on digits; the state goes through a real file between the calls,
as it does between rungs of `search.fidelity` (RUN_DIR/rungs/)."""

import dataclasses
import random

import numpy as np
import pytest
import torch
from conftest import ROOT

from nas.config import DatasetConfig, FitnessConfig
from nas.data.loading import load_dataset
from nas.evaluate import trainstate
from nas.evaluate.rungfile import read_header
from nas.evaluate.trainer import seeded_model, train_model
from nas.genome.architecture import load_architecture

ARCH = load_architecture(ROOT / "examples/densenet_small.yaml")
SGD = FitnessConfig(epochs=3, batch_size=32, lr=0.1, schedule="one-cycle", augment=True, device="cpu")
ADAMW = dataclasses.replace(SGD, optimizer="adamw", lr=3e-3, schedule="step", lr_values=[3e-3, 1e-3, 3e-4])


@pytest.fixture(scope="module")
def digits():
    data = load_dataset(DatasetConfig(name="digits"), seed=0)
    return dataclasses.replace(data, x_train=data.x_train[:480], y_train=data.y_train[:480])


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("fitness", [SGD, ADAMW], ids=["sgd-one-cycle", "adamw-step"])
def test_rungs_end_bit_for_bit_where_one_training_does(digits, fitness, tmp_path):
    torch.set_num_threads(1)
    whole = seeded_model(ARCH, 0)
    reference = train_model(whole, digits, fitness, seed=0)

    blob = None
    for stop in (1, 2, None):  # two rungs (after epoch 1 and 2), then the rest of the budget
        model = seeded_model(ARCH, 0)  # a fresh process would build it the same way
        if blob is not None:
            path = tmp_path / "rung.safetensors"
            path.write_bytes(blob)
            blob = path.read_bytes()
        report = train_model(model, digits, fitness, seed=0, resume_from=blob, stop_after=stop)
        if stop is not None:
            assert report.epochs == stop and report.state is not None
            assert read_header(report.state)["epochs_done"] == stop
            blob = report.state
    assert report.state is None and report.epochs == 3
    final, expected = state_of(model), state_of(whole)
    assert final.keys() == expected.keys()
    for name in expected:
        assert torch.equal(final[name], expected[name]), name
    assert report.val_accuracy == reference.val_accuracy
    assert report.train_loss == reference.train_loss


def test_a_rung_restores_the_global_rngs_too(digits):
    torch.set_num_threads(1)
    fitness = dataclasses.replace(SGD, epochs=2)
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    report = train_model(seeded_model(ARCH, 0), digits, fitness, seed=0, stop_after=1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    model = seeded_model(ARCH, 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert trainstate.restore(report.state, model, optimizer, torch.Generator().manual_seed(0)) == 1
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_a_state_that_does_not_fit_the_network_is_refused(digits):
    other = dataclasses.replace(ARCH, stem_channels=ARCH.stem_channels + 4)
    report = train_model(seeded_model(ARCH, 0), digits, dataclasses.replace(SGD, epochs=2), seed=0, stop_after=1)
    model = seeded_model(other, 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="does not fit"):
        trainstate.restore(report.state, model, optimizer, torch.Generator())
    with pytest.raises(ValueError, match="not a rung state"):
        trainstate.restore(b"\x00" * 16, model, optimizer, torch.Generator())


def test_a_state_with_a_header_field_missing_or_a_garbled_rng_is_a_value_error(digits):
    """What the driver's checksum keeps from a worker, refused here too as `ValueError` (a failed result with a
    reason), never a `KeyError` or torch's own error: a header without `optim_scalars`, an RNG state torch
    rejects ("Invalid mt19937 state"), tensors safetensors cannot read."""
    import json

    from safetensors.torch import load, save

    report = train_model(seeded_model(ARCH, 0), digits, dataclasses.replace(SGD, epochs=2), seed=0, stop_after=1)
    tensors = load(report.state)
    meta = read_header(report.state)

    def fresh():
        model = seeded_model(ARCH, 0)
        return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), torch.Generator().manual_seed(0)

    without = {k: v for k, v in meta.items() if k != "optim_scalars"}
    with pytest.raises(ValueError, match=r"incomplete or malformed \(KeyError: 'optim_scalars'\)"):
        trainstate.restore(save(tensors, metadata={"nas": json.dumps(without)}), *fresh())
    garbled = {**tensors, "rng.batch": torch.zeros_like(tensors["rng.batch"])}
    with pytest.raises(ValueError, match="does not fit"):
        trainstate.restore(save(garbled, metadata={"nas": json.dumps(meta)}), *fresh())
    size = int.from_bytes(report.state[:8], "little")
    with pytest.raises(ValueError, match="tensors do not load"):
        trainstate.restore(report.state[: 8 + size + 10], *fresh())
