"""Shared fixtures: paths to the project, the shared data folder, and a runner for the real `nas` command."""

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
    "test_mutation",
    "test_ray_cluster",
    "test_ray_embedded",
    "test_ray_evaluator",
    "test_ray_search",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        in_full_module = item.path.stem in FULL_MODULES or "reliability" in item.path.parts
        if in_full_module or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.full)
