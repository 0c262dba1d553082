"""Prediction aggregation for grouped protocols, by hand-worked examples: the median (or mean) of a well's
images, then of a treatment's wells, and the argmax."""

import math

import numpy as np
import pytest

from nas.data.aggregate import aggregate, aggregate_groups, grouped_accuracy

# Five images: wells 7 (3 images) and 3 (1 image) of treatment 20, well 5 (1 image) of treatment 10.
PROBS = np.array(
    [
        [0.95, 0.05],  # well 7
        [0.35, 0.65],  # well 7
        [0.4, 0.6],  # well 7
        [0.7, 0.3],  # well 3
        [0.1, 0.9],  # well 5
    ]
)
LABELS = np.array([0, 0, 0, 0, 1])
GROUPS = np.array([[7, 20], [7, 20], [7, 20], [3, 20], [5, 10]])


def test_median_of_images_then_median_of_wells():
    ids, probs, labels = aggregate_groups(PROBS, LABELS, GROUPS)
    # Well medians: 7 -> (0.4, 0.6), 3 -> (0.7, 0.3), 5 -> (0.1, 0.9). Treatment 20 = median of wells 3 and 7 =
    # (0.55, 0.45); treatment 10 = well 5. Treatments come out in ascending id order.
    assert ids.tolist() == [10, 20]
    assert probs == pytest.approx(np.array([[0.1, 0.9], [0.55, 0.45]]))
    assert labels.tolist() == [1, 0]
    # The per-image argmax gets 3 of 5 right, the treatment argmax both.
    assert grouped_accuracy(PROBS, LABELS, None) == pytest.approx(0.6)
    assert grouped_accuracy(PROBS, LABELS, GROUPS) == 1.0


def test_mean_of_images_when_the_protocol_says_mean():
    ids, probs, labels = aggregate_groups(PROBS, LABELS, GROUPS[:, :1], reduce="mean")
    # Wells in ascending order 3, 5, 7; well 7 is the mean of its three images, (1.7 / 3, 1.3 / 3): class 0,
    # where its median (0.4, 0.6) says class 1.
    assert ids.tolist() == [3, 5, 7]
    assert probs == pytest.approx(np.array([[0.7, 0.3], [0.1, 0.9], [1.7 / 3, 1.3 / 3]]))
    assert labels.tolist() == [0, 1, 0]
    assert grouped_accuracy(PROBS, LABELS, GROUPS[:, :1], "mean") == 1.0
    assert grouped_accuracy(PROBS, LABELS, GROUPS[:, :1]) == pytest.approx(2 / 3), "the median by default"
    p, y = aggregate(PROBS, LABELS, GROUPS[:, :1])
    assert p[2] == pytest.approx([0.4, 0.6]) and y.tolist() == [0, 1, 0], "the median by default"
    assert aggregate(PROBS, LABELS, GROUPS[:, :1], "mean")[0][2] == pytest.approx([1.7 / 3, 1.3 / 3])


def test_probabilities_are_reduced_in_float64_and_one_group_has_an_accuracy():
    _, probs, _ = aggregate_groups(PROBS.astype(np.float32), LABELS, GROUPS)
    assert probs.dtype == np.float64
    assert grouped_accuracy(PROBS[:1], LABELS[:1], None) == 1.0
    assert grouped_accuracy(PROBS[1:2], LABELS[1:2], GROUPS[1:2]) == 0.0


def test_one_level_groups_may_be_a_flat_array():
    flat = aggregate_groups(PROBS, LABELS, GROUPS[:, 0])
    nested = aggregate_groups(PROBS, LABELS, GROUPS[:, :1])
    assert all(np.array_equal(a, b) for a, b in zip(flat, nested, strict=True))


def test_empty_predictions():
    ids, probs, labels = aggregate_groups(np.zeros((0, 2)), np.zeros(0, dtype=int), np.zeros((0, 2), dtype=int))
    assert ids.shape == (0,) and ids.dtype == np.int64 and probs.shape == (0, 2) and labels.shape == (0,)
    assert math.isnan(grouped_accuracy(np.zeros((0, 2)), np.zeros(0, dtype=int), None))
    assert math.isnan(grouped_accuracy(np.zeros((0, 2)), np.zeros(0, dtype=int), np.zeros((0, 1), dtype=int)))
