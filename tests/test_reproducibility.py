"""What the README promises about reproducibility, mode by mode, checked on whole searches.

- `sync` (with or without `search.fidelity`): the same seed gives the same log, whatever the number of workers
  (the Ray side of that claim: tests/test_ray_search.py and tests/test_fidelity_search.py compare Ray runs with
  2 workers against the in-process run).
- `async` in one process (`--workers 0`): results arrive in submission order, so the same seed gives the same log.
- `async` on Ray: the order results arrive in decides the search, so two runs may differ; what holds is that a
  resumed run continues the same run (tests/test_async_search.py, tests/test_fidelity_search.py).
"""

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml
from golden_runs import synthetic

from nas.cli import main

# What a search is: which networks, in which order, with which results. In async the `step` of a line counts
# checkpoints, which are written on a clock (every few seconds), so it is compared in sync only.
FIELDS = ("key", "status", "fitness", "epochs", "params", "flops", "attempts", "step")


def write_config(folder: Path, mode: str, fidelity: bool, strategy: str) -> Path:
    """The golden runs' synthetic search (smoke, densenet_small, 30 settled candidates) as a file."""
    path = folder / f"{mode}-{fidelity}-{strategy}.yaml"
    path.write_text(yaml.safe_dump(synthetic(strategy, mode, fidelity)))
    return path


def search(cfg: Path, run: Path) -> list[tuple]:
    """`nas search CFG` in this process, in-process evaluator; the log's lines in logged order."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["search", str(cfg), "--run-dir", str(run), "--workers", "0"]) == 0
    lines = (run / "evaluations.jsonl").read_text().splitlines()
    return [tuple(json.loads(line).get(f) for f in FIELDS) for line in lines]


@pytest.mark.parametrize("strategy", ["hgapso", "regularized-evolution"])
@pytest.mark.parametrize("fidelity", [False, True])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_same_seed_in_one_process_gives_the_same_log_line_for_line(tmp_path, mode, fidelity, strategy):
    cfg = write_config(tmp_path, mode, fidelity, strategy)
    first, second = search(cfg, tmp_path / "a"), search(cfg, tmp_path / "b")
    if mode == "async":
        first, second = [line[:-1] for line in first], [line[:-1] for line in second]
    assert len(first) >= 30
    assert first == second
    if fidelity:
        assert {line[3] for line in first} == {1, 3, 9}, "the rungs were not exercised"


def test_another_seed_gives_another_search(tmp_path):
    """The equality above is not vacuous: the seed reaches the strategy."""
    cfg = write_config(tmp_path, "async", False, "hgapso")
    data = yaml.safe_load(cfg.read_text())
    data["seed"] = 1
    other = tmp_path / "seed1.yaml"
    other.write_text(yaml.safe_dump(data))
    assert [line[0] for line in search(cfg, tmp_path / "a")] != [line[0] for line in search(other, tmp_path / "b")]
