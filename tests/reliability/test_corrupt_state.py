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
import random
import re
from pathlib import Path

import pytest
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

from nas.run.checkpoint import read_one

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
