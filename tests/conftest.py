"""Shared fixtures: paths to the project, the shared data folder, and a runner for the real `nas` command."""

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Mutation runs (tests/mutation/run.py) run the property tests once per mutant: fewer, derandomised examples keep
# a run within hours and its score the same from one run to the next. The normal suite keeps hypothesis's defaults.
settings.register_profile("mutation", max_examples=15, derandomize=True, database=None, deadline=None)
if os.environ.get("NAS_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["NAS_HYPOTHESIS_PROFILE"])

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def run_nas(*args: str, timeout: float = 300, env: dict | None = None, cwd: Path | None = None):
    """Run the real `nas` command line in a subprocess; returns the CompletedProcess (text mode)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "nas", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or ROOT,
    )


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, with as many workers as cores or more, every training runs one thread
    (`OMP_NUM_THREADS`, which `nas.evaluate.threads` keeps and every process a test starts inherits): two
    workers' thread pools spinning against each other made busy tests take three times their idle time on 2
    cores. The tests that check the thread count itself remove it."""
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if count.isdigit() and int(count) >= cores:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", "1")


def nas_here(*args: str) -> subprocess.CompletedProcess:
    """`nas ARGS` through `nas.cli.main` in this process, as `run_nas` reports it (exit code, stdout, stderr):
    for the tests that need a command's result rather than a real process, without a process start and a torch
    import (seconds) each time."""
    from nas.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(["nas", *args], code, out.getvalue(), err.getvalue())


def nas_ok(*args: str) -> str:
    """`nas_here` that must succeed: its stdout."""
    out = nas_here(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.fixture
def nas():
    return run_nas


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (it is present in CI)")
    return SHARED_DATA


# --- test tiers ---------------------------------------------------------------------------------------------------
# `make check` is the edit loop's tier (under 2 minutes on 2 cores): everything not marked `full`. `make test` (what
# CI runs) is every test. A test is `full` when it is marked `slow` (long real training), or lives in a module that
# starts Ray clusters or kills real processes, runs mutants, or in the reliability suite.
FULL_MODULES = {
    "test_async_search",
    "test_fidelity_surrogate",
    "test_inherit_quality",
    "test_mutation",
    "test_ray_cluster",
    "test_ray_embedded",
    "test_ray_evaluator",
    "test_ray_search",
    "test_worker_memory",
}


# Single tests of otherwise fast modules that kill real processes, start Ray, or train for more than about 6 s
# on 2 cores (measured with --durations=0).
FULL_TESTS = {
    "test_bbbc014.py::test_pipeline_learns_across_cell_lines_and_reuses_its_cache",
    "test_bbbc021.py::test_pipeline_learns_the_moa_and_reuses_its_cache",
    "test_commands.py::test_export_then_inspect_and_predict_called_from_python",
    "test_data_summary.py::test_text_summary_reads_as_words_and_numbers_not_python",
    "test_export.py::test_export_prints_where_everything_went",
    "test_export.py::test_rank_k_refreshes_the_default_folder_but_never_foreign_files",
    "test_export.py::test_retrained_weights_round_trip",
    "test_fidelity_search.py::test_async_fidelity_sigkill_then_resume_continues_the_same_run",
    "test_fidelity_search.py::test_rungs_through_ray_give_the_in_process_search",
    "test_fidelity_search.py::test_sigkill_during_a_promotion_then_resume_loses_nothing_and_trains_nothing_twice",
    "test_report.py::test_digits_report",
    "test_report.py::test_report_lists_failures_and_arms_and_refuses_foreign_files",
    "test_search.py::test_a_second_driver_on_a_running_search_is_refused_and_changes_nothing",
    "test_search.py::test_sigint_and_sigterm_stop_cleanly_and_resume",
    "test_search.py::test_sigkill_at_random_instants_loses_nothing",
    "test_search.py::test_sigterm_during_real_training_logs_nothing_for_the_interrupted_candidate",
    "test_train_command.py::test_full_reports_test_accuracy_only_and_epochs_override",
    "test_train_command.py::test_quickstart_reaches_95_percent_on_digits_and_saves_a_loadable_network",
    "test_trainer.py::test_cifar10_jpeg_subset_learns_and_is_deterministic",
    "test_transfer.py::test_bad_weights_file_exits_2_naming_it",
    "test_transfer.py::test_folds_run_through_the_shared_protocol_code",
    "test_transfer.py::test_from_scratch_run_through_the_cli_is_labelled_everywhere",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        in_full_module = item.path.stem in FULL_MODULES or "reliability" in item.path.parts
        name = f"{item.path.name}::{item.originalname}"
        if in_full_module or name in FULL_TESTS or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.full)
