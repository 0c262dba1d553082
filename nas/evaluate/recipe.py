"""The NAS arm's augmentation and loss weights per dataset: `fitness.augmentation` and `fitness.class_weights`.

On the cell-profiling sets the transfer arm (`nas.transfer.recipe`, after Kensert et al. 2019) augments with the
8 symmetries of the square and weighs the loss by inverse class frequency; so that `nas report` compares like
with like, the searched networks use the same recipe there by default (`auto`): `dihedral` and `balanced` on
`bbbc021` and `bbbc014`, the CIFAR recipe (`crop-flip`, unweighted) elsewhere. Either key may name its choice
explicitly; `fitness.augment: false` turns augmentation off whatever `augmentation` says.
"""

from typing import Any

import numpy as np

from nas.config import FitnessConfig
from nas.data.dataset import ImageData
from nas.evaluate.augment import Augmentation
from nas.transfer.recipe import balanced_class_weights

MICROSCOPY = ("bbbc021", "bbbc014")


def augmentation_for(fitness: FitnessConfig, dataset: str) -> Augmentation:
    """The augmentation the trainer applies to training batches."""
    if not fitness.augment:
        return "none"
    if fitness.augmentation != "auto":
        return fitness.augmentation
    return "dihedral" if dataset in MICROSCOPY else "crop-flip"


def weighting_for(fitness: FitnessConfig, dataset: str) -> str:
    """`balanced` or `none`, with `auto` resolved for the dataset."""
    if fitness.class_weights != "auto":
        return fitness.class_weights
    return "balanced" if dataset in MICROSCOPY else "none"


def recipe(fitness: FitnessConfig, dataset: str, data: ImageData, full: bool = False) -> dict[str, Any]:
    """The `augmentation` and `class_weights` arguments of `train_model` for a training on `data`."""
    weights = None
    if weighting_for(fitness, dataset) == "balanced":
        labels = data.y_train if not full or data.y_val is None else np.concatenate([data.y_train, data.y_val])
        weights = balanced_class_weights(labels, data.num_classes)
    return {"augmentation": augmentation_for(fitness, dataset), "class_weights": weights}
