"""benchmarks/inherit_quality.py: a child stays inside the space and within the distance bound of its parent,
and an additive child only adds, so that the transplant keeps its parent's function."""

import random
import sys

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.genome.architecture import Architecture
from nas.genome.relatedness import distance, links
from nas.genome.space import load_space
from nas.model.inherit import transplant
from nas.model.network import build_model
from nas.strategies.random_search import random_genome

sys.path.insert(0, str(ROOT))
iq = pytest.importorskip("benchmarks.inherit_quality")

SPACE = load_space(ROOT / "encodings" / "densenet_bench.yaml")
seeds = st.integers(0, 2**32 - 1)


@given(seeds, seeds, st.booleans())
def test_a_child_lies_in_the_space_within_the_distance_bound(parent_seed, child_seed, additive):
    parent = random_genome(SPACE, random.Random(parent_seed))
    child, kind = iq.child_of(parent, SPACE, random.Random(child_seed), additive)
    assert kind in iq.MUTATIONS
    assert 0 < distance(parent, child) <= iq.MAX_DISTANCE
    for block, (low, high), (g_low, g_high) in zip(child.blocks, SPACE.layers, SPACE.growth_rate, strict=True):
        assert low <= block.layers <= high and g_low <= block.growth_rate <= g_high


@given(seeds, seeds)
def test_an_additive_child_keeps_every_link_and_channel_of_its_parent(parent_seed, child_seed):
    parent = random_genome(SPACE, random.Random(parent_seed))
    child, _ = iq.child_of(parent, SPACE, random.Random(child_seed), additive=True)
    for p, c in zip(parent.blocks, child.blocks, strict=True):
        assert links(p) <= links(c)
        assert c.growth_rate >= p.growth_rate and c.layers >= p.layers


@settings(max_examples=8, deadline=None)
@given(seeds, seeds)
def test_the_transplant_preserves_the_function_of_an_additive_child(parent_seed, child_seed):
    parent = random_genome(SPACE, random.Random(parent_seed))
    child, _ = iq.child_of(parent, SPACE, random.Random(child_seed), additive=True)
    p_arch, c_arch = (Architecture.from_space(SPACE, g, 3, 10, 16) for g in (parent, child))
    _, record = transplant(p_arch, build_model(p_arch).state_dict(), c_arch)
    assert record.preserves_function, record.reasons
