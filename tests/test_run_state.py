"""The checkpoint as a typed record: every field survives a save and a load, older files are migrated in one
place, and the budget that the loop and the async replay share counts alike for both."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nas.errors import UserError
from nas.run.budget import Budget
from nas.run.checkpoint import load_checkpoint, save_checkpoint
from nas.run.state import RunState, load_state, save_state_record


def state(**fields) -> RunState:
    base = {"strategy": {"rng": [1, 2]}, "architecture_base": {"channels": 3}, "config_sha256": "ab", "seed": 4}
    return RunState(**{**base, **fields})


def test_a_record_survives_a_save_and_a_load(tmp_path):
    saved = state(step=7, elapsed_seconds=1.5, stalled_steps=2, evaluations=9, inputs={"x": "y"},
                  async_target=5, async_position=9, async_lines=11)  # fmt: skip
    save_state_record(tmp_path, saved)
    assert load_state(tmp_path) == saved


def test_a_sync_record_writes_no_async_fields(tmp_path):
    save_state_record(tmp_path, state(step=3))
    data = json.loads((tmp_path / "checkpoint.json").read_text())
    assert "async_target" not in data and "async_position" not in data
    assert data["format"] == "nas-checkpoint/1" and data["step"] == 3


def test_an_older_checkpoint_is_migrated_in_one_place(tmp_path):
    """A checkpoint of the first layout (no seed, no position, no stall count) reads with the documented
    defaults: the config's seed, the async position at the finished evaluations."""
    save_checkpoint(tmp_path, {"step": 2, "strategy": {}, "config_sha256": "c", "architecture_base": {},
                               "evaluations": 6})  # fmt: skip
    got = load_state(tmp_path, default_seed=11)
    assert (got.seed, got.async_position, got.stalled_steps, got.elapsed_seconds) == (11, 6, 0, 0.0)


def test_fields_a_version_does_not_know_are_kept(tmp_path):
    save_checkpoint(tmp_path, {**state().to_dict(), "particle_note": [1]})
    again = load_state(tmp_path)
    save_state_record(tmp_path, again)
    assert load_checkpoint(tmp_path)["particle_note"] == [1]


def test_a_checkpoint_without_the_strategys_parts_is_one_line(tmp_path):
    save_checkpoint(tmp_path, {"step": 1, "strategy": {}})
    with pytest.raises(UserError, match="lacks architecture_base, config_sha256"):
        load_state(tmp_path)


@given(
    evaluations=st.none() | st.integers(0, 50),
    limit=st.none() | st.integers(0, 50),
    finished=st.integers(0, 60),
    new=st.integers(0, 60),
    target=st.integers(1, 40),
)
def test_the_budget_never_allows_past_either_cap(evaluations, limit, finished, new, target):
    budget = Budget(evaluations=evaluations, limit=limit, new=new)
    remaining = budget.remaining(finished)
    if evaluations is None and limit is None:
        assert remaining is None
    else:
        assert remaining is not None and remaining >= 0
        if evaluations is not None:
            assert finished + remaining <= max(evaluations, finished)
        if limit is not None:
            assert new + remaining <= max(limit, new)
    room = budget.room(target, finished)
    assert 0 <= room <= target
    assert budget.spent(finished) == (evaluations is not None and finished >= evaluations)
    if evaluations is not None:
        assert finished + room <= max(evaluations, finished)


def test_the_hours_budget_counts_earlier_invocations():
    assert Budget(hours=1.0, elapsed_before=3600.0).out_of_time()
    assert not Budget(hours=1.0, elapsed_before=3500.0).out_of_time()
    assert not Budget(elapsed_before=1e9).out_of_time()


def test_a_record_is_written_without_copying_the_strategy_state():
    """The async driver writes a checkpoint a second: a deep copy of a large strategy state on the way (what
    `dataclasses.asdict` makes) took it 60 ms each, time in which freed slots got no candidate."""
    saved = state(strategy={"population": [{"genome": [1, 2, 3]}] * 4})
    out = saved.to_dict()
    assert out["strategy"] is saved.strategy and out["architecture_base"] is saved.architecture_base
