"""Learning-rate schedules: each hits its values at the right epochs, for budgets that do and do not divide."""

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nas.config import FitnessConfig
from nas.evaluate.schedules import cosine_between, learning_rate
from nas.evaluate.trainer import schedule_values

lrs = st.floats(1e-4, 1.0)
budgets = st.integers(1, 120)
value_lists = st.lists(st.floats(1e-5, 1.0), min_size=1, max_size=6, unique=True)


def per_epoch(values: list[float], epochs: int) -> list[float]:
    return [learning_rate("step", 1.0, e, epochs, values=values) for e in range(epochs)]


@pytest.mark.parametrize(
    ("epochs", "expected"),
    [
        (3, [0.1, 0.01, 0.001]),
        (6, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]),
        (10, [0.1] * 4 + [0.01] * 3 + [0.001] * 3),
        (4, [0.1, 0.1, 0.01, 0.001]),
        (5, [0.1, 0.1, 0.01, 0.01, 0.001]),
        (2, [0.1, 0.01]),
        (1, [0.1]),
    ],
)
def test_step_spreads_values_evenly_over_the_budget(epochs, expected):
    assert per_epoch([0.1, 0.01, 0.001], epochs) == expected


def test_step_defaults_to_lr_then_tenth_then_hundredth():
    assert [learning_rate("step", 0.2, e, 3) for e in range(3)] == pytest.approx([0.2, 0.02, 0.002])


@given(value_lists, budgets)
def test_step_holds_each_value_for_floor_or_ceil_epochs_in_order(values, epochs):
    seen = [learning_rate("step", 1.0, e + 0.5, epochs, values=values) for e in range(epochs)]
    assert seen[0] == values[0]
    indices = [min(i for i, v in enumerate(values) if v == s) for s in seen]
    assert all(a <= b for a, b in zip(indices, indices[1:], strict=False)), "values are walked in order"
    if epochs >= len(values):
        assert seen[-1] == values[-1]
        n = len(values)
        lengths = [Counter(seen)[v] for v in values]  # epochs each value was seen for, read from the schedule
        assert set(lengths) <= {epochs // n, math.ceil(epochs / n)} and sum(lengths) == epochs
        starts = [seen.index(v) for v in values]
        assert starts == [math.ceil(k * epochs / n) for k in range(n)], "value k starts at epoch ceil(k E / n)"


@given(value_lists, budgets, st.floats(0, 0.999))
def test_step_is_constant_within_an_epoch(values, epochs, frac):
    for e in range(min(epochs, 5)):
        assert learning_rate("step", 1.0, e + frac, epochs, values=values) == learning_rate(
            "step", 1.0, e, epochs, values=values
        )


@given(lrs, budgets)
def test_cosine_runs_from_lr_to_zero_through_half(lr, epochs):
    assert learning_rate("cosine", lr, 0, epochs) == pytest.approx(lr)
    assert learning_rate("cosine", lr, epochs / 2, epochs) == pytest.approx(lr / 2)
    assert learning_rate("cosine", lr, epochs, epochs) == pytest.approx(0, abs=1e-12)
    points = [learning_rate("cosine", lr, e, epochs) for e in range(epochs + 1)]
    assert all(a >= b for a, b in zip(points, points[1:], strict=False))


@given(lrs, budgets, st.floats(0.05, 0.9))
def test_one_cycle_warms_up_to_the_peak_then_anneals(lr, epochs, warmup):
    def at(t: float) -> float:
        return learning_rate("one-cycle", lr, t, epochs, warmup_fraction=warmup)

    assert at(0) == pytest.approx(lr / 25)
    assert at(warmup * epochs) == pytest.approx(lr)
    assert at(epochs) == pytest.approx(lr / 25 / 1e4)
    rising = [at(warmup * epochs * i / 10) for i in range(11)]
    falling = [at(warmup * epochs + (1 - warmup) * epochs * i / 10) for i in range(11)]
    assert all(a <= b + 1e-15 for a, b in zip(rising, rising[1:], strict=False))
    assert all(a >= b - 1e-15 for a, b in zip(falling, falling[1:], strict=False))
    assert max(rising + falling) <= lr * (1 + 1e-12)


@given(lrs, budgets, st.floats(0, 200))
def test_constant_is_constant(lr, epochs, t):
    assert learning_rate("constant", lr, t, epochs) == lr


def test_unknown_schedule_and_empty_budget_are_refused():
    with pytest.raises(ValueError, match=r"unknown schedule 'triangle' \(known: step, cosine, one-cycle, constant\)"):
        learning_rate("triangle", 0.1, 0, 3)
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        learning_rate("cosine", 0.1, 0, 0)


@given(value_lists, budgets, st.floats(0, 50))
def test_past_the_budget_every_schedule_stays_at_its_end(values, epochs, extra):
    """A training that runs past its budget (t > epochs) keeps the last value rather than wrapping around."""
    t = epochs + 1 + extra
    last = learning_rate("step", 1.0, epochs - 1, epochs, values=values)
    assert learning_rate("step", 1.0, t, epochs, values=values) == last
    assert last == values[-1] or epochs < len(values)
    assert learning_rate("cosine", 0.5, t, epochs) == pytest.approx(0, abs=1e-15)
    assert learning_rate("one-cycle", 0.5, t, epochs, warmup_fraction=0.2) == pytest.approx(0.5 / 25 / 1e4)
    assert learning_rate("step", 1.0, -3, epochs, values=values) == values[0], "before the start: the first value"


def test_one_cycle_peaks_at_thirty_percent_by_default():
    """PyTorch's OneCycleLR default pct_start is 0.3: the peak is reached 3 epochs into 10."""
    assert learning_rate("one-cycle", 1.0, 3, 10) == pytest.approx(1.0)
    assert learning_rate("one-cycle", 1.0, 1.5, 10) == pytest.approx((1.0 + 1.0 / 25) / 2)


def test_one_cycle_with_all_warm_up_or_none():
    assert learning_rate("one-cycle", 1.0, 4, 4, warmup_fraction=1.0) == pytest.approx(1 / 25 / 1e4)
    assert learning_rate("one-cycle", 1.0, 2, 4, warmup_fraction=1.0) == pytest.approx((1.0 + 1.0 / 25) / 2)
    assert learning_rate("one-cycle", 1.0, 0, 4, warmup_fraction=0.0) == pytest.approx(1.0)


def test_cosine_between_holds_its_ends_outside_zero_to_one():
    assert cosine_between(2.0, 1.0, 1.5) == 1.0 and cosine_between(2.0, 1.0, -0.5) == 2.0
    assert cosine_between(2.0, 1.0, 0.5) == pytest.approx(1.5)


@given(value_lists, lrs)
def test_a_genome_learning_rate_rescales_the_step_values_keeping_their_shape(values, lr):
    fitness = FitnessConfig(schedule="step", lr_values=values)
    scaled = schedule_values(fitness, lr)
    assert scaled[0] == pytest.approx(lr)
    assert [s / scaled[0] for s in scaled] == pytest.approx([v / values[0] for v in values])
    assert schedule_values(fitness, None) == values
