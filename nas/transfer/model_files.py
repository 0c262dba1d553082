"""The fine-tuned network of one backbone as a model folder `nas predict` runs: `model.pt2` and `preprocess.json`.

The same two files `nas train --save` writes (`nas.model.program`, `nas.model.preprocess`), beside the backbone's
`metrics.json` in `RUN_DIR/baseline/<model>/`, so that `nas predict RUN_DIR/baseline/resnet50 IMAGES...` runs the
network whose test accuracy `metrics.json` reports. The program takes images at the size the dataset stores them
(`preprocess.json`'s `input_size`) in the user's units; the resize to the backbone's 224 or 299 px and the
channel mapping are inside it (`TransferClassifier`), as they were in training. `preprocess.json` records
`weights: {"source": "transfer", "epochs": E, "test_accuracy": A}` and, in its notes, the backbone and whether it
started from ImageNet or from scratch.

Each file is written by temp file and rename; `metrics.json` is written after them (`nas.transfer.command`), so a
backbone folder whose `metrics.json` is there holds its model files too.
"""

from pathlib import Path
from typing import Any

from torch import nn

from nas.config import Config
from nas.data.dataset import ImageData
from nas.model.preprocess import FILENAME, Preprocess, preprocess_of, save_preprocess
from nas.model.program import save_program
from nas.transfer.results import model_dir

PROGRAM = "model.pt2"
SOURCE = "transfer"


def transfer_preprocess(config: Config, data: ImageData, metrics: dict[str, Any]) -> Preprocess:
    """The input contract of the fine-tuned network, with how it was trained and what it started from."""
    pre = preprocess_of(config.dataset, data)
    pre.weights = {"source": SOURCE, "epochs": metrics["epochs"]}
    if metrics.get("accuracy") is not None:
        pre.weights["test_accuracy"] = metrics["accuracy"]
    start = "ImageNet weights" if metrics["pretrained"] else "random weights (from scratch)"
    pre.notes.append(f"network: {metrics['title']} from {start}, every layer fine-tuned by nas baseline; it "
                     f"resizes its input to {metrics['input_size']} px inside")  # fmt: skip
    return pre


def save_model_files(
    run_dir: str | Path, network: nn.Module, config: Config, data: ImageData, metrics: dict[str, Any]
) -> Path:
    """Write `model.pt2` and `preprocess.json` into `RUN_DIR/baseline/<model>/`; returns that folder."""
    folder = model_dir(run_dir, metrics["model"])
    folder.mkdir(parents=True, exist_ok=True)
    pre = transfer_preprocess(config, data, metrics)
    save_program(network, pre, folder / PROGRAM)
    save_preprocess(pre, folder / FILENAME)
    return folder
