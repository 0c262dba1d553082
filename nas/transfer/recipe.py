"""The fine-tuning recipe of Kensert et al. (2019), expressed as the shared trainer's settings.

The paper fine-tunes every layer with plain SGD (momentum 0.9, no Nesterov), a small constant learning rate
for a few epochs on small batches, augments with the 8 rotations and mirror images of the square (the images
have no orientation), and weighs the loss by inverse class frequency because mechanism-of-action classes are
unbalanced. The defaults of the `baseline` section (5 epochs, batch 16, lr 1e-3, momentum 0.9, no weight
decay, rotations on, balanced weights) follow it, and each is overridable there. The arm trains through the
very trainer the NAS arm uses (`nas.evaluate.trainer.train_model`); this module only says how.
"""

import numpy as np

from nas.config import BaselineConfig, FitnessConfig

EVAL_BATCH_FACTOR = 2


def fitness_settings(section: BaselineConfig, epochs: int | None = None) -> FitnessConfig:
    """The trainer settings for the arm: SGD with momentum, constant learning rate, `epochs` when given.

    The evaluation batch is only twice the training batch, since these networks at 299 px need far more memory
    a sample than the small searched ones the default `eval_batch_size` is sized for.
    """
    return FitnessConfig(
        objective="train",
        epochs=epochs or section.epochs,
        batch_size=section.batch_size,
        eval_batch_size=EVAL_BATCH_FACTOR * section.batch_size,
        optimizer="sgd",
        lr=section.lr,
        momentum=section.momentum,
        nesterov=False,
        weight_decay=section.weight_decay,
        schedule="constant",
        label_smoothing=0.0,
        augment=True,
        device=section.device,
    )


def augmentation(section: BaselineConfig) -> str:
    """The trainer's augmentation: the 8 dihedral transforms (4 rotations x mirror) with `rotations`, else the
    NAS arm's standard random crop and horizontal mirror (`crop-flip`), for natural images such as CIFAR, which
    have an up; so that on CIFAR both arms see the same augmentation."""
    return "dihedral" if section.rotations else "crop-flip"


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """scikit-learn's "balanced" weights n / (k * count_c) over the classes present; an absent class gets 0
    (it has no samples to weigh, e.g. when a fold holds out a whole class's compounds)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def class_weights(section: BaselineConfig, labels: np.ndarray, num_classes: int) -> np.ndarray | None:
    """The loss weights for one training set, or None when `class_weights: none`."""
    return balanced_class_weights(labels, num_classes) if section.class_weights == "balanced" else None
