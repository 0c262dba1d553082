"""Golden runs: whole searches whose logs, final strategy states and best are recorded in tests/golden/, so that a
rework of the search loop (its policies, schedulers, budget, replay) can show it changed no search.

Each case is a search in one process (`--workers 0`): the in-process evaluator finishes candidates in the order
they are submitted, which fixes the arrival order for `async` too. Synthetic cases cover every strategy in both
modes with and without `search.fidelity`; two digits cases train real networks (1 epoch, a quarter of the images).

    .venv/bin/python tests/golden_runs.py        # rewrite tests/golden/*.json (only for an intended change)
"""

import contextlib
import hashlib
import io
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
STRATEGIES = ("hgapso", "pso", "ga", "random", "regularized-evolution")


def cases() -> dict[str, dict]:
    """Case name -> the config (a dict): every strategy x mode x fidelity on synthetic, two on digits."""
    out = {}
    for strategy in STRATEGIES:
        for mode in ("sync", "async"):
            for fidelity in (False, True):
                out[f"synthetic-{strategy}-{mode}{'-fidelity' if fidelity else ''}"] = synthetic(
                    strategy, mode, fidelity
                )
    for mode in ("sync", "async"):
        out[f"digits-hgapso-{mode}"] = digits(mode)
    return out


def synthetic(strategy: str, mode: str, fidelity: bool) -> dict:
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["search"].update({"strategy": strategy, "mode": mode, "budget": {"evaluations": 30}})
    if fidelity:
        data["fitness"]["epochs"] = 9
        data["search"]["fidelity"] = {"min_epochs": 1, "eta": 3, "signal": "accuracy"}  # the recorded signal
    return data


def digits(mode: str) -> dict:
    data = yaml.safe_load((ROOT / "search_configs/digits_demo.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["dataset"]["train_subset"] = 0.25
    data["fitness"]["epochs"] = 1
    data["search"].update({"mode": mode, "budget": {"evaluations": 12}})
    data["search"]["pso"] = {"swarm_size": 2}
    return data


def run_case(config: dict, folder: Path) -> dict:
    """Run one case's search under `folder` and return what is compared: the log, the state, the best."""
    from nas.cli import main

    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    run = folder / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["search", str(cfg), "--run-dir", str(run), "--workers", "0"])
    if code != 0:
        raise RuntimeError(f"search exited {code}")
    return summary(run)


def summary(run: Path) -> dict:
    """The log's lines (what a result is, in logged order), a hash of the final strategy state, and the best."""
    lines = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]
    log = [[r["key"][:16], r["status"], r["fitness"], r.get("epochs"), r["params"], r["flops"]] for r in lines]
    state = json.loads((run / "checkpoint.json").read_text())["strategy"]
    digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
    ok = [r for r in lines if r["status"] == "ok"]
    top = min(ok, key=lambda r: (-r["fitness"], r["params"], r["key"]))
    return {"log": log, "strategy_state_sha256": digest, "best": [top["key"][:16], top["fitness"]]}


def main(argv: list[str]) -> int:
    import tempfile

    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in cases().items():
            if argv and name not in argv:
                continue
            result = run_case(config, Path(tmp) / name)
            (GOLDEN / f"{name}.json").write_text(json.dumps(result, indent=0) + "\n")
            print(f"{name}: {len(result['log'])} lines, best {result['best'][1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
