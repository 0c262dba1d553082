"""`search.inherit` end to end (`nas.run.inheritance`): searches whose new candidates start from their nearest
evaluated relative's weights (synthetic, and real training on digits), the weights files under RUN_DIR/weights/,
damaged files, a stopped and resumed run, a SIGKILLed and resumed run, and the config's one-line refusals."""

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, nas_ok
from test_fidelity_search import env, log_lines
from test_screen import assert_one_line_refusal
from test_strategies import SMALL

from nas.config import load_config
from nas.errors import UserError
from nas.evaluate.job import Job, Parent
from nas.evaluate.result import Result
from nas.evaluate.weightsfile import stand_in_weights
from nas.genome.genome import Genome
from nas.genome.relatedness import distance
from nas.run.inheritance import WeightStore
from nas.strategies.random_search import random_genome

MAX_DISTANCE = 3.0


def synthetic_config(folder: Path, mode: str = "sync", evaluations: int = 48, seconds: float = 0.0,
                     **inherit) -> Path:  # fmt: skip
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["fitness"].update({"epochs": 9, "seconds_per_evaluation": seconds})
    data["search"].update({"mode": mode, "budget": {"evaluations": evaluations},
                           "inherit": {"epochs": 3, "max_distance": MAX_DISTANCE, **inherit}})  # fmt: skip
    path = folder / f"inherit-{mode}-{seconds}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]


def genome(line: dict) -> Genome:
    return Genome.from_dict(line["genome"])


def expected_parent(line: dict, earlier: list[dict], usable: set[str]) -> tuple[float, str] | None:
    """(distance, key) of the parent `line` should have: the nearest ok result of `earlier` with usable weights,
    ties by key, within (0, MAX_DISTANCE]."""
    found = sorted((distance(genome(line), genome(e)), e["key"]) for e in earlier if e["status"] == "ok")
    found = [(d, k) for d, k in found if 0 < d <= MAX_DISTANCE and k in usable]
    return found[0] if found else None


def assert_nearest_parents(log: list[dict], usable: set[str]) -> int:
    """Every sync line inherits from the nearest relative logged at an earlier step, or trains from scratch when
    there is none; returns how many inherited."""
    inherited = 0
    for line in log:
        want = expected_parent(line, [e for e in log if e["step"] < line["step"]], usable)
        metrics = line["metrics"]
        assert "inherit_refused" not in metrics, "the driver ships only checked weights"
        if want is None:
            assert "inherited_from" not in metrics and metrics["epochs"] == 9, line["key"][:12]
        else:
            assert (metrics["distance"], metrics["inherited_from"]) == want, line["key"][:12]
            assert metrics["epochs"] == 3
            inherited += 1
    return inherited


def test_a_synthetic_search_inherits_from_the_nearest_relative_and_never_beyond_max_distance(tmp_path):
    cfg = synthetic_config(tmp_path)
    run = tmp_path / "run"
    nas_ok("search", str(cfg), "--run-dir", str(run), "--workers", "0")
    log = lines(run)
    assert len(log) == 48
    assert assert_nearest_parents(log, {e["key"] for e in log}) >= 10, "most of the later batches inherit"
    assert sorted(p.name for p in (run / "weights").iterdir()) == sorted(f"{e['key']}.safetensors" for e in log)
    assert not (run / "best" / "weights.safetensors").exists(), "a stand-in is no network to export"


def test_an_async_search_inherits_only_from_relatives_logged_before_it(tmp_path):
    cfg = synthetic_config(tmp_path, "async", 30)
    run = tmp_path / "run"
    nas_ok("search", str(cfg), "--run-dir", str(run), "--workers", "0")
    log = lines(run)
    position = {e["key"]: i for i, e in enumerate(log)}
    parents = [(i, e) for i, e in enumerate(log) if "inherited_from" in e["metrics"]]
    assert parents
    for i, line in parents:
        parent = line["metrics"]["inherited_from"]
        assert position[parent] < i
        assert 0 < distance(genome(line), genome(log[position[parent]])) == line["metrics"]["distance"] <= 3.0


def damage(path: Path, how: int) -> None:
    """One of four kinds of damage: a flipped byte, a truncation, a removal, another candidate's file."""
    blob = bytearray(path.read_bytes())
    if how == 0:
        blob[-1] ^= 0xFF
        path.write_bytes(bytes(blob))
    elif how == 1:
        path.write_bytes(bytes(blob[: len(blob) // 2]))
    elif how == 2:
        path.unlink()
    else:
        path.write_bytes(stand_in_weights("f" * 64, 9, 0.5))


def test_damaged_weights_files_are_skipped_and_their_children_train_from_the_next_relative_or_scratch(tmp_path, caplog):
    cfg = synthetic_config(tmp_path)
    run = tmp_path / "run"
    nas_ok("search", str(cfg), "--run-dir", str(run), "--workers", "0", "--max-evaluations", "24")
    first = lines(run)
    assert len(first) == 24 and {e["step"] for e in first} == {0}
    damaged = {e["key"] for e in first[::2]}
    for n, key in enumerate(sorted(damaged)):
        damage(run / "weights" / f"{key}.safetensors", n % 4)
    nas_ok("resume", str(run), "--workers", "0")
    log = lines(run)
    assert len(log) == 48
    usable = {e["key"] for e in log} - damaged
    assert assert_nearest_parents(log, usable) >= 1
    assert sum("is not usable" in r.message or "is missing" in r.message for r in caplog.records) <= len(damaged)
    assert not any(e["metrics"].get("inherited_from") in damaged for e in log)


def test_damaging_every_parent_means_training_from_scratch_not_a_crash(tmp_path):
    cfg = synthetic_config(tmp_path, evaluations=32)
    run = tmp_path / "run"
    nas_ok("search", str(cfg), "--run-dir", str(run), "--workers", "0", "--max-evaluations", "24")
    for path in (run / "weights").iterdir():
        path.write_bytes(b"not weights")
    nas_ok("resume", str(run), "--workers", "0")
    later = lines(run)[24:]
    assert len(later) == 8
    assert all(set(e["metrics"]) == {"epochs"} and e["metrics"]["epochs"] == 9 for e in later), "never shipped"


@pytest.mark.full
def test_a_stopped_and_resumed_search_chooses_the_parents_of_the_uninterrupted_run(tmp_path):
    cfg = synthetic_config(tmp_path, evaluations=72)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    nas_ok("search", str(cfg), "--run-dir", str(whole), "--workers", "0")
    nas_ok("search", str(cfg), "--run-dir", str(parts), "--workers", "0", "--max-evaluations", "30")
    nas_ok("resume", str(parts), "--workers", "0", "--max-evaluations", "13")
    nas_ok("resume", str(parts), "--workers", "0")
    # a batch cut by --max-evaluations is trained in another order (largest first of what is allowed): same lines
    seen = lambda run: sorted((e["key"], e["step"], e["metrics"].get("inherited_from"), e["metrics"]["epochs"])  # noqa: E731
                              for e in lines(run))  # fmt: skip
    assert seen(parts) == seen(whole)
    assert sum(parent is not None for _, _, parent, _ in seen(whole)) >= 20
    state = lambda run: json.loads((run / "checkpoint.json").read_text())["strategy"]  # noqa: E731
    assert state(parts) == state(whole)


def kill_when(cfg: Path, run: Path, ready: Callable[[list[dict]], bool]) -> None:
    """`nas search cfg` in a subprocess, SIGKILLed as soon as its complete log lines satisfy `ready`."""
    proc = subprocess.Popen([sys.executable, "-m", "nas", "search", str(cfg), "--run-dir", str(run), "--workers",
                             "0"], env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not ready(log_lines(run)):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


def three_inherited(log: list[dict]) -> bool:
    return sum("inherited_from" in e["metrics"] for e in log) >= 3


@pytest.mark.full
def test_a_sync_search_sigkilled_inside_an_inheriting_batch_then_resumed_is_the_uninterrupted_run(tmp_path):
    """Two batches (24 candidates, then 16 that may inherit), SIGKILLed once three lines of the second inherited,
    and a staged weights file as a kill in the middle of a write leaves one; then `nas resume`. The rest of the
    cut batch choose their parents among the first step's results alone, as they would have, not among their
    logged batch mates, so every line (key, fitness, parent, epochs) is the uninterrupted run's, none is trained
    twice, and the weights folder holds one file a logged candidate."""
    whole, run = tmp_path / "whole", tmp_path / "run"
    nas_ok("search", str(synthetic_config(tmp_path, evaluations=40)), "--run-dir", str(whole), "--workers", "0")
    assert [e["step"] for e in log_lines(whole)] == [0] * 24 + [1] * 16
    kill_when(synthetic_config(tmp_path, evaluations=40, seconds=0.1), run, three_inherited)
    before = log_lines(run)
    assert three_inherited(before) and len(before) < 40, "killed inside the second batch, after some inherited"
    staged = run / "weights" / f".{before[0]['key']}.safetensors.k1ll3d.tmp"
    staged.write_bytes(b"half a weights file")
    nas_ok("resume", str(run), "--workers", "0")
    after = log_lines(run)
    assert after[: len(before)] == before, "nothing logged before the kill is lost"
    keys = [e["key"] for e in after]
    assert len(keys) == len(set(keys)) == 40, "each candidate trained once, the budget exactly"
    seen = lambda log: [(e["key"], e["step"], e["fitness"], e["metrics"].get("inherited_from"),  # noqa: E731
                         e["metrics"].get("distance"), e["metrics"]["epochs"]) for e in log]  # fmt: skip
    assert seen(after) == seen(log_lines(whole))
    assert sorted(p.name for p in (run / "weights").iterdir()) == sorted(f"{key}.safetensors" for key in keys)
    state = lambda run: json.loads((run / "checkpoint.json").read_text())["strategy"]  # noqa: E731
    assert state(run) == state(whole)


def tiny_digits(folder: Path) -> Path:
    data = yaml.safe_load((ROOT / "search_configs/digits_quick.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["dataset"].update({"train_subset": 0.3, "validation_fraction": 0.2})
    data["fitness"].update({"epochs": 2, "device": "cpu"})
    data["search"].update({"budget": {"evaluations": 12}, "pso": {"swarm_size": 2},
                           "ga": {"population": 3, "generations": 1, "tournament_size": 2, "elitism": 1},
                           "inherit": {"epochs": 1, "max_distance": 6.0}})  # fmt: skip
    path = folder / "digits_inherit.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.full
def test_a_real_digits_search_inherits_trained_weights_and_trains_fewer_epochs(tmp_path):
    import torch

    torch.set_num_threads(1)
    run = tmp_path / "run"
    nas_ok("search", str(tiny_digits(tmp_path)), "--run-dir", str(run), "--workers", "0")
    log = lines(run)
    assert len(log) == 12 and all(e["status"] == "ok" for e in log)
    heirs = [e for e in log if "inherited_from" in e["metrics"]]
    assert heirs, "a later batch inherits"
    for e in heirs:
        metrics = e["metrics"]
        counts = metrics["inheritance"]
        assert metrics["epochs"] == 1 and counts["params_copied"] > 0 and 0 < counts["fraction_copied"] <= 1
        assert metrics["inherited_from"] in {x["key"] for x in log if x["step"] < e["step"]}
    assert all(e["metrics"]["epochs"] == 2 for e in log if "inherited_from" not in e["metrics"])
    assert len(list((run / "weights").iterdir())) == 12
    assert (run / "best" / "weights.safetensors").exists()


# --- pieces -------------------------------------------------------------------------------------------------------


def test_a_weights_blob_of_another_candidate_is_not_kept_and_is_no_parent(tmp_path):
    store = WeightStore(tmp_path)
    key, other = "a" * 64, "b" * 64
    store.save_weights(Result(key, {}, "ok", 0.5, weights=stand_in_weights(other, 3, 0.5)))
    assert not store.weights_file(key).exists()
    store.save_weights(Result(key, {}, "ok", 0.5, weights=stand_in_weights(key, 3, 0.5)))
    assert store.load_weights(key) is not None
    store.weights_file(other).write_bytes(store.weights_file(key).read_bytes())
    assert store.load_weights(other) is None


def test_only_a_whole_evaluation_inherits():
    g = random_genome(SMALL, random.Random(0))
    with pytest.raises(ValueError, match="whole evaluation inherits"):
        Job(g, epochs=1, full_epochs=3, parent=Parent(g, b"", 1, 1.0))


# --- config -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("search.inherit.epochs=9", r"search\.inherit\.epochs: must be below fitness\.epochs \(9\)"),
        ("search.inherit.epochs=0", r"search\.inherit\.epochs: must be >= 1, got 0"),
        ("search.inherit.max_distance=0", r"search\.inherit\.max_distance: must be > 0"),
        ("search.fidelity.min_epochs=1", r"search\.inherit: cannot be combined with search\.fidelity"),
        ("search.inherit.parents=2", r"search\.inherit\.parents"),
        ("search.inherit.keep=0", r"search\.inherit\.keep: must be >= 1, got 0"),
    ],
)
def test_a_bad_inherit_is_refused_by_its_key_path(tmp_path, override, message):
    with pytest.raises(UserError, match=message):
        load_config(synthetic_config(tmp_path), [override])


def test_a_bad_inherit_is_one_line_on_the_command_line(tmp_path, nas):
    cfg = synthetic_config(tmp_path)
    out = nas("search", str(cfg), "--run-dir", str(tmp_path / "run"), "--set", "search.inherit.epochs=12")
    assert_one_line_refusal(out, "search.inherit.epochs: must be below fitness.epochs (9)", tmp_path / "run")


# --- search.inherit.keep: only the best N results' weights are kept as parents ---------------------------------


def ranked_keys(log: list[dict], keep: int) -> list[str]:
    """The `keep` best ok lines' keys, ranked as the search ranks (fitness, then params, then key)."""
    ok = [e for e in log if e["status"] == "ok"]
    return [e["key"] for e in sorted(ok, key=lambda e: (-e["fitness"], e["params"], e["key"]))[:keep]]


def test_with_keep_only_the_best_results_are_parents_and_the_other_files_are_deleted(tmp_path):
    cfg = synthetic_config(tmp_path, keep=3)
    run = tmp_path / "run"
    nas_ok("search", str(cfg), "--run-dir", str(run), "--workers", "0")
    log = lines(run)
    inherited = 0
    for line in log:
        earlier = [e for e in log if e["step"] < line["step"]]
        want = expected_parent(line, earlier, set(ranked_keys(earlier, 3)))
        got = (
            (line["metrics"]["distance"], line["metrics"]["inherited_from"])
            if "inherited_from" in line["metrics"]
            else None
        )
        assert got == want, line["key"][:12]
        inherited += got is not None
    assert inherited >= 5
    last_step = max(e["step"] for e in log)
    files = {p.name.removesuffix(".safetensors") for p in (run / "weights").iterdir()}
    before_last = [e for e in log if e["step"] < last_step]
    # the files pruned at the last batch's start are gone; that batch's own results are still all there
    assert files == set(ranked_keys(before_last, 3)) | {e["key"] for e in log if e["step"] == last_step}


def test_with_keep_a_stopped_and_resumed_search_chooses_the_parents_of_the_uninterrupted_run(tmp_path):
    cfg = synthetic_config(tmp_path, evaluations=72, keep=2)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    nas_ok("search", str(cfg), "--run-dir", str(whole), "--workers", "0")
    nas_ok("search", str(cfg), "--run-dir", str(parts), "--workers", "0", "--max-evaluations", "30")
    nas_ok("resume", str(parts), "--workers", "0", "--max-evaluations", "13")
    nas_ok("resume", str(parts), "--workers", "0")
    seen = lambda run: sorted((e["key"], e["step"], e["metrics"].get("inherited_from")) for e in lines(run))  # noqa: E731
    assert seen(parts) == seen(whole)
    assert sum(parent is not None for _, _, parent in seen(whole)) >= 10
    assert sorted(p.name for p in (parts / "weights").iterdir()) == sorted(
        p.name for p in (whole / "weights").iterdir()
    )
