"""benchmarks/fidelity_surrogate.py: the flat tree walk predicts exactly what the gradient-boosted model it copies
predicts (the benchmark's rung values are that model's), missing values included; and the first compute at which
a curve reaches a target."""

import sys

import numpy as np
import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(ROOT))
fs = pytest.importorskip("benchmarks.fidelity_surrogate")

FEATURES = 5


def fitted() -> HistGradientBoostingRegressor:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, FEATURES))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values train each split's missing side
    y = np.nan_to_num(x[:, 0]) * 2 + np.sin(np.nan_to_num(x[:, 1])) + rng.normal(scale=0.1, size=200)
    model = HistGradientBoostingRegressor(max_iter=60, min_samples_leaf=5, random_state=0)
    with threadpool_limits(limits=1):
        return model.fit(x, y)


MODEL = fitted()
FLAT = fs.FlatTrees(MODEL)
THRESHOLDS = sorted({float(t) for t, leaf in zip(FLAT.threshold, FLAT.leaf, strict=True) if not leaf})
# a value at a split's threshold goes left (x <= threshold): drawn as often as any other value
values = st.one_of(st.floats(-4, 4, allow_nan=False), st.just(float("nan")), st.sampled_from(THRESHOLDS))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(values, min_size=FEATURES, max_size=FEATURES), min_size=1, max_size=20))
def test_the_flat_walk_predicts_what_the_model_predicts(rows):
    with threadpool_limits(limits=1):  # OpenMP threads spin against each other on a loaded machine
        expected = MODEL.predict(np.array(rows)).tolist()
    assert FLAT.predict(rows) == expected


@given(st.lists(st.floats(0, 1), min_size=1, max_size=50), st.floats(0, 1))
def test_first_reach_is_the_first_point_at_or_above_the_target(curve, target):
    reached = fs.first_reach(curve, target)
    if reached is None:
        assert all(v < target - 1e-12 for v in curve)
    else:
        assert curve[reached - 1] >= target - 1e-12
        assert all(v < target - 1e-12 for v in curve[: reached - 1])
