"""The evaluation log and the checkpoint files: durability and corruption handling on real files."""

import json

import pytest

from nas.errors import UserError
from nas.evaluate.result import Result
from nas.genome.genome import BlockGene, Genome
from nas.run.checkpoint import load_checkpoint, save_checkpoint
from nas.run.runlog import EvaluationLog, ranked, read_results


def genome(i: int) -> Genome:
    return Genome(blocks=(BlockGene(layers=1, growth_rate=i + 1, shortcuts="1"),))


def k(i: int) -> str:
    """The key of the i-th test genome (the log checks that a line's key is its genome's)."""
    return genome(i).key


def result(i: int, fitness: float | None = 0.5, params: int = 100) -> Result:
    status = "ok" if fitness is not None else "failed"
    return Result(key=k(i), genome=genome(i).to_dict(), status=status, fitness=fitness, params=params, step=0)


def test_log_round_trip_and_index(tmp_path):
    path = tmp_path / "evaluations.jsonl"
    log = EvaluationLog(path)
    for i in range(5):
        log.append(result(i, fitness=i / 10))
    log.close()
    again = EvaluationLog(path)
    assert len(again) == 5 and again.get(k(3)).fitness == 0.3 and k(9) not in again
    assert [r.key for r in again] == [k(i) for i in range(5)]
    again.close()


def test_torn_last_line_is_skipped_with_a_warning_and_cut(tmp_path, caplog):
    path = tmp_path / "evaluations.jsonl"
    log = EvaluationLog(path)
    log.append(result(0))
    log.append(result(1))
    log.close()
    whole = path.read_bytes()
    path.write_bytes(whole + result(2).to_json().encode()[:25])
    again = EvaluationLog(path)
    assert len(again) == 2
    assert "incomplete" in caplog.text
    again.append(result(3))
    again.close()
    assert [r.key for r in read_results(path)] == [k(0), k(1), k(3)]


def test_garbled_middle_line_is_an_error(tmp_path):
    path = tmp_path / "evaluations.jsonl"
    path.write_text(result(0).to_json() + "\n{garbage\n" + result(1).to_json() + "\n")
    with pytest.raises(UserError, match="line 2"):
        EvaluationLog(path)


def test_ranking_is_fitness_then_params_then_key():
    rs = [result(1, 0.9, 500), result(2, 0.9, 100), result(3, None), result(4, 0.8, 10), result(0, 0.9, 100)]
    assert [r.key for r in ranked(rs)] == [*sorted([k(0), k(2)]), k(1), k(4)]  # a tie goes by key


def test_checkpoint_keeps_previous_and_falls_back(tmp_path, caplog):
    save_checkpoint(tmp_path, {"step": 1, "strategy": {"a": 1}})
    save_checkpoint(tmp_path, {"step": 2, "strategy": {"a": 2}})
    assert json.loads((tmp_path / "checkpoint.prev.json").read_text())["step"] == 1
    assert load_checkpoint(tmp_path)["step"] == 2
    (tmp_path / "checkpoint.json").write_text('{"format": "nas-checkpoint/1", "step": 2, "str')
    assert load_checkpoint(tmp_path)["step"] == 1
    assert "falling back" in caplog.text


def test_both_checkpoints_bad_is_an_error_and_touches_nothing(tmp_path):
    (tmp_path / "checkpoint.json").write_text("garbage")
    (tmp_path / "checkpoint.prev.json").write_bytes(b"\x00\xff")
    with pytest.raises(UserError, match="both"):
        load_checkpoint(tmp_path)
    assert (tmp_path / "checkpoint.json").read_text() == "garbage"
    assert (tmp_path / "checkpoint.prev.json").read_bytes() == b"\x00\xff"


def test_staged_checkpoint_is_used_after_a_crash_between_renames(tmp_path):
    save_checkpoint(tmp_path, {"step": 1, "strategy": {}})
    save_checkpoint(tmp_path, {"step": 2, "strategy": {}})
    # a crash after moving checkpoint.json aside and before renaming the staged file into place
    (tmp_path / "checkpoint.json").rename(tmp_path / ".checkpoint.json.new")
    assert load_checkpoint(tmp_path)["step"] == 2
