"""Prediction aggregation for grouped protocols (BBBC021 treatments, BBBC014 wells): one implementation.

Both arms (the searched networks and the transfer baseline) score through `grouped_accuracy`, so their
figures are comparable by construction. Groups are an (N, levels) integer array, fine to coarse: for BBBC021
(well, treatment): the softmax of the crops and fields of a well is reduced by the median, then the well
profiles of a treatment by the median again, and the treatment's class is the argmax (Kensert et al. 2019).
"""

import numpy as np


def aggregate(probs: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median-reduce `probs` level by level; return (probabilities, label) per top-level group.

    Every member of a group must share its label; the label of a group is its members' label.
    """
    groups = np.asarray(groups).reshape(len(probs), -1)
    p, y, g = np.asarray(probs, dtype=np.float64), np.asarray(labels), groups
    for level in range(groups.shape[1]):
        ids, first, inverse = np.unique(g[:, level], return_index=True, return_inverse=True)
        p = np.stack([np.median(p[inverse == i], axis=0) for i in range(len(ids))])
        y = y[first]
        g = g[first]
    return p, y


def grouped_accuracy(probs: np.ndarray, labels: np.ndarray, groups: np.ndarray | None) -> float:
    """Accuracy of argmax predictions, after aggregation over `groups` when given."""
    if groups is not None:
        probs, labels = aggregate(probs, labels, groups)
    if len(labels) == 0:
        return float("nan")
    return float(np.mean(np.argmax(probs, axis=1) == np.asarray(labels)))
