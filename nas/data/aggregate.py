"""Prediction aggregation for grouped protocols (BBBC021 treatments, BBBC014 wells): one implementation.

Both arms (the searched networks and the transfer baseline) score through `grouped_accuracy`, so their
figures are comparable by construction. Groups are an (N, levels) integer array, fine to coarse: for BBBC021
(well, treatment): the softmax of the crops and fields of a well is reduced by the median, then the well
profiles of a treatment by the median again, and the treatment's class is the argmax (Kensert et al. 2019).
BBBC014 reduces the tiles of a well by the mean instead (`reduce="mean"`): with two classes the argmax of the
mean is the decision "mean probability of the class >= 0.5", except at an exact tie, which goes to class 0.
"""

from typing import Literal

import numpy as np

Reduce = Literal["median", "mean"]
REDUCERS = {"median": np.median, "mean": np.mean}


def aggregate_groups(
    probs: np.ndarray, labels: np.ndarray, groups: np.ndarray, reduce: Reduce = "median"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reduce `probs` level by level; return (top-level group id, probabilities, label) per top-level group.

    Groups come out in ascending id order. Every member of a group must share its label; the label of a group
    is its members' label.
    """
    reducer = REDUCERS[reduce]
    if len(probs) == 0:  # before the reshape: numpy cannot infer the -1 of an empty (0, levels) array
        return np.zeros(0, dtype=np.int64), np.asarray(probs), np.asarray(labels)
    groups = np.asarray(groups).reshape(len(probs), -1)
    p, y, g = np.asarray(probs, dtype=np.float64), np.asarray(labels), groups
    for level in range(groups.shape[1]):
        ids, first, inverse = np.unique(g[:, level], return_index=True, return_inverse=True)
        p = np.stack([reducer(p[inverse == i], axis=0) for i in range(len(ids))])
        y = y[first]
        g = g[first]
    return g[:, -1], p, y


def aggregate(
    probs: np.ndarray, labels: np.ndarray, groups: np.ndarray, reduce: Reduce = "median"
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce `probs` level by level (median by default); return (probabilities, label) per top-level group."""
    _, p, y = aggregate_groups(probs, labels, groups, reduce)
    return p, y


def grouped_accuracy(
    probs: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, reduce: Reduce = "median"
) -> float:
    """Accuracy of argmax predictions, after aggregation over `groups` when given."""
    if groups is not None:
        probs, labels = aggregate(probs, labels, groups, reduce)
    if len(labels) == 0:
        return float("nan")
    return float(np.mean(np.argmax(probs, axis=1) == np.asarray(labels)))
