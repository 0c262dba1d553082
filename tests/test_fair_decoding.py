"""Decoding is fair at the range ends: a uniform particle position (the initial swarm, `random`) decodes to
every integer value of a range, the two ends included, equally often."""

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nas.genome.space import Dimension, parse_space
from nas.strategies import swarm

SPACE = parse_space(
    {
        "format": "nas-search-space/1",
        "stem_channels": 8,
        "bottleneck_width": 4,
        "compression": 0.5,
        "blocks": [{"layers": [2, 12], "growth_rate": [4, 6]}],
    },
    "fair",
)
DRAWS = 44_000


def assert_uniform(counts: Counter, values: range) -> None:
    expected = DRAWS / len(values)
    assert set(counts) == set(values)
    for value in values:  # 4000 expected per value: a fair die stays within 8% (5 standard deviations)
        assert abs(counts[value] - expected) < 0.08 * expected, (value, counts[value], expected)


@pytest.mark.parametrize("source", ["random_position", "swarm_spawn"])
def test_range_ends_are_drawn_as_often_as_inner_values(source):
    rng = random.Random(0)
    dims = SPACE.dimensions
    layers, growth = Counter(), Counter()
    for _ in range(DRAWS):
        if source == "random_position":
            position = SPACE.random_position(rng)
        else:
            position = list(swarm.spawn(dims, 0.2, rng).position)
        ((n, g),), _ = SPACE.decode(position)
        layers[n] += 1
        growth[g] += 1
    assert_uniform(layers, range(2, 13))
    assert_uniform(growth, range(4, 7))


@given(st.integers(-50, 50), st.integers(0, 20), st.floats(-1, 1))
def test_every_position_in_the_span_decodes_inside_the_range_and_integers_decode_to_themselves(low, width, t):
    dim = Dimension("d", low, low + width)
    span_low, span_high = dim.span
    x = span_low + (t + 1) / 2 * (span_high - span_low)
    assert dim.low <= dim.value(x) <= dim.high
    assert all(dim.value(float(v)) == v for v in range(low, low + width + 1))
