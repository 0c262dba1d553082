"""Stratified, seeded index splits: the validation carve-out, the training subset, digits' fixed test split.

One rule everywhere: a fraction f of N labelled items is round(f N) items, shared among the classes in
proportion to their sizes by the largest-remainder method (ties to the lower class id), each class's share drawn
uniformly without replacement by a NumPy generator seeded with `seed`. So every class keeps its proportion to
within one item, the split is a pure function of (labels, fraction, seed), and indices come back sorted, which
keeps the arrays in their original order.
"""

import numpy as np


def class_quota(counts: np.ndarray, fraction: float, keep_one: bool = False) -> np.ndarray:
    """How many items of each class to pick so that the total is round(fraction * N), proportionally.

    With `keep_one`, no class gives away its last item (a validation carve must leave every class in training);
    the total may then fall short of round(fraction * N).
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(np.floor(fraction * counts.sum() + 0.5))
    exact = fraction * counts.astype(np.float64)
    quota = np.minimum(np.floor(exact).astype(np.int64), counts)
    remainder = exact - quota
    order = np.lexsort((np.arange(len(counts)), -remainder))
    short = total - int(quota.sum())
    for c in order:
        if short <= 0:
            break
        if quota[c] < counts[c]:
            quota[c] += 1
            short -= 1
    if keep_one:
        quota = np.minimum(quota, np.maximum(counts - 1, 0))
    return quota


def stratified_pick(
    labels: np.ndarray, fraction: float, seed: int, keep_one: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of `labels` into (picked, rest): a stratified `fraction` picked at random by `seed`."""
    labels = np.asarray(labels)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    classes, inverse = np.unique(labels, return_inverse=True)
    quota = class_quota(np.bincount(inverse, minlength=len(classes)), fraction, keep_one)
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        picked.append(rng.choice(members, size=int(quota[c]), replace=False))
    chosen = np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
    mask = np.zeros(len(labels), dtype=bool)
    mask[chosen] = True
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: the validation `fraction` carved by `seed`, every class kept in training."""
    val, train = stratified_pick(labels, fraction, seed, keep_one=True)
    return train, val


SUBSET_SEED = 0


def training_subset(labels: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the stratified training subset `dataset.train_subset`, drawn with a fixed seed.

    The subset is part of the task's definition, not of a run: runs with different seeds compare on the same
    images (only the validation carve follows the run's seed), and the decoded cache is shared among them.
    """
    if fraction >= 1.0:
        return np.arange(len(labels))
    picked, _ = stratified_pick(labels, fraction, SUBSET_SEED)
    return picked
