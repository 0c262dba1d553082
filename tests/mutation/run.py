"""Mutation testing of evonas with mutmut, one group of modules at a time, each against the tests that cover it.

mutmut reads its settings from `pyproject.toml` in the directory it runs in and keeps its work in `mutants/`
there. To run a group against its own tests (the network's mutants against the network's tests, not against
every training test that happens to build a network), each group gets a directory `mutants/<group>/` with links
to the sources and tests and a generated `pyproject.toml`; mutmut's copy and its cache live in
`mutants/<group>/mutants/`. mutmut keeps a verdict once it has one: after changing the tests, delete
`mutants/<group>` so that every mutant is tried again.

    python tests/mutation/run.py                       # every group but fast (make mutation)
    python tests/mutation/run.py network strategies    # some groups
    python tests/mutation/run.py fast --min-score 0.9 --workdir /tmp/m   # the subset make test runs

It prints one line a module (killed, survived, score) and, with `--min-score`, exits 1 when a group scores below
it. `mutants/<group>/survivors.txt` lists every mutant that lived with the lines it changed; `mutmut show NAME`
inside `mutants/<group>/` prints one.
"""

import argparse
import dataclasses
import fnmatch
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINKED = ("nas", "tests", "encodings", "examples", "search_configs")


@dataclass(frozen=True)
class Group:
    """Modules mutated together and the test files that are meant to kill their mutants."""

    modules: tuple[str, ...]
    tests: tuple[str, ...]
    mutants: tuple[str, ...] = ()  # mutant name globs to test (all of the modules' mutants when empty)


GROUPS: dict[str, Group] = {
    "genome": Group(
        ("nas/genome/*",),
        ("tests/test_genome.py", "tests/test_genome_files.py", "tests/test_fair_decoding.py"),
    ),
    "network": Group(
        ("nas/model/network.py",),
        ("tests/test_model.py", "tests/test_network_golden.py"),
    ),
    "schedules": Group(
        ("nas/evaluate/schedules.py",),
        ("tests/test_schedules.py",),
    ),
    "augment": Group(
        ("nas/evaluate/augment.py",),
        ("tests/test_augment.py",),
    ),
    "aggregation": Group(
        ("nas/data/aggregate.py", "nas/evaluate/protocols.py"),
        ("tests/test_protocols.py", "tests/test_aggregate.py"),
    ),
    "trainer": Group(
        ("nas/evaluate/trainer.py",),
        ("tests/test_trainer_behaviour.py", "tests/test_schedules.py"),
    ),
    "strategies": Group(
        ("nas/strategies/*",),
        (
            "tests/test_strategies.py",
            "tests/test_strategy_behaviour.py",
            "tests/test_strategy_async.py",
            "tests/test_strategy_registry.py",
            "tests/test_strategy_contract.py",
            "tests/test_ranking.py",
            "tests/test_swarm.py",
            "tests/test_shortcut_ga.py",
            "tests/test_search_rng.py",
        ),
    ),
}

# What `make test` runs (tests/test_mutation.py), a few minutes at most: the mutants of the network's dense block
# (its wiring, the concatenation, the forward pass) against the golden forward passes, and those of the search
# operators (the PSO update, the GA's selection and variation, aging evolution's tournament and queue) against
# the strategies' behaviour tests. (mutmut names a method's mutants module.x\u01c1Class\u01c1method__mutmut_N,
# a function's module.x_function__mutmut_N.)
GROUPS["fast"] = Group(
    (
        "nas/model/network.py",
        "nas/strategies/swarm.py",
        "nas/strategies/shortcut_ga.py",
        "nas/strategies/regularized_evolution.py",
    ),
    ("tests/test_network_golden.py", "tests/test_strategy_behaviour.py"),
    (
        "nas.model.network.x_gather*",
        "nas.model.network.x\u01c1ShortcutBlock\u01c1*",
        "nas.model.network.x\u01c1SearchedNet\u01c1forward*",
        "nas.strategies.swarm.x_fly*",
        "nas.strategies.swarm.x_velocity_limits*",
        "nas.strategies.shortcut_ga.x_breed*",
        "nas.strategies.regularized_evolution.x\u01c1RegularizedEvolution\u01c1tournament*",
        "nas.strategies.regularized_evolution.x\u01c1RegularizedEvolution\u01c1absorb*",
    ),
)


def mutmut_config(group: Group) -> str:
    """The `[tool.mutmut]` table of a group, plus the project's pytest settings."""
    tests = ", ".join(f'"{t}"' for t in group.tests if (ROOT / t).exists())
    modules = ", ".join(f'"{m}"' for m in group.modules)
    also = ", ".join(f'"{p}"' for p in LINKED[2:])
    return f"""[tool.mutmut]
source_paths = ["nas"]
only_mutate = [{modules}]
pytest_add_cli_args_test_selection = [{tests}]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]
also_copy = [{also}]
use_git_change_detection = false

[tool.pytest.ini_options]
timeout = 300
markers = ["slow: longer real-training tests"]
"""


def prepare(workdir: Path, name: str, group: Group) -> Path:
    """`workdir/name` with links to the tree and the group's `pyproject.toml`."""
    here = workdir / name
    here.mkdir(parents=True, exist_ok=True)
    for entry in LINKED:
        link = here / entry
        if not link.is_symlink():
            link.symlink_to(ROOT / entry, target_is_directory=True)
    config = here / "pyproject.toml"
    text = mutmut_config(group)
    if not config.exists() or config.read_text() != text:
        config.write_text(text)
    return here


def run_group(workdir: Path, name: str, group: Group, children: int, run: bool = True) -> dict[str, dict[str, int]]:
    """Run mutmut over one group (or, without `run`, read its last results); returns {module: counts by status}."""
    here = prepare(workdir, name, group)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    env["NAS_HYPOTHESIS_PROFILE"] = "mutation"
    env.pop("PYTHONPATH", None)  # the mutated copy must be the `nas` the tests import
    mutmut = [sys.executable, "-c", "from mutmut.__main__ import cli; cli()"]
    if run:
        run_mutmut(here, name, group, children, mutmut, env)
    results = subprocess.run([*mutmut, "results", "--all", "true"], cwd=here, env=env, capture_output=True, text=True)
    statuses = parse_results(results.stdout, group.mutants)
    write_survivors(here, statuses, env)
    return tally(statuses)


def run_mutmut(here: Path, name: str, group: Group, children: int, mutmut: list[str], env: dict[str, str]) -> None:
    """`mutmut run` in the group's directory, its progress output in `mutmut.log` there."""
    with open(here / "mutmut.log", "w") as log:
        done = subprocess.run([*mutmut, "run", "--max-children", str(children), *group.mutants], cwd=here, env=env,
                              stdout=log, stderr=subprocess.STDOUT, check=False)  # fmt: skip
    if done.returncode != 0:
        print((here / "mutmut.log").read_text()[-3000:], file=sys.stderr)
        raise SystemExit(f"mutmut failed on group {name} (exit {done.returncode}); log: {here / 'mutmut.log'}")


def parse_results(results: str, patterns: tuple[str, ...]) -> dict[str, str]:
    """{mutant name: status} from `mutmut results --all true` lines (`    nas.m.x_f__mutmut_3: killed`)."""
    out = {}
    for line in results.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if "__mutmut_" in name and (not patterns or any(fnmatch.fnmatch(name, p) for p in patterns)):
            out[name] = status
    return out


SHOW = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
print(json.dumps({name: get_diff_for_mutant(name) for name in json.load(sys.stdin)}))
"""


def write_survivors(here: Path, statuses: dict[str, str], env: dict[str, str]) -> None:
    """`survivors.txt` beside the group's log: each mutant that lived, with the lines it changed (one process)."""
    names = sorted(n for n, status in statuses.items() if status not in ("killed", "timeout", "not checked"))
    shown = subprocess.run([sys.executable, "-c", SHOW], cwd=here, env=env, input=json.dumps(names),
                           capture_output=True, text=True)  # fmt: skip
    diffs = json.loads(shown.stdout) if shown.returncode == 0 else {}
    lines = []
    for name in names:
        diff = [d for d in diffs.get(name, "").splitlines() if d[:1] in "-+" and d[:3] not in ("---", "+++")]
        lines += [f"{name}: {statuses[name]}", *(f"    {d}" for d in diff), ""]
    (here / "survivors.txt").write_text("\n".join(lines))


def tally(statuses: dict[str, str]) -> dict[str, dict[str, int]]:
    """Counts by status per module."""
    out: dict[str, dict[str, int]] = {}
    for name, status in statuses.items():
        module = name.split(".x_")[0].split(".x\u01c1")[0]
        counts = out.setdefault(module, {})
        counts[status] = counts.get(status, 0) + 1
    return out


def score(counts: dict[str, int]) -> float:
    """Killed (or timed out) over every mutant tried; mutants no test reaches count as survivors, mutants of an
    interrupted run not yet tried ("not checked") do not count."""
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    total = sum(counts.values()) - counts.get("skipped", 0) - counts.get("not checked", 0)
    return killed / total if total else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"groups to run ({', '.join(GROUPS)}); default all but fast")
    parser.add_argument("--workdir", type=Path, default=ROOT / "mutants")
    parser.add_argument("--min-score", type=float, default=None, help="exit 1 when a group scores below this")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--report", action="store_true", help="only read the last run's results")
    parser.add_argument("--json", type=Path, default=None, help="write the counts per module here")
    parser.add_argument("--mutants", nargs="+", default=None, help="mutant name globs to report (with --workdir "
                        "elsewhere: a fresh verdict on some modules after new tests)")  # fmt: skip
    args = parser.parse_args(argv)
    names = args.groups or [n for n in GROUPS if n != "fast"]
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        parser.error(f"unknown group {unknown[0]!r} (known: {', '.join(GROUPS)})")
    failed, report = [], {}
    for name in names:
        group = GROUPS[name] if args.mutants is None else dataclasses.replace(GROUPS[name], mutants=tuple(args.mutants))
        modules = run_group(args.workdir, name, group, args.children, run=not args.report)
        total: dict[str, int] = {}
        for module, counts in sorted(modules.items()):
            print(f"{name:12} {module:40} {counts} score {score(counts):.1%}")
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
        print(f"{name:12} {'(group)':40} {total} score {score(total):.1%}")
        report[name] = {"modules": modules, "score": score(total)}
        if args.min_score is not None and score(total) < args.min_score:
            failed.append(name)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True))
    if failed:
        print(f"mutation score below {args.min_score:.0%}: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
