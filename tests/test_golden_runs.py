"""Every golden run (tests/golden_runs.py) gives its recorded log, final strategy state and best to the last digit:
a change to the search loop that changes a search fails here, case by case."""

import json

import pytest
from golden_runs import GOLDEN, cases, run_case

CASES = cases()


def test_every_case_has_a_recording_and_every_recording_a_case():
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_search_gives_its_golden_run(name, tmp_path):
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    got = json.loads(json.dumps(run_case(CASES[name], tmp_path)))
    assert got["log"] == expected["log"], "the log differs from the golden run"
    assert got["strategy_state_sha256"] == expected["strategy_state_sha256"], "the final strategy state differs"
    assert got["best"] == expected["best"]
