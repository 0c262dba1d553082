"""The Python way to use a model folder (`nas export`, `nas train --save`): `load_model` and `predict`.

    model = load_model("runs/demo/export")
    model.predict(["cat.png", "dog.png"])        # [("cat", 0.93), ("dog", 0.88)]
    model(np_images)                             # (N, classes) probabilities

A model folder is loaded exactly as `nas predict` loads it (`nas.predict.model_file.load_model`: `model.pt2`,
else an earlier `model.ts`, else `model.onnx`, each checked against its `preprocess.json`), and images go through
the same decoding and resizing (`nas.predict.inputs`), so a prediction here is the one the command line gives.
Images are paths (image files, `.npy` files, folders searched recursively, a config's test split) or numpy
arrays in the model's input units (`preprocess.json`: uint8 pixels for image datasets, scikit-learn's 0-16
floats for digits): one image (H, W) or (C, H, W), a batch (N, C, H, W), or a list of them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import UserError
from nas.model.preprocess import Preprocess
from nas.predict.command import predict_items
from nas.predict.inputs import Item, as_images, gather
from nas.predict.model_file import ModelFile
from nas.predict.model_file import load_model as load_model_file

Images = str | Path | np.ndarray | Sequence[Any]


@dataclass
class Model:
    """A loaded model folder: call it on images for class probabilities, or `predict` for (class, probability)."""

    file: ModelFile
    batch_size: int = 256

    @property
    def preprocess(self) -> Preprocess:
        return self.file.preprocess

    @property
    def class_names(self) -> list[str]:
        return list(self.file.preprocess.class_names)

    def __call__(self, images: Images) -> np.ndarray:
        """Class probabilities, (N, classes) in `class_names` order, one row per image of `images`."""
        return predict_items(self.file, items_of(images, self.file.preprocess), self.batch_size)

    def predict(self, images: Images) -> list[tuple[str, float]]:
        """(predicted class name, its probability) for each image of `images`, in order."""
        probs = self(images)
        best = np.argmax(probs, axis=1)
        return [(self.class_names[i], float(p[i])) for i, p in zip(best, probs, strict=True)]


def items_of(images: Images, pre: Preprocess) -> list[Item]:
    """The images of `images` (paths, arrays or a list of either) as `nas predict` items, in order."""
    if isinstance(images, str | Path):
        return gather([str(images)], pre).items
    if isinstance(images, np.ndarray):
        x = as_images(images, pre, "the array")
        return [Item(f"array[{i}]", None, lambda i=i: x[i]) for i in range(len(x))]
    if isinstance(images, Sequence):
        return [item for one in images for item in items_of(one, pre)]
    raise UserError(f"images must be paths or numpy arrays, not {type(images).__name__}")


def load_model(model_dir: str | Path, model_format: str = "auto", batch_size: int = 256) -> Model:
    """The model of a folder written by `nas export` or `nas train --save` (or of one model file in it)."""
    return Model(load_model_file(model_dir, model_format), batch_size)


def predict(model: str | Path | Model, images: Images) -> list[tuple[str, float]]:
    """(predicted class name, its probability) for each image, by the model folder `model` (or a loaded one)."""
    loaded = model if isinstance(model, Model) else load_model(model)
    return loaded.predict(images)
