"""Disk faults: a write that fails mid-search (disk full at every write of a run), a log append cut short, and
the run directory turning read-only under a running search.

What must hold each time: the command stops with exit 2 and one error line naming the file and the reason (no
traceback), `checkpoint.json` is a valid checkpoint of the last step (or of the step being saved, when only the
final sync failed), every evaluation that reached the log is still there, and once the disk is back `nas
resume` ends with exactly the uninterrupted run's log content and best. The synthetic search (milliseconds an
evaluation, a checkpoint every few lines) makes it cheap to fail at every write a run makes.
"""

import ctypes
import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliability_runs import ROOT, THREADS_ENV, best, cli, content, copy_run, keys, log_lines, scratch, synthetic_config

import nas.run.state as state_module
from nas.run.checkpoint import FORMAT, read_one
from nas.run.runlog import EvaluationLog

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
FIRST_ALL = 45  # fail at every one of the first writes of a run (config, four checkpoint saves, bests, appends)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """A synthetic search and its uninterrupted run (made here: the faults below need its exact write pattern)."""
    folder = tmp_path_factory.mktemp("disk-reference")
    cfg = synthetic_config(folder)
    out = cli("search", str(cfg), "--run-dir", str(folder / "run"), "--workers", "0")
    assert out.code == 0 and out.exception is None, (out.stderr, out.exception)
    return cfg, folder / "run"


@pytest.fixture
def fast_tmp(tmp_path):
    with scratch(tmp_path) as folder:
        yield folder


class FullDisk:
    """`os.fsync` and `os.replace`, as called from evonas, raising ENOSPC at the `fail_at`-th call.

    Those two calls end every durable write evonas makes (the log's append, each step of an atomic write, each
    rename of a checkpoint save), so failing the N-th one for every N fails each write of a run in turn.
    Calls from elsewhere (TensorBoard's writer thread, the standard library) pass through and are not counted.
    """

    def __init__(self, fail_at: int | None = None):
        self.fail_at = fail_at
        self.sites: list[str] = []

    def wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def fake(*args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1)
            module = caller.f_globals.get("__name__", "")
            if module.startswith("nas."):
                self.sites.append(f"{module}.{caller.f_code.co_name}:{real.__name__}")
                if len(self.sites) == self.fail_at:
                    raise ENOSPC
            return real(*args, **kwargs)

        return fake


class Saves:
    """Every checkpoint state the driver asked to save, and how many of the saves completed."""

    def __init__(self, real: Callable[[Path, dict[str, Any]], None]):
        self.real = real
        self.states: list[dict[str, Any]] = []
        self.completed = 0

    def __call__(self, run_dir: Path, state: dict[str, Any]) -> None:
        self.states.append(json.loads(json.dumps({"format": FORMAT, **state})))
        self.real(run_dir, state)
        self.completed += 1


def count_appends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of the results whose log append returned (the log is durable from that moment on)."""
    appended: list[str] = []
    real = EvaluationLog.append

    def append(self: EvaluationLog, result: Any) -> None:
        real(self, result)
        appended.append(result.key)

    monkeypatch.setattr(EvaluationLog, "append", append)
    return appended


def faulty_search(cfg: Path, run: Path, disk: FullDisk):
    """`nas search` in this process with the faulty disk; returns the outcome and what was saved and appended."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", disk.wrap(os.fsync))
        mp.setattr(os, "replace", disk.wrap(os.replace))
        saves = Saves(state_module.save_checkpoint)
        mp.setattr(state_module, "save_checkpoint", saves)
        appended = count_appends(mp)
        out = cli("search", str(cfg), "--run-dir", str(run), "--workers", "0")
    return out, saves, appended


def assert_one_line_error(out, *words: str) -> None:
    assert out.exception is None, f"escaped: {out.exception!r}"
    assert out.code == 2, (out.code, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    lines = out.error_lines()
    assert len(lines) == 1, out.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]


def assert_recovers(run: Path, whole: Path, cfg: Path) -> None:
    """With the disk back, the run ends exactly as the uninterrupted one (resumed, or started again if the
    failure came before the run directory held its config)."""
    if (run / "config.yaml").exists():
        out = cli("resume", str(run), "--workers", "0")
    else:
        assert not any(run.iterdir()), "a run directory without its config must be left empty"
        out = cli("search", str(cfg), "--run-dir", str(run), "--workers", "0")
    assert out.code == 0 and out.exception is None, (out.stderr[-2000:], out.exception)
    assert keys(run) == keys(whole), "the resumed run is not the uninterrupted run"
    assert content(run) == content(whole)
    assert best(run) == best(whole)
    provenance = read_yaml_provenance(run / "best/architecture.yaml")
    assert provenance["key"] == best(whole)[0], "best/architecture.yaml does not name the best"


def read_yaml_provenance(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())["provenance"]


def test_a_write_failing_with_disk_full_stops_cleanly_and_resume_loses_nothing(reference, fast_tmp, record_property):
    """Disk full at each write of a run in turn: exit 2 and one line, checkpoint.json valid, the log kept, resumable.

    The N-th `os.fsync`/`os.replace` of a whole run fails: the config, log appends, best architectures, each
    step of a checkpoint save (staged file, previous copy, final rename, directory sync). Every N through the
    first four checkpoint saves (each kind of write at least three times), then every fourth N to the end.
    """
    cfg, whole = reference
    dry = FullDisk()
    out, _, _ = faulty_search(cfg, fast_tmp / "dry", dry)
    assert out.code == 0 and keys(fast_tmp / "dry") == keys(whole)
    total = len(dry.sites)
    kinds = {site.split(":")[0].rsplit(".", 1)[-1] for site in dry.sites}
    assert {"atomic_write_text", "append", "save_checkpoint"} <= kinds, kinds
    chosen = sorted({*range(1, FIRST_ALL + 1), *range(FIRST_ALL + 1, total + 1, 4), total})
    for n in chosen:
        run = fast_tmp / f"fail-{n}"
        out, saves, appended = faulty_search(cfg, run, FullDisk(fail_at=n))
        where = dry.sites[n - 1]
        assert_one_line_error(out, "No space left on device")
        assert "nas resume" in out.error_lines()[0] or "nothing ran" in out.error_lines()[0], where
        lines = keys(run)
        assert lines == keys(whole)[: len(lines)], f"{where}: the log is not a prefix of the run's"
        assert len(lines) >= len(appended), f"{where}: an appended evaluation is missing from the log"
        checkpoint = read_one(run / "checkpoint.json")
        if saves.completed:
            allowed = saves.states[saves.completed - 1 : saves.completed + 1]
            assert checkpoint is not None and checkpoint in allowed, f"{where}: checkpoint.json is not intact"
        assert_recovers(run, whole, cfg)
    record_property("tried", len(chosen))


class TornFile:
    """The log's open file, whose `fail_at`-th write puts half its text on disk and then fails with ENOSPC,
    as write(2) does when the disk fills in the middle of a line."""

    def __init__(self, real: Any, fail_at: int):
        self.real, self.fail_at, self.writes = real, fail_at, 0

    def write(self, text: str) -> int:
        self.writes += 1
        if self.writes == self.fail_at:
            self.real.write(text[: len(text) // 2])
            self.real.flush()
            raise ENOSPC
        return self.real.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_log_append_cut_short_by_a_full_disk_is_dropped_on_resume(reference, fast_tmp, record_property):
    """An append cut in half by a full disk: exit 2 and one line; resume cuts the torn line and loses nothing."""
    cfg, whole = reference
    real_init = EvaluationLog.__init__
    tried = 0
    for n in range(1, len(keys(whole)) + 1, 3):
        with pytest.MonkeyPatch.context() as mp:

            def init(self: EvaluationLog, path: Any, rules: Any = None, fail_at: int = n) -> None:
                real_init(self, path, rules)
                self._file = TornFile(self._file, fail_at)

            mp.setattr(EvaluationLog, "__init__", init)
            run = fast_tmp / f"torn-{n}"
            out = cli("search", str(cfg), "--run-dir", str(run), "--workers", "0")
        assert_one_line_error(out, "evaluations.jsonl", "No space left on device")
        text = (run / "evaluations.jsonl").read_text()
        assert not text.endswith("\n") and text.count("\n") == n - 1, "expected n-1 lines and a torn n-th"
        assert keys(run) == keys(whole)[: n - 1]
        out = cli("resume", str(run), "--workers", "0")
        assert out.code == 0 and "incomplete" in out.stderr, out.stderr[-2000:]
        assert keys(run) == keys(whole) and content(run) == content(whole) and best(run) == best(whole)
        tried += 1
    record_property("tried", tried)


# Read-only run directory. chmod does not stop root, which has CAP_DAC_OVERRIDE: when the tests run as root, the
# search runs in a child process whose capability bounding set lacks the capabilities that bypass file
# permissions, so it is refused like any other user (prctl(PR_CAPBSET_DROP) before exec; needs CAP_SETPCAP).
PR_CAPBSET_DROP = 24
BYPASS_CAPS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def drop_permission_bypass() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in BYPASS_CAPS:
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def unprivileged(args: list[str], **kwargs: Any) -> subprocess.Popen:
    """`python -m nas ARGS` in a child that file permissions apply to, even when this process is root."""
    preexec = drop_permission_bypass if os.geteuid() == 0 else None
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **THREADS_ENV}
    return subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=ROOT, env=env, preexec_fn=preexec, **kwargs)


@pytest.fixture(scope="module")
def chmod_bites(tmp_path_factory) -> None:
    """Skip when a read-only folder would not stop the child (root without CAP_SETPCAP to drop its bypass)."""
    folder = tmp_path_factory.mktemp("probe")
    folder.chmod(0o555)
    try:
        probe = [sys.executable, "-c", f"open({str(folder / 'x')!r}, 'w')"]
        preexec = drop_permission_bypass if os.geteuid() == 0 else None
        done = subprocess.run(probe, preexec_fn=preexec, capture_output=True)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"running as root and cannot drop the permission bypass for a child ({exc}): chmod does not bite")
    finally:
        folder.chmod(0o755)
    if done.returncode == 0:
        pytest.skip("a read-only folder does not stop this user's processes (root): chmod does not bite")


def set_writable(run: Path, writable: bool) -> None:
    """chmod the run directory first (no file can be created or renamed in it from then on), then the rest. A
    staged file that the running search renames between the listing and its chmod is passed over: its folder
    is read-only a moment later."""
    paths = [run, *sorted(run.rglob("*"))]
    bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    for path in paths if not writable else reversed(paths):
        try:
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IWUSR if writable else mode & ~bits)
        except FileNotFoundError:
            continue


def test_run_directory_turning_read_only_mid_search_stops_cleanly_and_resumes(
    reference, chmod_bites, tmp_path, record_property
):
    """The run directory made read-only under a running search: exit 2 and one line, nothing touched, resumable.

    Also: `nas resume` while the directory is still read-only is the same one line and changes nothing.
    """
    cfg, whole = reference
    slow = synthetic_config(tmp_path, fitness={"seconds_per_evaluation": 0.05})
    tried = 0
    for after in (4, 17):
        run = tmp_path / f"ro-{after}"
        stderr = tmp_path / f"stderr-{after}.txt"
        with open(stderr, "wb") as err:
            proc = unprivileged(["search", str(slow), "--run-dir", str(run), "--workers", "0"], stderr=err)
        deadline = time.monotonic() + 120
        while len(log_lines(run)) < after:
            assert proc.poll() is None and time.monotonic() < deadline, stderr.read_text()[-2000:]
            time.sleep(0.01)
        set_writable(run, False)
        frozen = {p.name: p.read_bytes() for p in run.glob("checkpoint*.json")}
        assert "checkpoint.json" in frozen
        seen = keys(run)
        assert proc.wait(timeout=120) == 2, stderr.read_text()[-2000:]
        text = stderr.read_text()
        errors = [line for line in text.splitlines() if ": error: " in line]
        assert "Traceback" not in text and len(errors) == 1 and "Permission denied" in errors[0], text[-2000:]
        assert f"nas resume {run}" in errors[0]
        lines = keys(run)
        assert lines[: len(seen)] == seen and lines == keys(whole)[: len(lines)], "the log lost or changed a line"
        assert {name: (run / name).read_bytes() for name in frozen} == frozen, "a checkpoint changed"

        if not tried:  # once: a resume while the directory is still read-only is the same one line, no change
            again = unprivileged(["resume", str(run), "--workers", "0"], stderr=subprocess.PIPE)
            _, err_bytes = again.communicate(timeout=120)
            text = err_bytes.decode(errors="replace")
            errors = [line for line in text.splitlines() if ": error: " in line]
            assert again.returncode == 2 and "Traceback" not in text and len(errors) == 1, text[-2000:]
            assert keys(run) == lines and {name: (run / name).read_bytes() for name in frozen} == frozen

        set_writable(run, True)
        assert_recovers(run, whole, cfg)
        tried += 1
    record_property("tried", tried)


def test_a_full_disk_during_a_checkpoint_save_leaves_nothing_behind_and_the_hint_is_true(
    reference, fast_tmp, record_property
):
    """Disk full at each write of the first checkpoint saves in turn (the very first one included): no staged or
    temporary file is left on the full disk, and the error's hint says what is really there (a checkpoint
    holding the last step, or none yet); `checkpoint.prev.json` is a hard link, which needs no free space."""
    cfg, whole = reference
    dry = FullDisk()
    faulty_search(cfg, fast_tmp / "dry", dry)
    saves = [n for n, site in enumerate(dry.sites, start=1) if ".checkpoint." in site or "save_checkpoint" in site]
    chosen = saves[:16]
    for n in chosen:
        run = fast_tmp / f"ckpt-{n}"
        out, _, _ = faulty_search(cfg, run, FullDisk(fail_at=n))
        assert_one_line_error(out, "No space left on device")
        leftovers = [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock"]
        assert not leftovers, f"{dry.sites[n - 1]}: left on the full disk: {leftovers}"
        line = out.error_lines()[0]
        if read_one(run / "checkpoint.json") is None:
            assert "holds the last step" not in line and "no checkpoint" in line, line
        else:
            assert "checkpoint.json holds the last step" in line, line
        assert_recovers(run, whole, cfg)
    run, linked = fast_tmp / "linked", []
    real = state_module.save_checkpoint

    def save(run_dir: Path, state: dict[str, Any]) -> None:
        current = run_dir / "checkpoint.json"
        before = current.stat().st_ino if current.exists() else None
        real(run_dir, state)
        if before is not None:
            linked.append((run_dir / "checkpoint.prev.json").stat().st_ino == before)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state_module, "save_checkpoint", save)
        assert cli("search", str(cfg), "--run-dir", str(run), "--workers", "0").code == 0
    assert linked and all(linked), "the previous checkpoint was written as a copy, not linked"
    record_property("tried", len(chosen) + len(linked))


# --- publishing a folder (export, report, train --save) where the disk will not take it ---------------------------

EROFS = OSError(errno.EROFS, os.strerror(errno.EROFS))


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` (itself included) with a file's bytes, None for a folder; {} when absent."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in [folder, *folder.rglob("*")]}


def impossible_places() -> list[str]:
    """Folders no process can make: under /proc (no such entry may be created), and the sysfs root."""
    places = ["/proc/self/evonas-out", "/proc/1/evonas/out", "/proc/evonas-out"]
    if os.path.ismount("/sys") and os.path.isdir("/sys/kernel"):  # sysfs, where mkdir is refused to everyone
        places.append("/sys/evonas-out")
    return places


def test_export_and_train_save_into_an_impossible_place_are_one_line(reference, tmp_path, record_property):
    """`nas export --out` and `nas train --save` into folders under /proc and the sysfs root (no such entry can be
    made there, by root either): exit 2 and one line naming the folder, no traceback, nothing made."""
    _, whole = reference
    run = copy_run(whole, tmp_path / "run")
    before, tried = tree(run), 0
    arch = ROOT / "examples/densenet_small.yaml"
    digits = ROOT / "search_configs/digits_quick.yaml"
    for place in impossible_places():
        assert_one_line_error(cli("export", str(run), "--out", place), place)
        assert_one_line_error(cli("train", str(arch), "--config", str(digits), "--epochs", "1", "--save", place), place)
        assert not os.path.exists(place)
        tried += 2
    assert tree(run) == before
    record_property("tried", tried)


class FailingStaging:
    """The filesystem calls `nas.stagedir` makes (mkdtemp, fsync, chmod, rename, replace, fsync_dir), the
    `fail_at`-th raising `error`: a read-only or full file system at each step of staging and publishing a folder.
    Calls from anywhere else pass through and are not counted."""

    def __init__(self, fail_at: int | None = None, error: OSError = EROFS):
        self.fail_at, self.error = fail_at, error
        self.sites: list[str] = []

    def wrap(self, real: Callable[..., Any], name: str, anywhere: bool = False) -> Callable[..., Any]:
        def fake(*args: Any, **kwargs: Any) -> Any:
            if anywhere or sys._getframe(1).f_globals.get("__name__") == "nas.stagedir":
                self.sites.append(name)
                if len(self.sites) == self.fail_at:
                    raise self.error
            return real(*args, **kwargs)

        return fake

    def __enter__(self) -> "FailingStaging":
        import tempfile

        import nas.stagedir as stagedir

        self.patch = pytest.MonkeyPatch()
        for module, name in ((tempfile, "mkdtemp"), (os, "fsync"), (os, "chmod"), (os, "rename"), (os, "replace")):
            self.patch.setattr(module, name, self.wrap(getattr(module, name), name))
        self.patch.setattr(stagedir, "fsync_dir", self.wrap(stagedir.fsync_dir, "fsync_dir", anywhere=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        self.patch.undo()


def reset(absent: Path, empty: Path) -> None:
    """`absent` removed and `empty` an empty folder again (a successful export fills them)."""
    shutil.rmtree(absent, ignore_errors=True)
    shutil.rmtree(empty, ignore_errors=True)
    empty.mkdir()


def staging_leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".staging-" in p.name or ".old-" in p.name)


def test_export_and_report_failing_at_each_step_of_publishing_leave_the_previous_folder(
    reference, tmp_path, record_property
):
    """A read-only file system (EROFS) or a full disk (ENOSPC) at each step of staging and publishing a folder in
    turn (making the staging folder, a file's fsync, the chmod, the old folder's rename aside, the rename into
    place, the folder's fsync): `nas export` refreshing RUN_DIR/export, `nas export --out` into a new and into an
    empty folder, `nas report` refreshing RUN_DIR/report. Exit 2 and one line naming the folder; the previous
    folder (or its absence, or the empty folder) exactly as before; no staging or old folder left behind."""
    _, whole = reference
    run = copy_run(whole, tmp_path / "run")
    assert cli("export", str(run)).code == 0 and cli("report", str(run)).code == 0
    fresh, empty = tmp_path / "fresh", tmp_path / "empty"
    calls = {
        "export": (("export", str(run)), run / "export"),
        "export --out new": (("export", str(run), "--out", str(fresh)), fresh),
        "export --out empty": (("export", str(run), "--out", str(empty)), empty),
        "report": (("report", str(run)), run / "report"),
    }
    tried = 0
    for what, (argv, target) in calls.items():
        reset(fresh, empty)
        with FailingStaging() as dry:
            assert cli(*argv).code == 0
        sites = dry.sites[: dry.sites.index("fsync_dir") + 1]
        steps = {step: sites.index(step) + 1 for step in dict.fromkeys(sites)}  # the first call of each kind
        assert {"mkdtemp", "fsync", "chmod", "replace", "fsync_dir"} <= set(steps), sites
        assert ("rename" in steps) == (target.name in ("export", "report")), sites
        for i, (step, n) in enumerate(steps.items()):
            for error in (EROFS, ENOSPC) if step == "mkdtemp" else ((EROFS, ENOSPC)[i % 2],):
                reset(fresh, empty)
                before = tree(target)
                with FailingStaging(fail_at=n, error=error):
                    out = cli(*argv)
                assert_one_line_error(out, str(target), error.strerror)
                assert tree(target) == before, f"{what}: {step} failing changed {target}"
                assert not staging_leftovers(target.parent), f"{what}: {step}: {staging_leftovers(target.parent)}"
                tried += 1
    record_property("tried", tried)


def test_export_report_and_train_save_on_a_read_only_run_directory_are_one_line(
    reference, chmod_bites, tmp_path, record_property
):
    """A finished run directory made read-only (chmod, the child without root's permission bypass): `nas export`
    (RUN_DIR/export, and `--out` inside the run), `nas report` and `nas train --save` into it. Exit 2 and one line
    naming the folder, no traceback, the run directory unchanged; both work once it is writable again."""
    _, whole = reference
    run = copy_run(whole, tmp_path / "run")
    arch = ROOT / "examples/densenet_small.yaml"
    calls = [
        (["export", str(run)], run / "export"),
        (["export", str(run), "--out", str(run / "mine")], run / "mine"),
        (["report", str(run)], run / "report"),
        (["train", str(arch), "--config", str(run / "config.yaml"), "--epochs", "1", "--save", str(run / "w")],
         run / "w"),
    ]  # fmt: skip
    set_writable(run, False)
    try:
        before = tree(run)
        for argv, target in calls:
            proc = unprivileged(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            _, err = proc.communicate(timeout=300)
            text = err.decode(errors="replace")
            errors = [line for line in text.splitlines() if ": error: " in line]
            assert proc.returncode == 2 and "Traceback" not in text and len(errors) == 1, (argv, text[-2000:])
            assert str(target) in errors[0] and "Permission denied" in errors[0], errors[0]
            assert tree(run) == before, f"{argv[0]} changed the read-only run directory"
    finally:
        set_writable(run, True)
    assert cli("export", str(run)).code == 0 and cli("report", str(run)).code == 0
    record_property("tried", len(calls))
