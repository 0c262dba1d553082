"""Corrupt state: a paused run whose checkpoints or log are damaged in many ways, then `nas resume`.

The damage is generated: truncation at 20+ byte offsets, several kinds of garbage (NUL bytes, random bytes,
invalid UTF-8, stray text, one digit changed so that the JSON stays valid) at several offsets, missing files,
and log lines that are valid JSON but not a result. What must hold (DESIGN.md section 2, `nas.run.checkpoint`,
`nas.run.runlog`): a bad `checkpoint.json` alone falls back to `checkpoint.prev.json` with a warning; both
bad is exit 2 with one line and no file touched; a torn or garbled last log line is dropped with a warning; a
bad line anywhere else is exit 2 with one line naming the file and the line, never a finished evaluation
silently dropped. Every resume that goes ahead must end exactly as the uninterrupted run.
"""

import json
import math
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_runs import (
    ROOT,
    best,
    cli,
    content,
    copy_run,
    keys,
    log_lines,
    paused_synthetic_run,
    scratch,
    synthetic_config,
    synthetic_reference,
)

from nas.config import load_config
from nas.run.checkpoint import read_one
from nas.run.driver import disk_error_hint
from nas.run.rundir import RunDir
from nas.run.runlog import line_rules

PAUSED_AT = 20
TRUNCATIONS = 24
GARBAGE = {
    "nul": lambda rng: b"\x00" * 8,
    "random": lambda rng: bytes(rng.randrange(256) for _ in range(8)),
    "utf8": lambda rng: b"\xff\xfe\xfd",
    "text": lambda rng: b"#garbage",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """(the uninterrupted synthetic run, the same search paused after 20 evaluations with two checkpoints)."""
    cfg, whole = synthetic_reference(tmp_path_factory)
    paused = paused_synthetic_run(cfg, tmp_path_factory.mktemp("corrupt") / "paused", PAUSED_AT)
    assert len(log_lines(paused)) == PAUSED_AT
    return whole, paused


@pytest.fixture
def fast_tmp(tmp_path):
    with scratch(tmp_path) as folder:
        yield folder


def truncations(data: bytes, count: int = TRUNCATIONS) -> list[tuple[str, bytes]]:
    """`data` cut at `count` offsets spread over its length (0: an empty file; never the whole of it)."""
    offsets = sorted({round(i * (len(data) - 1) / (count - 1)) for i in range(count)})
    return [(f"truncated at {o}", data[:o]) for o in offsets]


def garbled(data: bytes, rng: random.Random, per_kind: int = 4) -> list[tuple[str, bytes]]:
    """`data` overwritten by each kind of garbage at `per_kind` random offsets, and one digit changed (valid
    JSON still, caught only by the checkpoint's checksum).

    A changed digit counts only where it changes a value: the last digit of a 17-digit float can often move
    without changing the double it parses to (0.30000000000000004 and ...05 are the same number), and such a
    file holds exactly the checkpoint that was written."""
    cases = []
    for kind, make in GARBAGE.items():
        for offset in sorted(rng.sample(range(len(data) - 8), per_kind)):
            junk = make(rng)
            cases.append((f"{kind} at {offset}", data[:offset] + junk + data[offset + len(junk) :]))
    digits = [m.start() for m in re.finditer(rb"[0-9]", data)]
    rng.shuffle(digits)
    changed = [(o, bumped(data, o)) for o in digits]
    meaningful = [(o, bad) for o, bad in changed if value(bad) not in (None, json.loads(data))]
    for offset, bad in sorted(meaningful[:per_kind]):
        cases.append((f"digit changed at {offset}", bad))
    return cases


def value(data: bytes) -> object | None:
    """What `data` parses to as JSON, or None where it is not JSON (a 9 that became a leading 0)."""
    try:
        return json.loads(data)
    except ValueError:
        return None


def bumped(data: bytes, offset: int) -> bytes:
    """`data` with its digit at `offset` raised by one (9 becomes 0)."""
    digit = b"%d" % ((data[offset] - ord("0") + 1) % 10)
    return data[:offset] + digit + data[offset + 1 :]


def damaged(paused: Path, to: Path, name: str, data: bytes | None) -> Path:
    """A copy of the paused run with file `name` replaced by `data` (None: deleted)."""
    run = copy_run(paused, to)
    if data is None:
        (run / name).unlink()
    else:
        (run / name).write_bytes(data)
    return run


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def assert_resumes_to_the_whole_run(run: Path, whole: Path, case: str, warning: str | None) -> None:
    out = cli("resume", str(run), "--workers", "0")
    assert out.code == 0 and out.exception is None, (case, out.stderr[-2000:], out.exception)
    if warning is not None:
        assert warning in out.stderr, (case, out.stderr[-2000:])
    assert keys(run) == keys(whole), f"{case}: the resumed run is not the uninterrupted run"
    assert content(run) == content(whole) and best(run) == best(whole), case


def assert_refused(run: Path, case: str, *words: str) -> None:
    """`nas resume` exits 2 with one error line holding `words`, and no file of the run changes."""
    before = snapshot(run)
    out = cli("resume", str(run), "--workers", "0")
    assert out.exception is None, (case, out.exception)
    assert out.code == 2 and "Traceback" not in out.stderr, (case, out.code, out.stderr[-2000:])
    lines = out.error_lines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), (case, out.stderr[-2000:])
    assert snapshot(run) == before, f"{case}: a file of the run changed"


def test_bad_checkpoint_json_falls_back_to_the_previous_with_a_warning(runs, fast_tmp, record_property):
    """checkpoint.json truncated, garbled or missing: resume warns, uses checkpoint.prev.json, ends as the whole run."""
    whole, paused = runs
    data = (paused / "checkpoint.json").read_bytes()
    assert read_one(paused / "checkpoint.prev.json")["step"] < read_one(paused / "checkpoint.json")["step"]
    cases = [*truncations(data), *garbled(data, random.Random(1)), ("missing", None)]
    for i, (case, bad) in enumerate(cases):
        run = damaged(paused, fast_tmp / f"c{i}", "checkpoint.json", bad)
        assert read_one(run / "checkpoint.json") is None, f"{case}: the damage left a valid checkpoint"
        assert_resumes_to_the_whole_run(run, whole, case, warning="falling back to checkpoint.prev.json")
    record_property("tried", len(cases))


def test_bad_previous_checkpoint_alone_changes_nothing(runs, fast_tmp, record_property):
    """checkpoint.prev.json truncated, garbled or missing beside a good checkpoint.json: resume as if intact."""
    whole, paused = runs
    data = (paused / "checkpoint.prev.json").read_bytes()
    cases = [*truncations(data, 12), *garbled(data, random.Random(2), per_kind=2), ("missing", None)]
    for i, (case, bad) in enumerate(cases):
        run = damaged(paused, fast_tmp / f"p{i}", "checkpoint.prev.json", bad)
        assert_resumes_to_the_whole_run(run, whole, case, warning=None)
        assert read_one(run / "checkpoint.prev.json") is not None, f"{case}: the next save left no good previous"
    record_property("tried", len(cases))


def test_both_checkpoints_bad_exits_2_with_one_line_and_touches_nothing(runs, fast_tmp, record_property):
    """Both checkpoints truncated, garbled or missing: exit 2, one line naming both, not a byte of the run changed."""
    whole, paused = runs
    rng = random.Random(3)
    current = [*truncations((paused / "checkpoint.json").read_bytes(), 10), ("missing", None)]
    current += garbled((paused / "checkpoint.json").read_bytes(), rng, per_kind=2)
    previous = [*truncations((paused / "checkpoint.prev.json").read_bytes(), 10), ("missing", None)]
    previous += garbled((paused / "checkpoint.prev.json").read_bytes(), rng, per_kind=2)
    rng.shuffle(previous)
    pairs = list(zip(current, previous, strict=True)) + [(("missing", None), ("missing", None))]
    for i, ((case_c, bad_c), (case_p, bad_p)) in enumerate(pairs):
        run = damaged(paused, fast_tmp / f"b{i}", "checkpoint.json", bad_c)
        if bad_p is None:
            (run / "checkpoint.prev.json").unlink()
        else:
            (run / "checkpoint.prev.json").write_bytes(bad_p)
        case = f"checkpoint.json {case_c}, checkpoint.prev.json {case_p}"
        assert_refused(run, case, "checkpoint.json", "checkpoint.prev.json")
    record_property("tried", len(pairs))


def test_torn_or_garbled_last_log_line_is_dropped_with_a_warning(runs, fast_tmp, record_property):
    """A torn or garbled last line of evaluations.jsonl: resume warns, drops it, and ends as the whole run."""
    whole, paused = runs
    log = (paused / "evaluations.jsonl").read_bytes()
    following = json.dumps(log_lines(whole)[PAUSED_AT]).encode()  # the line a crash would have been writing
    rng = random.Random(4)
    tails = [(f"torn at {o}", following[:o]) for o in sorted(rng.sample(range(1, len(following)), 20))]
    tails += [
        ("NUL block", b"\x00" * 512),
        ("random bytes", bytes(rng.randrange(256) for _ in range(64)).replace(b"\n", b"")),
        ("garbled complete line", b"{garbage\n"),
        ("half a line, newline", following[: len(following) // 2] + b"\n"),
        ("invalid UTF-8 line", b'{"key": "\xff\xfe"}\n'),
    ]
    for i, (case, tail) in enumerate(tails):
        run = copy_run(paused, fast_tmp / f"t{i}")
        (run / "evaluations.jsonl").write_bytes(log + tail)
        assert_resumes_to_the_whole_run(run, whole, case, warning="incomplete")
        text = (run / "evaluations.jsonl").read_text()
        assert text.endswith("\n") and len(text.splitlines()) == len(log_lines(whole)), case
    record_property("tried", len(tails))


def test_garbled_middle_log_line_exits_2_naming_file_and_line(runs, fast_tmp, record_property):
    """A garbled line before the last: exit 2, one line naming the file and line number, nothing touched."""
    whole, paused = runs
    lines = (paused / "evaluations.jsonl").read_bytes().splitlines(keepends=True)
    rng = random.Random(5)
    kinds = {
        "cut short": lambda line: line[: len(line) // 2] + b"\n",
        "NUL bytes": lambda line: b"\x00" * (len(line) - 1) + b"\n",
        "random bytes": lambda line: bytes(rng.randrange(256) for _ in range(40)).replace(b"\n", b"") + b"\n",
        "invalid UTF-8": lambda line: line[:30] + b"\xff\xfe" + line[32:],
        "text": lambda line: b"#garbage" + line[8:],
    }
    tried = 0
    for number in (1, 6, 13, PAUSED_AT - 1):
        for kind, make in kinds.items():
            broken = [*lines[: number - 1], make(lines[number - 1]), *lines[number:]]
            run = copy_run(paused, fast_tmp / f"m{tried}")
            (run / "evaluations.jsonl").write_bytes(b"".join(broken))
            assert_refused(run, f"{kind} on line {number}", str(run / "evaluations.jsonl"), f"line {number} ")
            tried += 1
    record_property("tried", tried)


NOT_RESULTS = {
    "array": [],
    "empty object": {},
    "null": None,
    "number": 42,
    "string": "evaluation",
    "no key": "drop:key",
    "no genome": "drop:genome",
    "unknown status": {"status": "maybe"},
    "fitness a string": {"fitness": "high"},
    "params a string": {"params": "many"},
    "genome a list": {"genome": [1, 2]},
    "ok without fitness": {"fitness": None},
    "metrics a list": {"metrics": []},
}


def not_a_result(real: dict, how: object) -> bytes:
    """A valid JSON line that is not a result: a non-object, or a real line with a field missing or mistyped."""
    if isinstance(how, str) and how.startswith("drop:"):
        value = {k: v for k, v in real.items() if k != how.removeprefix("drop:")}
    elif isinstance(how, dict) and how:
        value = {**real, **how}
    else:
        value = how
    return json.dumps(value).encode() + b"\n"


def test_a_log_line_that_is_json_but_not_a_result_is_refused_in_the_middle_and_dropped_at_the_end(
    runs, fast_tmp, record_property
):
    """Valid JSON that is not a result: in the middle exit 2 naming the line; as the last line dropped, warned."""
    whole, paused = runs
    lines = (paused / "evaluations.jsonl").read_bytes().splitlines(keepends=True)
    real = log_lines(paused)[9]
    tried = 0
    for kind, how in NOT_RESULTS.items():
        bad = not_a_result(real, how)
        run = copy_run(paused, fast_tmp / f"j{tried}")
        (run / "evaluations.jsonl").write_bytes(b"".join([*lines[:9], bad, *lines[10:]]))
        assert_refused(run, f"{kind} on line 10", str(run / "evaluations.jsonl"), "line 10 ")
        run = copy_run(paused, fast_tmp / f"j{tried}-end")
        (run / "evaluations.jsonl").write_bytes(b"".join(lines) + bad)
        assert_resumes_to_the_whole_run(run, whole, f"{kind} as the last line", warning="incomplete")
        tried += 2
    record_property("tried", tried)


def test_a_shortened_or_deleted_log_is_refused_naming_the_log_and_both_counts(runs, fast_tmp, record_property):
    """evaluations.jsonl cut to fewer results than the checkpoint counted (at line ends and mid-line), emptied,
    or deleted: exit 2, one line naming the log and both counts, nothing touched (the results are not lost)."""
    _, paused = runs
    lines = (paused / "evaluations.jsonl").read_bytes().splitlines(keepends=True)
    counted = read_one(paused / "checkpoint.json")["evaluations"]  # at the last finished batch
    cases: list[tuple[str, bytes | None, int]] = [("deleted", None, 0), ("emptied", b"", 0)]
    cases += [(f"cut to {n} lines", b"".join(lines[:n]), n) for n in (1, 5, 10, counted - 1)]
    cases += [(f"cut mid-line {n + 1}", b"".join(lines[:n]) + lines[n][:40], n) for n in (3, counted - 1)]
    for i, (case, data, present) in enumerate(cases):
        run = damaged(paused, fast_tmp / f"s{i}", "evaluations.jsonl", data)
        assert_refused(run, case, str(run / "evaluations.jsonl"), f"{present} results", f"counted {counted}")
    record_property("tried", len(cases))


def test_an_edited_or_removed_search_space_file_is_refused_by_name(tmp_path, fast_tmp, record_property):
    """The run's encoding file edited after the start (stem_channels, a layer range, compression, a comment), or
    deleted: resume exits 2 with one line naming that file, and touches nothing; unedited, it resumes."""
    import shutil

    import yaml

    space = tmp_path / "space.yaml"
    shutil.copy(ROOT / "encodings/densenet_small.yaml", space)
    cfg = synthetic_config(tmp_path)
    data = yaml.safe_load(cfg.read_text())
    data["encoding"] = str(space)
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    paused = paused_synthetic_run(cfg, tmp_path / "paused", PAUSED_AT)
    original = space.read_text()
    edits = {
        "stem_channels": lambda d: d.update(stem_channels=d["stem_channels"] + 8),
        "a layer range": lambda d: d["blocks"][0].update(layers=[2, 3]),
        "compression": lambda d: d.update(compression=0.75),
    }
    cases = [(name, yaml.safe_dump(edit_of(original, edit))) for name, edit in edits.items()]
    cases += [("a comment", original + "# edited\n"), ("deleted", None)]
    for i, (case, text) in enumerate(cases):
        run = copy_run(paused, fast_tmp / f"e{i}")
        if text is None:
            space.unlink()
        else:
            space.write_text(text)
        assert_refused(run, case, str(space), "changed")
        space.write_text(original)
    out = cli("resume", str(copy_run(paused, fast_tmp / "intact")), "--workers", "0")
    assert out.code == 0 and out.exception is None, out.stderr[-2000:]
    record_property("tried", len(cases) + 1)


def edit_of(text: str, edit) -> dict:
    import yaml

    data = yaml.safe_load(text)
    edit(data)
    return data


IMPOSSIBLE = {
    "fitness NaN": {"fitness": float("nan")},
    "fitness 5.0": {"fitness": 5.0},
    "fitness -inf": {"fitness": float("-inf")},
    "fitness -0.1": {"fitness": -0.1},
    "negative params": {"params": -5},
    "negative flops": {"flops": -1},
    "seconds NaN": {"seconds": float("nan")},
    "attempts 0": {"attempts": 0},
    "negative step": {"step": -1},
    "failed with a fitness": {"status": "failed", "fitness": 0.9},
    "key of another genome": {"key": "0" * 64},
    "genome without blocks": {"genome": {}},
    "genome with a bad bitstring": "bad-bits",
    "genome with an unknown key": {"genome": {"blocks": [], "extra": 1}},
}


def impossible(real: dict, how: object) -> bytes:
    """A real line changed into one no evaluation can produce (NaN and infinities as Python's json writes them)."""
    if how == "bad-bits":
        genome = json.loads(json.dumps(real["genome"]))
        genome["blocks"][0]["shortcuts"] = "2" * len(genome["blocks"][0]["shortcuts"])
        how = {"genome": genome}
    return json.dumps({**real, **how}).encode() + b"\n"


def test_impossible_results_are_refused_on_load_naming_the_line(runs, fast_tmp, record_property):
    """Lines that parse but no evaluation can produce (fitness NaN, 5.0, -inf; negative params; attempts 0; a key
    that is not its genome's; a malformed genome) in the middle of the log: resume, export and report exit 2
    with one line naming the file and the line, and nothing is touched."""
    _, paused = runs
    lines = (paused / "evaluations.jsonl").read_bytes().splitlines(keepends=True)
    real = log_lines(paused)[4]
    tried = 0
    for kind, how in IMPOSSIBLE.items():
        run = copy_run(paused, fast_tmp / f"i{tried}")
        log = run / "evaluations.jsonl"
        log.write_bytes(b"".join([*lines[:4], impossible(real, how), *lines[5:]]))
        assert_refused(run, kind, str(log), "line 5 ")
        for argv in (("export", str(run), "--out", str(fast_tmp / f"x{tried}")), ("report", str(run))):
            out = cli(*argv)
            assert out.code == 2 and out.exception is None, (kind, argv, out.stderr[-2000:])
            assert any(str(log) in line and "line 5 " in line for line in out.error_lines()), (kind, out.stderr)
        tried += 1
    record_property("tried", tried)


def test_a_digit_change_that_leaves_the_same_number_is_not_counted_as_damage():
    """0.30000000000000004 and 0.30000000000000005 parse to one double: only the other digits are damage."""
    data = b'{"a": 0.30000000000000004, "b": 7}'
    cases = [bad for case, bad in garbled(data, random.Random(0), per_kind=20) if case.startswith("digit")]
    assert cases and all(json.loads(bad) != json.loads(data) for bad in cases)
    assert data.replace(b"04,", b"05,") not in cases


@pytest.fixture(scope="module")
def rung_run(tmp_path_factory) -> Path:
    """The synthetic search under `search.fidelity` (rungs 1, 3 and 9 epochs), paused after 20 candidates."""
    folder = tmp_path_factory.mktemp("rungs")
    cfg = synthetic_config(folder, fitness={"epochs": 9}, search={"fidelity": {"min_epochs": 1, "eta": 3}})
    return paused_synthetic_run(cfg, folder / "paused", PAUSED_AT)


def with_line_5(paused: Path, to: Path, change: dict) -> Path:
    """A copy of a paused run whose line 5 has `change` applied (a value of `DROP` removes that field)."""
    lines = (paused / "evaluations.jsonl").read_bytes().splitlines(keepends=True)
    line = {**log_lines(paused)[4], **change}
    line = {k: v for k, v in line.items() if v is not DROP}
    run = copy_run(paused, to)
    (run / "evaluations.jsonl").write_bytes(b"".join([*lines[:4], json.dumps(line).encode() + b"\n", *lines[5:]]))
    return run


class Dropped:
    """The value that removes a field from a line."""

    def __repr__(self) -> str:
        return "(removed)"


DROP = Dropped()
NOT_WRITTEN = {  # (paused run, change to line 5): lines no evaluation of that run writes
    "epochs 999 without fidelity": ("plain", {"epochs": 999}),
    "epochs -1 without fidelity": ("plain", {"epochs": -1}),
    "epochs 0 without fidelity": ("plain", {"epochs": 0}),
    "epochs = fitness.epochs without fidelity": ("plain", {"epochs": 3}),
    "epochs 2 between rungs 1 and 3": ("rungs", {"epochs": 2}),
    "epochs 999 above the top rung": ("rungs", {"epochs": 999}),
    "epochs 10 above the top rung": ("rungs", {"epochs": 10}),
    "epochs -1 under fidelity": ("rungs", {"epochs": -1}),
    "no epochs under fidelity": ("rungs", {"epochs": DROP}),
    "attempts beyond the retries": ("plain", {"attempts": 5}),
    "an ok result with an error": ("plain", {"status": "ok", "fitness": 0.5, "error": "RuntimeError: boom"}),
}


def test_a_log_line_this_run_never_writes_is_refused_naming_the_line(runs, rung_run, fast_tmp, record_property):
    """Lines valid on their own that no evaluation of the run's config writes (epochs 999, -1, 0 or
    fitness.epochs without `search.fidelity`; epochs 2, 10 or 999 or none with rungs 1, 3 and 9; attempts past
    max_retries + 2; an ok line with an error) in the middle of the log: resume exits 2 with one line naming the
    file and the line, and nothing is touched."""
    paused = {"plain": runs[1], "rungs": rung_run}
    for i, (case, (kind, change)) in enumerate(NOT_WRITTEN.items()):
        run = with_line_5(paused[kind], fast_tmp / f"w{i}", change)
        assert_refused(run, case, str(run / "evaluations.jsonl"), "line 5 ")
        for command in ("export", "report"):  # nor may such a line rank first in what a user takes away
            out = cli(command, str(run))
            assert out.exception is None and out.code == 2, (case, command, out.code, out.exception)
            assert len(out.error_lines()) == 1 and "line 5 " in out.error_lines()[0], (case, command, out.stderr)
    record_property("tried", 3 * len(NOT_WRITTEN))


def broken_values(rules, real: dict) -> dict[str, st.SearchStrategy]:
    """For each field of a line, values no evaluation under `rules` writes there."""
    words = st.text(max_size=8)
    not_int = st.one_of(words, st.booleans(), st.floats(allow_nan=False).filter(lambda x: x != int(x)))
    off_rungs = st.one_of(st.integers(-3, 12), st.integers(-(10**6), 10**6)).filter(lambda e: e not in rules.epochs)
    epochs = st.one_of(off_rungs, off_rungs, not_int)
    return {
        "key": st.one_of(st.text("0123456789abcdef", min_size=64, max_size=64), words, st.none()).filter(
            lambda key: key != real["key"]
        ),
        "genome": st.one_of(st.dictionaries(words, st.integers(), max_size=3), words, st.none()),
        "status": st.one_of(words.filter(lambda s: s not in ("ok", "failed", "timeout", "oom")), st.integers()),
        "fitness": st.one_of(
            st.floats(min_value=1, exclude_min=True), st.floats(max_value=0, exclude_max=True), st.just(math.nan)
        ),
        "params": st.one_of(st.integers(max_value=-1), not_int),
        "flops": st.one_of(st.integers(max_value=-1), not_int),
        "seconds": st.one_of(st.floats(max_value=0, exclude_max=True), st.just(math.inf), st.just(math.nan), words),
        "attempts": st.one_of(st.integers(max_value=0), st.integers(min_value=rules.attempts + 1), not_int),
        "step": st.one_of(st.integers(max_value=-1), not_int),
        "worker": st.one_of(st.integers(), st.lists(st.integers(), max_size=2)),
        "metrics": st.one_of(st.lists(st.integers(), max_size=2), words, st.integers()),
        "epochs": epochs if None in rules.epochs else st.one_of(epochs, st.just(DROP)),
        "error on an ok line": words,
    }


def test_a_log_line_broken_in_any_field_is_refused_naming_the_line(runs, rung_run, fast_tmp, record_property):
    """Generated: line 5 of a paused run (with or without `search.fidelity`) with one field set to a value no
    evaluation of that run writes (a key not its genome's, a wrong status, fitness outside [0, 1] or not finite,
    negative or fractional counts, attempts past the retries, epochs off the rungs, ...): resume exits 2 with one
    line naming the file and the line, and nothing is touched."""
    paused = {"plain": runs[1], "rungs": rung_run}
    rules = {kind: line_rules(load_config(run / "config.yaml")) for kind, run in paused.items()}
    tried: list[str] = []

    @settings(max_examples=60, derandomize=True, database=None, deadline=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(sorted(paused)))
        real = log_lines(paused[kind])[4]
        values = broken_values(rules[kind], real)
        field = data.draw(st.sampled_from(sorted(values)))
        value = data.draw(values[field])
        change = {"status": "ok", "fitness": 0.5, "error": value} if field == "error on an ok line" else {field: value}
        run = with_line_5(paused[kind], fast_tmp / f"g{len(tried)}", change)
        tried.append(f"{kind}: {field} = {value!r}")
        assert_refused(run, tried[-1], str(run / "evaluations.jsonl"), "line 5 ")

    check()
    record_property("tried", len(tried))


def test_checkpoint_json_replaced_by_a_directory_falls_back_to_the_previous_warning_once(
    runs, fast_tmp, tmp_path_factory, record_property
):
    """checkpoint.json replaced by an empty directory, by a directory holding a file, or torn (sync, and async
    whose loops load the checkpoint three times): resume says the fallback to checkpoint.prev.json once, in one
    line, and goes on (the sync run ends as the uninterrupted one); a directory holding files is moved aside
    whole, never deleted."""
    whole, paused = runs
    folder = tmp_path_factory.mktemp("async-paused")
    async_paused = paused_synthetic_run(synthetic_config(folder, search={"mode": "async"}), folder / "run", PAUSED_AT)

    def holding_a_file(path: Path) -> None:
        path.mkdir()
        (path / "note.txt").write_text("kept")

    damages = {
        "an empty directory": Path.mkdir,
        "a directory holding a file": holding_a_file,
        "torn": lambda path: path.write_text('{"format": "nas-checkpoint/1", "st'),
    }
    cases = [(name, paused, damage) for name, damage in damages.items()]
    cases += [(f"async, {name}", async_paused, damages[name]) for name in ("an empty directory", "torn")]
    for i, (case, source, damage) in enumerate(cases):
        run = copy_run(source, fast_tmp / f"d{i}")
        (run / "checkpoint.json").unlink()
        damage(run / "checkpoint.json")
        out = cli("resume", str(run), "--workers", "0")
        assert out.code == 0 and out.exception is None, (case, out.stderr[-2000:], out.exception)
        warnings = [line for line in out.stderr.splitlines() if line.startswith("WARNING")]
        fallbacks = [line for line in warnings if "falling back to checkpoint.prev.json" in line]
        assert len(fallbacks) == 1, (case, warnings)
        moved = [line for line in warnings if "moved it to" in line]
        assert len(warnings) == 1 + len(moved) and len(moved) == (case == "a directory holding a file"), warnings
        assert read_one(run / "checkpoint.json") is not None, case
        if moved:
            assert (run / "checkpoint.json.moved-1" / "note.txt").read_text() == "kept"
        if source is paused:
            assert keys(run) == keys(whole) and content(run) == content(whole) and best(run) == best(whole), case
    record_property("tried", len(cases))


def test_the_hint_of_a_refused_write_says_what_resume_continues_from(runs, fast_tmp, record_property):
    """The hint a refused write ends with, on a paused run of 20 evaluations whose checkpoint.json is a directory
    or torn beside a good previous one, or whose both checkpoints are unreadable: it never says nothing was
    evaluated; it names the earlier checkpoint resume falls back to, or says that neither is readable."""
    _, paused = runs
    torn = '{"format": "nas-checkpoint/1", "st'
    cases = {  # (checkpoint.json, checkpoint.prev.json) -> what the hint says; None: a directory; "": missing
        "a directory, previous good": (None, "keep", "an earlier checkpoint is intact"),
        "torn, previous good": (torn, "keep", "an earlier checkpoint is intact"),
        "a directory, previous torn": (None, torn, "neither checkpoint.json nor checkpoint.prev.json is readable"),
        "both missing": ("", "", "neither checkpoint.json nor checkpoint.prev.json is readable"),
    }
    for i, (case, (current, previous, says)) in enumerate(cases.items()):
        run = copy_run(paused, fast_tmp / f"h{i}")
        for name, text in (("checkpoint.json", current), ("checkpoint.prev.json", previous)):
            if text != "keep":
                (run / name).unlink()
            if text is None:
                (run / name).mkdir()
            elif text not in ("", "keep"):
                (run / name).write_text(text)
        hint = disk_error_hint(RunDir(run))
        assert "nothing was evaluated" not in hint and says in hint, (case, hint)
    fresh = fast_tmp / "fresh"
    fresh.mkdir()
    assert "no checkpoint was written yet, so nothing was evaluated" in disk_error_hint(RunDir(fresh))
    record_property("tried", len(cases) + 1)


# --- rung states of `search.fidelity` (RUN_DIR/rungs/) ----------------------------------------------------------
#
# An async ASHA search stopped as a crash stops it, right after a rung line that says "continue": the candidate's
# state is on disk and its next rung is not trained. Its state file is then replaced by something else; resume must
# say so in one warning line, train that candidate's next rung from epoch 0, and end with exactly the evaluations
# of the uninterrupted search (a result depends only on genome, seed and epochs).

FIDELITY = {"min_epochs": 1, "eta": 3}


class Crash(BaseException):
    """A crash at an exact instant: nothing in evonas catches it (it is no `Exception`), as nothing outlives a
    SIGKILL, and the run directory is left as the kill would leave it."""


def crashed_async_run(cfg: Path, to: Path, lines: int) -> Path:
    """The async search of `cfg` stopped by a crash once its log holds `lines` lines and a candidate continues."""
    from nas.run.schedulers import AshaScheduler

    original = AshaScheduler.arrived

    def arrived(self, arrivals):
        verdict = original(self, arrivals)
        if len(self.log.lines) >= lines and self.continuing:
            raise Crash
        return verdict

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AshaScheduler, "arrived", arrived)
        with pytest.raises(Crash):
            cli("search", str(cfg), "--run-dir", str(to), "--workers", "0")
    return to


def rung_outcome(run: Path) -> list[tuple]:
    """Every rung line's outcome, in a canonical order (the log of an async run is in completion order)."""
    return sorted((r["key"], r["epochs"], r["status"], r["fitness"], r["params"], r["flops"]) for r in log_lines(run))


def fidelity_runs(folder: Path, cfg: Path, lines: int) -> tuple[Path, Path, Path]:
    """(uninterrupted run, crashed run, the state file its resume loads first)."""
    whole = folder / "whole"
    out = cli("search", str(cfg), "--run-dir", str(whole), "--workers", "0")
    assert out.code == 0 and out.exception is None, (out.stderr[-2000:], out.exception)
    assert not list((whole / "rungs").iterdir())
    paused = crashed_async_run(cfg, folder / "paused", lines)
    states = sorted((paused / "rungs").glob("*.safetensors"))
    assert states and not any(r["epochs"] == 9 and r["key"] == states[0].name[:64] for r in log_lines(paused))
    return whole, paused, states[0]


@pytest.fixture(scope="module")
def rung_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("rungs")
    cfg = synthetic_config(folder, 24, search={"mode": "async", "fidelity": FIDELITY}, fitness={"epochs": 9})
    return fidelity_runs(folder, cfg, 12)


def state_name(state: Path) -> tuple[str, int]:
    key, epochs, _ = state.name.split(".")
    return key, int(epochs[1:])


def assert_retrained_to_the_whole_run(run: Path, whole: Path, state: Path, case: str, *reason: str) -> None:
    """Resume warns once, naming the state and `reason`; the candidate's next rung trained all its epochs from
    0; the log ends with the uninterrupted run's evaluations; the finished search kept no state."""
    out = cli("resume", str(run), "--workers", "0")
    assert out.code == 0 and out.exception is None, (case, out.stderr[-2000:], out.exception)
    warnings = [line for line in out.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, (case, warnings)
    assert str(state) in warnings[0] and "trains again from epoch 0" in warnings[0], (case, warnings)
    assert all(words in warnings[0] for words in reason), (case, warnings)
    key, epochs = state_name(state)
    following = [r for r in log_lines(run) if r["key"] == key and r["epochs"] > epochs]
    assert following and following[0]["metrics"]["epochs_trained"] == following[0]["epochs"], case
    assert rung_outcome(run) == rung_outcome(whole), f"{case}: not the uninterrupted run's evaluations"
    assert best(run) == best(whole), case
    assert not list((run / "rungs").glob("*.safetensors")), case


def replaced(state: Path, data: bytes) -> None:
    state.unlink()
    state.write_bytes(data)


def linked(state: Path, target: Path | str) -> None:
    state.unlink()
    state.symlink_to(target)


def header_edited(blob: bytes, edit) -> bytes:
    """`blob` with its `nas` header object edited and the file written again (its old digest kept in it)."""
    import struct

    size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + size])
    meta = json.loads(header["__metadata__"]["nas"])
    edit(meta)
    header["__metadata__"]["nas"] = json.dumps(meta)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + blob[8 + size :]


def another_candidates_state(run: Path, key: str, epochs: int) -> bytes:
    """The state file the driver writes for another candidate of the log after `epochs` epochs."""
    from nas.evaluate.rungfile import metadata_only
    from nas.run.rungs import RungStore

    other = next(r["key"] for r in log_lines(run) if r["key"] != key)
    store = RungStore(run.parent / f"{run.name}-other")
    store.save(other, epochs, metadata_only({"epochs_done": epochs, "key": other}))
    return store.file(other, epochs).read_bytes()


def test_a_bad_rung_state_is_one_warning_and_its_candidate_retrains_to_the_same_search(
    rung_runs, fast_tmp, record_property
):
    """A FIFO (no hang), a link to /dev/zero (no endless read), a link out of the run directory to a good copy
    of the state, another candidate's sealed state, a flipped byte, a header with a field removed, truncation,
    an empty file, an unsealed state (as an older evonas wrote it), its own state of another rung, a sparse file
    over the size bound, a folder: each is one warning line naming the path and why, the candidate trains its
    next rung from epoch 0, and the search ends with exactly the uninterrupted run's evaluations."""
    import os

    from nas.evaluate.rungfile import metadata_only, seal
    from nas.run.rungs import MAX_STATE_BYTES

    whole, paused, original = rung_runs
    good = original.read_bytes()
    key, epochs = state_name(original)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x04

    def sparse(state: Path) -> None:
        state.unlink()
        with open(state, "wb") as f:
            f.truncate(MAX_STATE_BYTES + 1)

    def folder(state: Path) -> None:
        state.unlink()
        (state / "something").mkdir(parents=True)

    cases = {
        "a FIFO": (lambda s: (s.unlink(), os.mkfifo(s)), ["not a regular file"]),
        "a link to /dev/zero": (lambda s: linked(s, "/dev/zero"), ["is a link"]),
        "a link out of the run directory": (lambda s: linked(s, fast_tmp / "outside.safetensors"), ["is a link"]),
        "another candidate's state": (
            lambda s: replaced(s, another_candidates_state(s.parents[1], key, epochs)),
            ["another candidate"],
        ),
        "a flipped byte": (lambda s: replaced(s, bytes(flipped)), ["damaged"]),
        "a header without its key": (lambda s: replaced(s, header_edited(good, lambda m: m.pop("key"))), ["damaged"]),
        "truncated": (lambda s: replaced(s, good[: len(good) // 2]), ["not a rung state"]),
        "empty": (lambda s: replaced(s, b""), ["not a rung state"]),
        "unsealed": (lambda s: replaced(s, metadata_only({"epochs_done": epochs, "key": key})), ["no checksum"]),
        "its state of another rung": (
            lambda s: replaced(s, seal(metadata_only({"epochs_done": 9, "key": key}), key, 9)),
            ["holds 9 epochs"],
        ),
        "a sparse file over the bound": (sparse, [f"over the {MAX_STATE_BYTES}"]),
        "a folder holding something": (folder, ["was a folder", "moved aside"]),
        "an empty folder": (lambda s: (s.unlink(), s.mkdir()), ["was a folder", "removed"]),
    }
    (fast_tmp / "outside.safetensors").write_bytes(good)
    for i, (case, (damage, reason)) in enumerate(cases.items()):
        run = copy_run(paused, fast_tmp / f"r{i}")
        state = run / "rungs" / original.name
        damage(state)
        assert_retrained_to_the_whole_run(run, whole, state, case, *reason)
        if case == "a folder holding something":
            assert (state.parent / f"{state.name}.moved-1" / "something").is_dir(), "nothing in it was deleted"
    record_property("tried", len(cases))


def test_a_rungs_path_that_is_not_a_folder_is_refused_in_one_line(rung_runs, fast_tmp, record_property):
    """`RUN_DIR/rungs` a file, a link to /proc, a link to a copy of the folder elsewhere: exit 2, one line naming it
    and what to do, nothing touched. Moved away as the line says, the resume runs to the uninterrupted search
    (the lost state is one warning, its candidate retrained)."""
    import shutil

    whole, paused, original = rung_runs
    cases = {
        "a file": (lambda r: r.write_bytes(b"rungs"), "is a file, not a folder"),
        "a link to /proc": (lambda r: r.symlink_to("/proc"), "is a link, not a folder"),
        "a link to a copy": (lambda r: r.symlink_to(shutil.copytree(paused / "rungs", fast_tmp / "copy")), "is a link"),
    }
    for i, (case, (make, words)) in enumerate(cases.items()):
        run = copy_run(paused, fast_tmp / f"f{i}")
        shutil.rmtree(run / "rungs")
        make(run / "rungs")
        assert_refused(run, case, str(run / "rungs"), words, "move it away and resume")
        (run / "rungs").rename(fast_tmp / f"moved-{i}")
        out = cli("resume", str(run), "--workers", "0")
        assert out.code == 0 and out.exception is None, (case, out.stderr[-2000:])
        warnings = [line for line in out.stderr.splitlines() if line.startswith("WARNING")]
        assert len(warnings) == 1 and "is missing" in warnings[0] and original.name in warnings[0], warnings
        assert rung_outcome(run) == rung_outcome(whole), case
    record_property("tried", len(cases))


def test_resume_removes_what_a_killed_state_write_left_staged(rung_runs, fast_tmp):
    """A state write killed before its rename leaves `rungs/.<key>.e<N>.safetensors.<random>.tmp`: the resume
    removes it (and nothing that is not one), without a warning, and ends as the uninterrupted search."""
    whole, paused, original = rung_runs
    run = copy_run(paused, fast_tmp / "staged")
    rungs = run / "rungs"
    staged = rungs / f".{original.name}.x1y2z3_a.tmp"
    staged.write_bytes(original.read_bytes()[:50])
    later = rungs / f".{original.name[:64]}.e3.safetensors.q8w7e6r5.tmp"  # the next rung's write, killed
    later.write_bytes(original.read_bytes())
    mine = rungs / "notes.tmp"
    mine.write_text("not evonas's")
    out = cli("resume", str(run), "--workers", "0")
    assert out.code == 0 and out.exception is None, out.stderr[-2000:]
    assert not [line for line in out.stderr.splitlines() if line.startswith("WARNING")], out.stderr[-2000:]
    assert not staged.exists() and not later.exists() and mine.read_text() == "not evonas's"
    assert rung_outcome(run) == rung_outcome(whole)


@pytest.fixture(scope="module")
def digits_rung_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The same with real training (tiny digits, rungs of 1 and 3 epochs): states with weights, optimizer, RNGs."""
    import yaml
    from reliability_runs import digits_config

    folder = tmp_path_factory.mktemp("digits-rungs")
    cfg = digits_config(folder, 6)
    data = yaml.safe_load(cfg.read_text())
    data["fitness"]["epochs"] = 3
    data["search"].update({"mode": "async", "fidelity": FIDELITY})
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return fidelity_runs(folder, cfg, 4)


def nan_weights(blob: bytes) -> bytes:
    """Every floating-point weight of the model set to NaN, written again by safetensors with the same metadata
    (its digest included), as a tool that edits tensors would."""
    import struct

    import torch
    from safetensors.torch import load, save

    tensors = load(blob)
    for name, value in tensors.items():
        if name.startswith("model.") and value.is_floating_point():
            tensors[name] = torch.full_like(value, float("nan"))
    size = struct.unpack("<Q", blob[:8])[0]
    return save(tensors, metadata=json.loads(blob[8 : 8 + size])["__metadata__"])


def test_a_damaged_real_rung_state_is_retrained_to_the_same_search(digits_rung_runs, tmp_path, record_property):
    """Real training: bytes of a tensor flipped (was: failed, "Invalid mt19937 state"), a header without
    `optim_scalars` (was: failed, KeyError), every weight NaN (was: ok at fitness 0.1). Each is one warning
    line, the candidate trains again from epoch 0, and the search ends with the uninterrupted run's evaluations
    (CPU training is deterministic for a seed)."""
    import torch

    torch.set_num_threads(1)
    whole, paused, original = digits_rung_runs
    good = original.read_bytes()
    data = 8 + int.from_bytes(good[:8], "little")
    flipped = bytearray(good)
    for offset in range(data, len(good), max(1, (len(good) - data) // 16)):
        flipped[offset] ^= 0xFF
    cases = {
        "tensor bytes flipped": bytes(flipped),
        "no optim_scalars": header_edited(good, lambda m: m.pop("optim_scalars")),
        "NaN weights": nan_weights(good),
    }
    for i, (case, bad) in enumerate(cases.items()):
        run = copy_run(paused, tmp_path / f"d{i}")
        state = run / "rungs" / original.name
        replaced(state, bad)
        assert_retrained_to_the_whole_run(run, whole, state, case, "damaged")
    record_property("tried", len(cases))


_real_state: dict[str, bytes] = {}


def real_sealed_state(folder: Path) -> bytes:
    """A rung state file as the driver writes it for a real training (weights, momentum, RNGs) of the example
    network after one optimizer step, sealed for key "a" * 64 after 1 epoch; made once."""
    if "blob" not in _real_state:
        import torch

        from nas.evaluate import trainstate
        from nas.evaluate.trainer import seeded_model
        from nas.genome.architecture import load_architecture
        from nas.run.rungs import RungStore

        model = seeded_model(load_architecture(ROOT / "examples/densenet_small.yaml"), 0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model(torch.rand(4, 1, 8, 8)).sum().backward()
        optimizer.step()
        state = trainstate.capture(model, optimizer, torch.Generator().manual_seed(0), 1)
        store = RungStore(folder)
        store.save("a" * 64, 1, state)
        _real_state["blob"] = store.file("a" * 64, 1).read_bytes()
    return _real_state["blob"]


def corruption(size: int, header: int) -> st.SearchStrategy:
    """One change to a file of `size` bytes whose header ends at `header`: a bit flipped, bytes overwritten,
    inserted or deleted (in the header or anywhere), the file cut or extended."""
    anywhere = st.one_of(st.integers(0, header - 1), st.integers(0, size - 1))
    junk = st.binary(min_size=1, max_size=16)
    return st.one_of(
        st.tuples(st.just("flip"), anywhere, st.integers(0, 7)),
        st.tuples(st.just("write"), anywhere, junk),
        st.tuples(st.just("insert"), anywhere, junk),
        st.tuples(st.just("delete"), anywhere, st.integers(1, 64)),
        st.tuples(st.just("cut"), anywhere),
        st.tuples(st.just("append"), junk),
    )


def corrupted(data: bytes, change: tuple) -> bytes:
    """`data` (not empty) with `change` made; an offset beyond its end (it was cut before) wraps around."""
    kind, *args = change
    if kind != "append":
        args[0] %= len(data)
    if kind == "flip":
        offset, bit = args
        return data[:offset] + bytes([data[offset] ^ (1 << bit)]) + data[offset + 1 :]
    if kind == "write":
        offset, junk = args
        return data[:offset] + junk + data[offset + len(junk) :]
    if kind == "insert":
        offset, junk = args
        return data[:offset] + junk + data[offset:]
    if kind == "delete":
        offset, length = args
        return data[:offset] + data[offset + length :]
    if kind == "cut":
        return data[: args[0]]
    return data + args[0]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_loader_returns_a_rung_state_only_when_it_is_exactly_the_one_written(tmp_path_factory, data):
    """Over generated corruptions of a real rung state file (1 to 3 changes: bits flipped, bytes overwritten,
    inserted or deleted, the file cut or extended, in the header or the tensors): the store returns the state
    only when the file holds exactly the bytes it wrote, else None with one warning line; never an exception,
    never a different state."""
    import logging

    from nas.run.rungs import RungStore

    folder = tmp_path_factory.getbasetemp() / "loader-rule"
    good = real_sealed_state(folder)
    header = 8 + int.from_bytes(good[:8], "little")
    bad = good
    for change in data.draw(st.lists(corruption(len(good), header), min_size=1, max_size=3)):
        if bad:
            bad = corrupted(bad, change)
    store = RungStore(folder)
    store.file("a" * 64, 1).write_bytes(bad)
    warned: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warned.append(record.getMessage())
    logging.getLogger("nas.run.rungs").addHandler(handler)
    try:
        loaded = store.load("a" * 64, 1)
    finally:
        logging.getLogger("nas.run.rungs").removeHandler(handler)
    if bad == good:
        assert loaded == good and not warned
    else:
        assert loaded is None and len(warned) == 1 and "trains again from epoch 0" in warned[0], warned


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_worker_refuses_a_corrupted_state_as_a_value_error_or_loads_it(tmp_path_factory, data):
    """The worker's loader (`trainstate.restore`) behind the driver's check: whatever the corruption, it loads
    the state or raises `ValueError` (a failed result with a reason), never a `KeyError`, torch's own error or
    a crash. (What it loads from a corrupted file can differ from what was saved: that is why the driver checks
    the checksum before any worker sees the bytes.)"""
    import random as python_random

    import numpy as np
    import torch

    from nas.evaluate import trainstate
    from nas.evaluate.trainer import seeded_model
    from nas.genome.architecture import load_architecture

    good = real_sealed_state(tmp_path_factory.getbasetemp() / "loader-rule")
    header = 8 + int.from_bytes(good[:8], "little")
    bad = good
    for change in data.draw(st.lists(corruption(len(good), header), min_size=1, max_size=2)):
        if bad:
            bad = corrupted(bad, change)
    model = seeded_model(load_architecture(ROOT / "examples/densenet_small.yaml"), 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rngs = (torch.get_rng_state(), np.random.get_state(), python_random.getstate())
    try:
        assert trainstate.restore(bad, model, optimizer, torch.Generator()) == 1
    except ValueError:
        pass
    finally:
        torch.set_rng_state(rngs[0])
        np.random.set_state(rngs[1])
        python_random.setstate(rngs[2])
