"""The fast mutation subset (`tests/mutation/run.py fast`): a change that stops the tests catching planted bugs
in the network or the search operators fails the suite, not only `make mutation`.

mutmut plants each mutant of the network's dense block (`ShortcutBlock`, `gather`, the forward pass) and of the
search operators (the PSO update, the GA's `breed`, aging evolution's tournament and queue) in a copy of the
tree and runs the golden forward passes and the strategies' behaviour tests against it; the suite passes while
they kill at least `MIN_SCORE` of them. The survivors are equivalent mutants, listed in tests/MUTATION.md.
"""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

MIN_SCORE = 0.9


@pytest.mark.timeout(900)
def test_the_tests_kill_the_fast_mutation_subset(tmp_path):
    report = tmp_path / "score.json"
    cmd = [sys.executable, str(ROOT / "tests/mutation/run.py"), "fast", "--workdir", str(tmp_path / "work")]
    done = subprocess.run(
        [*cmd, "--min-score", str(MIN_SCORE), "--json", str(report)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    scores = json.loads(report.read_text())
    assert scores and all(group["score"] >= MIN_SCORE for group in scores.values())
