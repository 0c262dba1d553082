"""One backbone of the transfer arm through the dataset's protocol, with the NAS arm's own code.

- Datasets with folds (BBBC021 leave-one-compound-out, BBBC014 cell lines; `nas.data.folds`): the folds,
  the aggregation and the metrics are `nas.evaluate.protocols.cross_validate`, the very function `nas train
  --cv` runs the searched networks through; here it gets a fresh fine-tuned backbone per fold instead. The
  class weights are recomputed on each fold's training labels.
- Every other dataset (CIFAR, SVHN, imagefolder, digits): train on the whole training split and report test
  accuracy, as `nas train --full` does for a searched network.

Training is always `nas.evaluate.trainer.train_model`. Every fold's network starts from the same ImageNet state
(read once) and its new head from the same seed, so folds differ only in their data.
"""

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.config import Config
from nas.data.dataset import ImageData
from nas.data.folds import Fold, count_folds, fold_protocols, iterate_folds
from nas.data.loading import load_dataset
from nas.errors import UserError
from nas.evaluate.protocols import cross_validate, plain, probability_columns
from nas.evaluate.trainer import train_model, training_split
from nas.transfer.classifier import build_classifier
from nas.transfer.plan import ModelRun, baseline_section
from nas.transfer.recipe import augmentation, class_weights, fitness_settings
from nas.transfer.results import ARM, paper_accuracy
from nas.transfer.weights import load_checked

Rows = list[dict[str, Any]]
TRAIN_TEST = "train-test"
FOLD_PROTOCOLS = {"bbbc021": "leave-one-compound-out", "bbbc014": "cell-line"}


class Arm:
    """The fine-tuning of one backbone, callable per dataset (or fold) the way the protocol wants it."""

    def __init__(self, config: Config, run: ModelRun, epochs: int | None, progress: bool):
        self.config = config
        self.section = baseline_section(config)
        self.run = run
        self.fitness = fitness_settings(self.section, epochs)
        self.progress = progress
        self.params = 0
        self.state: Mapping[str, torch.Tensor] | None = (
            load_checked(run.backbone, run.weights) if run.weights is not None else None
        )

    def model(self, data: ImageData) -> nn.Module:
        """A fresh network for `data`: ImageNet state, new head initialised from the config's seed."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            model = build_classifier(
                self.run.model, data.num_classes, data.in_channels, state=self.state, input_size=self.run.input_size
            )
        self.params = params_of(model)
        return model

    def fine_tune(self, model: nn.Module, data: ImageData) -> tuple[float | None, np.ndarray]:
        """Fine-tune every layer on the whole training split; (test accuracy, test probabilities)."""
        labels = training_split(data, True)[1]
        report = train_model(
            model,
            data,
            self.fitness,
            seed=self.config.seed,
            full=True,
            evaluate=("test",),
            augmentation=augmentation(self.section),
            class_weights=class_weights(self.section, labels, data.num_classes),
            keep_probs=True,
            progress=self.progress,
        )
        return report.test_accuracy, report.probs.get("test", np.zeros((0, data.num_classes)))

    def fold_factory(self, fold: Fold) -> nn.Module:
        return self.model(fold.data)

    def fold_train(self, model: nn.Module, fold: Fold) -> np.ndarray:
        return self.fine_tune(model, fold.data)[1]


def has_folds(config: Config) -> bool:
    """Whether the dataset defines a cross-validation protocol (BBBC021, BBBC014)."""
    return config.dataset.name in fold_protocols()


def params_of(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def labelled(rows: Rows, run: ModelRun) -> Rows:
    """Prediction rows led by the arm, backbone and initialisation, so a CSV is never read without them."""
    return [{"arm": ARM, "model": run.model, "init": run.init, **row} for row in rows]


def run_folds(arm: Arm) -> tuple[dict[str, Any], dict[str, Rows]]:
    """The dataset's folds through the shared `cross_validate`; (metrics, CSV rows by file stem)."""
    config = arm.config
    folds = iterate_folds(config.dataset, config.seed)
    report = cross_validate(folds, arm.fold_factory, arm.fold_train, total=count_folds(config.dataset))
    summary = report.to_dict()
    metrics = {
        "protocol": FOLD_PROTOCOLS.get(config.dataset.name, "folds"),
        "metric": f"{report.level}_accuracy",
        "accuracy": summary["accuracy"],
        "image_accuracy": summary["image_accuracy"],
        "level": report.level,
        "groups": summary["groups"],
        "images": summary["images"],
        "folds": summary["folds"],
        "class_names": summary["class_names"],
        "confusion": summary["confusion"],
        "class_accuracy": summary["class_accuracy"],
    }
    rows = {
        "predictions": labelled(report.image_rows, arm.run),
        f"{report.level}s": labelled(report.group_rows, arm.run),
    }
    return metrics, rows


def test_rows(data: ImageData, probs: np.ndarray) -> Rows:
    """One row per test image: index, true and predicted class, the class probabilities."""
    names = data.class_names
    rows = []
    for i, (y, p) in enumerate(zip(np.asarray(data.y_test), probs, strict=True)):
        guess = int(np.argmax(p))
        row = {"index": i, "true": names[int(y)], "predicted": names[guess], "correct": bool(plain(y) == guess)}
        rows.append({**row, **probability_columns(names, p)})
    return rows


def run_train_test(arm: Arm, data: ImageData) -> tuple[dict[str, Any], dict[str, Rows], nn.Module]:
    """Fine-tune on the whole training split, score the test split; (metrics, CSV rows by file stem, the
    fine-tuned network)."""
    if data.x_test is None or data.y_test is None or not len(data.y_test):
        raise UserError(f"dataset {arm.config.dataset.name!r} has no test split to report", "dataset.name")
    model = arm.model(data)
    accuracy, probs = arm.fine_tune(model, data)
    metrics = {
        "protocol": TRAIN_TEST,
        "metric": "test_accuracy",
        "accuracy": accuracy,
        "images": int(len(data.y_test)),
        "folds": [],
        "class_names": list(data.class_names),
    }
    return metrics, {"predictions": labelled(test_rows(data, probs), arm.run)}, model


def load_plain_data(config: Config) -> ImageData | None:
    """The dataset for the train-test protocol, loaded once for every backbone (None for fold datasets)."""
    return None if has_folds(config) else load_dataset(config.dataset, config.seed, full=True)


def run_arm(
    config: Config, run: ModelRun, *, epochs: int | None, progress: bool, data: ImageData | None = None
) -> tuple[dict[str, Any], dict[str, Rows], nn.Module | None]:
    """Fine-tune `run`'s backbone through the dataset's protocol; (metrics for metrics.json, CSV rows, the
    network fine-tuned on the whole training split). A fold protocol trains one network per fold, each blind to
    its fold's data, so it returns no network: none of them is the model of the whole dataset."""
    arm = Arm(config, run, epochs, progress)
    start = time.perf_counter()
    model = None
    if has_folds(config):
        metrics, rows = run_folds(arm)
    else:
        metrics, rows, model = run_train_test(arm, data if data is not None else load_plain_data(config))
    return describe(config, run, arm) | metrics | {"seconds": round(time.perf_counter() - start, 3)}, rows, model


def describe(config: Config, run: ModelRun, arm: Arm) -> dict[str, Any]:
    """The leading fields of metrics.json: who ran, initialised how, with which recipe."""
    section, fitness = arm.section, arm.fitness
    return {
        "arm": ARM,
        "model": run.model,
        "title": run.backbone.title,
        "init": run.init,
        "pretrained": run.weights is not None,
        "label": f"{run.backbone.title} ({run.init})",
        "weights": run.weights,
        "dataset": config.dataset.name,
        "config": config.name,
        "params": arm.params,
        "paper_accuracy": paper_accuracy(config.dataset.name, run.model),
        "seed": config.seed,
        "epochs": fitness.epochs,
        "batch_size": fitness.batch_size,
        "lr": fitness.lr,
        "momentum": fitness.momentum,
        "weight_decay": fitness.weight_decay,
        "input_size": run.input_size,
        "augmentation": augmentation(section),
        "class_weights": section.class_weights,
    }
