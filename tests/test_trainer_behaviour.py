"""The trainer's behaviour read back from a real training of a tiny network, never recomputed by its formulas.

The learning rate is read from the optimizer itself at every step (a global step pre-hook), so a schedule that
is computed but never applied fails here; expected values are worked out by hand in the comments. Validation is
checked against the network in eval mode with a model whose BatchNorm makes train and eval outputs differ.
"""

import io
import math
import resource
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from nas.config import FitnessConfig
from nas.data.aggregate import grouped_accuracy
from nas.data.dataset import ImageData
from nas.evaluate.trainer import (
    TrainReport,
    batch_bounds,
    epoch_range,
    evaluated_splits,
    logits_of,
    predict,
    resolve_device,
    shared_tensor,
    train_model,
    training_split,
    use_bf16,
)


def tiny_data(n_train: int = 8, n_val: int = 6, n_test: int = 4, seed: int = 0) -> ImageData:
    """Two classes of 1x4x4 uint8 images; class 1 is brighter, so a network can learn it in a few steps."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 2
        x = rng.integers(0, 120, size=(n, 1, 4, 4)) + 100 * y[:, None, None, None]
        return x.astype(np.uint8), y.astype(np.int64)

    (xt, yt), (xv, yv), (xs, ys) = split(n_train), split(n_val), split(n_test)
    return ImageData(xt, yt, xv, yv, xs, ys, 2, ["a", "b"], mean=(float(xt.mean()),), std=(float(xt.std()),))


def tiny_net(batch_norm: bool = True, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    norm = [nn.BatchNorm2d(3)] if batch_norm else []
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), *norm, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)
    )


def fitness(**kw) -> FitnessConfig:
    base = dict(epochs=2, batch_size=4, lr=0.1, schedule="cosine", augment=False, precision="fp32", device="cpu")
    return FitnessConfig(**{**base, **kw})


class StepRecorder:
    """Every optimizer step of a training: the optimizer and the learning rate of its first group at that step."""

    def __enter__(self):
        self.lrs: list[float] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        self.handle = register_optimizer_step_pre_hook(self.hook)
        return self

    def hook(self, optimizer, args, kwargs):
        self.lrs.append(optimizer.param_groups[0]["lr"])
        self.optimizers.append(optimizer)

    def __exit__(self, *exc):
        self.handle.remove()


def lrs_of(fit: FitnessConfig, lr: float | None = None, n_train: int = 8) -> list[float]:
    with StepRecorder() as rec:
        train_model(tiny_net(), tiny_data(n_train), fit, seed=0, lr=lr)
    return rec.lrs


# 8 images, batch 4: 2 steps an epoch, at t = epoch + step / 2.


def test_step_schedule_as_the_optimizer_saw_it():
    # 3 epochs over [lr, lr/10, lr/100], one value an epoch, held for both steps of the epoch.
    assert lrs_of(fitness(epochs=3, schedule="step")) == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_step_values_rescaled_to_a_genome_learning_rate_as_the_optimizer_saw_them():
    # lr_values [1.0, 0.5] rescaled to start at the genome's 0.2: 0.2 for epoch 0, 0.1 for epoch 1.
    fit = fitness(schedule="step", lr_values=[1.0, 0.5])
    assert lrs_of(fit, lr=0.2) == pytest.approx([0.2, 0.2, 0.1, 0.1])
    assert lrs_of(fit) == pytest.approx([1.0, 1.0, 0.5, 0.5])


def test_cosine_schedule_as_the_optimizer_saw_it():
    # 0.1 * (1 + cos(pi * t / 2)) / 2 at t = 0, 0.5, 1, 1.5: 0.1, 0.1 (2 + sqrt 2) / 4, 0.05, 0.1 (2 - sqrt 2) / 4.
    assert lrs_of(fitness()) == pytest.approx([0.1, 0.0853553390593, 0.05, 0.0146446609407])


def test_a_genome_learning_rate_replaces_the_configured_one():
    assert lrs_of(fitness(schedule="constant"), lr=0.03) == pytest.approx([0.03] * 4)


def test_one_cycle_schedule_as_the_optimizer_saw_it():
    # Peak 0.1, warm-up half the budget: start 0.1/25 = 0.004, at a quarter halfway up, (0.004 + 0.1) / 2; at
    # half the peak; at three quarters halfway down to 0.004 / 1e4 = 4e-7, (0.1 + 4e-7) / 2.
    fit = fitness(schedule="one-cycle", warmup_fraction=0.5)
    assert lrs_of(fit) == pytest.approx([0.004, 0.052, 0.1, 0.0500002])


def test_smooth_schedules_move_every_step_of_an_uneven_epoch():
    # 10 images, batch 4: batches of 4, 4, 2; three steps an epoch at t = 0, 1/3, 2/3 of a 1-epoch cosine.
    fit = fitness(epochs=1)
    assert lrs_of(fit, n_train=10) == pytest.approx([0.1, 0.075, 0.025])


def test_the_optimizer_is_the_configured_sgd_or_adamw():
    with StepRecorder() as rec:
        train_model(tiny_net(), tiny_data(), fitness(momentum=0.8, weight_decay=0.01, epochs=1), seed=0)
        train_model(tiny_net(), tiny_data(), fitness(momentum=0.0, nesterov=True, epochs=1), seed=0)
        train_model(tiny_net(), tiny_data(), fitness(optimizer="adamw", weight_decay=0.02, epochs=1), seed=0)
    sgd, plain_sgd, adamw = (rec.optimizers[i] for i in (0, 2, 4))
    assert type(sgd) is torch.optim.SGD and type(adamw) is torch.optim.AdamW
    group = sgd.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.8, True, 0.01)
    assert plain_sgd.param_groups[0]["nesterov"] is False, "Nesterov needs momentum; torch refuses it without"
    assert adamw.param_groups[0]["weight_decay"] == 0.02
    assert len(rec.lrs) == 6, "8 images, batch 4, 1 epoch: two steps a training"


def eval_probs(model: nn.Module, x: np.ndarray, data: ImageData) -> torch.Tensor:
    """Softmax of the model in eval mode on images normalised by the training split's statistics."""
    model.eval()
    xs = (torch.from_numpy(x).float() - data.mean[0]) / data.std[0]
    with torch.no_grad():
        return torch.softmax(model(xs), dim=1)


def test_validation_runs_in_eval_mode():
    """BatchNorm with running statistics after 2 epochs: train-mode outputs differ; the report is eval mode."""
    data, model = tiny_data(n_val=6), tiny_net()
    report = train_model(model, data, fitness(), seed=0, keep_probs=True)
    expected = eval_probs(model, data.x_val, data)
    assert np.allclose(report.probs["val"], expected.numpy(), atol=1e-6)
    model.train()
    with torch.no_grad():
        xs = (torch.from_numpy(data.x_val).float() - data.mean[0]) / data.std[0]
        train_mode = torch.softmax(model(xs), dim=1)
    assert not np.allclose(report.probs["val"], train_mode.numpy(), atol=1e-3), "the model does tell the modes apart"
    assert report.val_accuracy == float(np.mean(expected.argmax(1).numpy() == data.y_val))


def test_predict_leaves_a_training_model_in_eval_mode_in_batches():
    data, model = tiny_data(n_val=6), tiny_net()
    train_model(model, data, fitness(epochs=1), seed=0)
    model.train()
    from nas.evaluate.trainer import DeviceData

    split = DeviceData.of(data.x_val, data.y_val, data, torch.device("cpu"))
    probs = predict(model, split, batch_size=4, bf16=False)  # batches of 4 and 2
    assert not model.training
    assert probs.dtype == np.float32 and probs.shape == (6, 2)
    assert np.allclose(probs, eval_probs(model, data.x_val, data).numpy(), atol=1e-6)


def test_train_loss_is_the_mean_over_images_of_the_epoch():
    """lr 1e-9: the weights stay put, so the epoch's loss is the initial loss over all 10 images (4 + 4 + 2)."""
    data, model = tiny_data(n_train=10), tiny_net(batch_norm=False)
    xs = (torch.from_numpy(data.x_train).float() - data.mean[0]) / data.std[0]
    with torch.no_grad():
        expected = nn.functional.cross_entropy(model(xs), torch.from_numpy(data.y_train)).item()
    report = train_model(model, data, fitness(epochs=1, lr=1e-9, schedule="constant", momentum=0.0), seed=0)
    assert report.train_loss == pytest.approx(expected, rel=1e-5)
    one = tiny_data(n_train=1)
    xs = (torch.from_numpy(one.x_train).float() - one.mean[0]) / one.std[0]
    with torch.no_grad():
        alone = nn.functional.cross_entropy(model(xs), torch.from_numpy(one.y_train)).item()
    single = train_model(model, one, fitness(epochs=1, lr=1e-9, schedule="constant", momentum=0.0), seed=0)
    assert single.train_loss == pytest.approx(alone, rel=1e-5), "an epoch of one image"


def test_class_weights_and_label_smoothing_reach_the_loss():
    """One batch holds the whole split, so the reported loss is the loss before the only step."""
    data, model = tiny_data(n_train=8), tiny_net(batch_norm=False)
    weights = np.array([0.25, 2.0])
    xs = (torch.from_numpy(data.x_train).float() - data.mean[0]) / data.std[0]
    with torch.no_grad():
        expected = nn.functional.cross_entropy(
            model(xs), torch.from_numpy(data.y_train), weight=torch.tensor(weights, dtype=torch.float32),
            label_smoothing=0.2,
        ).item()  # fmt: skip
    fit = fitness(epochs=1, batch_size=8, label_smoothing=0.2)
    report = train_model(model, data, fit, seed=0, class_weights=weights)
    assert report.train_loss == pytest.approx(expected, rel=1e-5)


def weights_after(**kw) -> torch.Tensor:
    model = tiny_net()
    augmentation = kw.pop("augmentation", None)
    train_model(model, tiny_data(), fitness(epochs=1, **kw), seed=3, augmentation=augmentation)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_fitness_augment_means_crop_flip_and_its_absence_none():
    crop_flip = weights_after(augment=True)
    assert torch.equal(crop_flip, weights_after(augment=False, augmentation="crop-flip"))
    assert torch.equal(weights_after(augment=False), weights_after(augment=True, augmentation="none"))
    assert not torch.equal(crop_flip, weights_after(augment=False))


def test_report_fields_of_a_full_training():
    data = tiny_data()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = train_model(tiny_net(), data, fitness(epochs=3), seed=0, full=True, evaluate=("val",))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert report.epochs == 3 and report.val_accuracy is None and report.test_accuracy is not None
    assert before <= report.peak_memory_mb <= after, "the CPU peak is ru_maxrss in MiB"
    assert report.images_per_second > 0 and report.seconds > 0 and report.probs == {}
    assert math.isfinite(report.train_loss)


def test_report_to_dict_drops_probabilities_and_non_finite_numbers():
    report = TrainReport(0.5, None, float("nan"), 2, 1.0, float("inf"), 3.0, probs={"val": np.zeros((1, 2))})
    assert report.to_dict() == {
        "val_accuracy": 0.5,
        "test_accuracy": None,
        "train_loss": None,
        "epochs": 2,
        "seconds": 1.0,
        "images_per_second": None,
        "peak_memory_mb": 3.0,
    }


def test_splits_trained_on_and_scored():
    data = tiny_data(n_train=8, n_val=6, n_test=4)
    x, y = training_split(data, full=True)
    assert len(x) == len(y) == 14 and np.array_equal(y[8:], data.y_val)
    assert training_split(data, full=False)[0] is data.x_train
    assert set(evaluated_splits(data, ("val",), full=False)) == {"val"}
    assert set(evaluated_splits(data, ("val", "test"), full=False)) == {"val", "test"}
    assert set(evaluated_splits(data, ("val",), full=True)) == {"test"}, "full training has no validation left"
    assert evaluated_splits(data, ("test",), full=False)["test"][1] is data.y_test
    empty = ImageData(data.x_train, data.y_train, data.x_val[:0], data.y_val[:0], None, None, 2, ["a", "b"],
                      (0.0,), (1.0,))  # fmt: skip
    assert evaluated_splits(empty, ("val", "test"), full=False) == {}
    assert training_split(empty, full=True)[0] is empty.x_train


def test_devices_and_precision():
    assert resolve_device(None).type == resolve_device("auto").type
    assert resolve_device("cpu") == torch.device("cpu")
    cpu = torch.device("cpu")
    assert use_bf16("bf16", cpu) is True and use_bf16("auto", cpu) is False and use_bf16("fp32", cpu) is False


def test_logits_of_tensors_and_inception_outputs():
    t = torch.ones(2, 3)

    class WithLogits:
        logits = t

    assert logits_of(t) is t and logits_of(WithLogits()) is t and logits_of((t, torch.zeros(1))) is t


def test_batches_of_an_epoch_by_hand():
    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_bounds(9, 4) == [(0, 4), (4, 8)], "a last batch of one image is dropped"
    assert batch_bounds(3, 2) == [(0, 2)]
    assert batch_bounds(1, 4) == [(0, 1)], "a single image is still an epoch"
    assert batch_bounds(3, 1) == [(0, 1), (1, 2), (2, 3)], "batch size 1 keeps every image"


def test_an_unknown_split_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^cannot evaluate split 'train' \(known: val, test\)$"):
        evaluated_splits(tiny_data(), ("zz", "train", "val"), full=False)


def test_same_seed_same_training_other_seed_other_one():
    def run(seed: int, global_seed: int = 123, **kw) -> torch.Tensor:
        model = tiny_net()
        torch.manual_seed(global_seed)  # the global RNG plays no part: the trainer draws from its own generator
        train_model(model, tiny_data(n_train=12), fitness(epochs=2, augment=True, **kw), seed=seed)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    a = run(0)
    assert torch.equal(a, run(0, global_seed=456)) and not torch.equal(a, run(1))
    assert not torch.equal(a, run(0, precision="bf16")), "bf16 autocast is applied when asked, on the CPU too"


def test_full_training_takes_the_validation_images_and_channels_last():
    data, model = tiny_data(n_train=8, n_val=6), tiny_net()
    with StepRecorder() as rec:
        train_model(model, data, fitness(epochs=1), seed=0, full=True)
    assert len(rec.lrs) == 4, "8 + 6 images in batches of 4: 4 steps"
    two = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 2))  # fmt: skip
    train_model(two, data, fitness(epochs=1), seed=0)
    weight = two[1].weight  # 3 input channels: the two memory formats differ
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def test_throughput_and_time_are_measured_over_the_training():
    data = tiny_data(n_train=10)
    report = train_model(tiny_net(), data, fitness(epochs=2), seed=0)
    # 2 epochs of 10 images (batches 4, 4, 2): 20 images trained in less than the whole call took.
    assert report.images_per_second * report.seconds >= 20
    assert 0 < report.seconds < 3600


def test_validation_accuracy_is_over_the_validation_groups():
    data = tiny_data(n_val=6)
    data.val_groups = np.array([[0], [1], [0], [1], [0], [1]])  # two groups: the even and the odd images
    data.group_reduce = "mean"
    report = train_model(tiny_net(), data, fitness(), seed=0, keep_probs=True)
    assert report.val_accuracy == grouped_accuracy(report.probs["val"], data.y_val, data.val_groups, "mean")
    assert report.val_accuracy in (0.0, 0.5, 1.0)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_only_when_asked_and_on_a_terminal(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert epoch_range(3, False) == range(3)
    train_model(tiny_net(), tiny_data(), fitness(epochs=1), seed=0)
    assert terminal.getvalue() == "", "no bar by default"
    bar = epoch_range(3, True)
    assert (bar.desc, bar.unit, bar.leave, bar.total) == ("train", "epoch", False, 3)
    assert list(bar) == [0, 1, 2] and "epoch" in terminal.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert epoch_range(3, True) == range(3), "no bar when stderr is not a terminal"


def test_read_only_arrays_are_wrapped_without_a_copy_or_a_warning():
    array = np.arange(8, dtype=np.uint8).reshape(2, 4)
    array.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = shared_tensor(array)
        assert tensor.data_ptr() == array.ctypes.data
        writable = np.arange(3)
        assert shared_tensor(writable).data_ptr() == writable.ctypes.data


def test_the_validation_groups_and_their_reduction_decide_the_accuracy():
    """12 validation images in 4 groups of 3 (each group one class). With this seed the three readings differ,
    so the accuracy must be the grouped one with the data's own reduction: plain accuracy is 0.25, grouped by
    median 0.25, grouped by mean (`data.group_reduce`) 0.5."""
    data = tiny_data(n_val=12, seed=13)
    data.val_groups = np.array([[0], [1], [0], [1], [0], [1], [2], [3], [2], [3], [2], [3]])
    data.group_reduce = "mean"
    report = train_model(tiny_net(seed=13), data, fitness(epochs=1, lr=0.02), seed=0, keep_probs=True)
    p = report.probs["val"]
    readings = (grouped_accuracy(p, data.y_val, None), grouped_accuracy(p, data.y_val, data.val_groups, "median"))
    assert readings == (0.25, 0.25), "the seed still separates the readings"
    assert report.val_accuracy == grouped_accuracy(p, data.y_val, data.val_groups, "mean") == 0.5


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_training_stopped_after_an_epoch_and_resumed_ends_where_one_training_does(optimizer):
    """Rungs: `stop_after` returns the whole state (weights, optimizer, RNG, epoch) and `resume_from` continues
    it under the same schedule: the weights and every reported number equal those of one uninterrupted
    training, bit for bit on the CPU (data order, augmentation draws and momentum included)."""
    data = tiny_data(n_train=10)
    fit = fitness(epochs=3, optimizer=optimizer, schedule="one-cycle", augment=True)
    whole_net = tiny_net()
    whole = train_model(whole_net, data, fit, seed=5)
    first_net = tiny_net()
    first = train_model(first_net, data, fit, seed=5, stop_after=1)
    assert first.state is not None and first.epochs == 1 and whole.state is None
    second_net = tiny_net(seed=99)  # other initial weights: the state must replace them
    rest = train_model(second_net, data, fit, seed=5, resume_from=first.state, stop_after=2)
    assert rest.epochs == 2 and rest.state is not None
    last_net = tiny_net(seed=98)
    last = train_model(last_net, data, fit, seed=5, resume_from=rest.state)
    assert last.state is None and last.epochs == 3
    for a, b in zip(whole_net.state_dict().values(), last_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert (last.val_accuracy, last.train_loss) == (whole.val_accuracy, whole.train_loss)
    over = train_model(tiny_net(), data, fit, seed=5, stop_after=7)
    assert over.epochs == 3, "a stop beyond the budget ends at the budget"


def test_a_seeded_model_depends_on_its_seed_alone_and_leaves_the_global_rng_as_it_was():
    from test_model import arch_of

    from nas.evaluate.trainer import seeded_model

    arch = arch_of([(2, 4)], in_ch=1, stem=4, classes=2, size=8)

    def flat(model: nn.Module) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = seeded_model(arch, 7)
    assert torch.equal(torch.random.get_rng_state(), before), "the global RNG is untouched"
    torch.manual_seed(456)  # another global state: the same network
    assert torch.equal(flat(a), flat(seeded_model(arch, 7)))
    assert not torch.equal(flat(a), flat(seeded_model(arch, 8)))
    assert sum(p.numel() for p in a.parameters()) > 0 and a(torch.zeros(2, 1, 8, 8)).shape == (2, 2)
