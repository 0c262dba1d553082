"""`ray.runtime_env`: what a search's workers run in. The config key is a mapping checked with its key path, its
local paths resolved against the config's folder; a mistake is one line before Ray starts; and on a real local
Ray cluster the workers see its variables and import the code it ships (`py_modules`), as workers of a plain
Ray cluster without evonas installed would."""

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
import ray.cloudpickle
import yaml
from conftest import ROOT, run_nas
from hypothesis import given
from hypothesis import strategies as st
from probe_objective import ProbeObjective, job_of

from nas.config import RayConfig, ResourcesConfig, load_config, runtime_env_paths
from nas.errors import UserError
from nas.evaluate.runtime_env import check_runtime_env

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

SHIPPED = "evonas_shipped_probe"  # a package only the runtime_env brings to the workers


def write_config(folder: Path, ray_section: Any) -> Path:
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["ray"] = ray_section
    (folder / "cfg.yaml").write_text(yaml.safe_dump(data))
    return folder / "cfg.yaml"


def test_local_paths_are_relative_to_the_config_and_the_rest_is_kept_as_written(tmp_path):
    env = {
        "working_dir": "project",
        "py_modules": ["../lib/nas", "s3://bucket/nas.zip", "https://example.org/nas.whl"],
        "pip": ["evonas==0.1.0"],
        "env_vars": {"OMP_NUM_THREADS": "1"},
    }
    config = load_config(write_config(tmp_path, {"runtime_env": env}))
    assert config.ray.runtime_env == {
        "working_dir": str((tmp_path / "project").resolve()),
        "py_modules": [
            str((tmp_path.parent / "lib/nas").resolve()),
            "s3://bucket/nas.zip",
            "https://example.org/nas.whl",
        ],
        "pip": ["evonas==0.1.0"],
        "env_vars": {"OMP_NUM_THREADS": "1"},
    }
    assert load_config(write_config(tmp_path, {"address": "auto"})).ray.runtime_env is None


@pytest.mark.parametrize(
    "value,message",
    [
        (["pip"], "ray.runtime_env: must be a mapping"),
        ("pip", "ray.runtime_env: must be a mapping"),
        ({1: "x"}, "ray.runtime_env: keys must be strings"),
    ],
)
def test_a_runtime_env_that_is_not_a_mapping_of_names_is_refused_with_its_key(tmp_path, value, message):
    with pytest.raises(UserError, match=message):
        load_config(write_config(tmp_path, {"runtime_env": value}))


@pytest.mark.parametrize(
    "env,message",
    [
        ({"pipp": ["evonas"]}, r"ray.runtime_env.pipp: not a field of Ray's runtime_env \(known: .*pip"),
        ({"working_dir": "/no/such/folder"}, r"ray.runtime_env.working_dir: no such file or folder: /no/such"),
        ({"py_modules": ["s3://b/m.zip", "/no/such/nas"]}, r"ray.runtime_env.py_modules\[1\]: no such file"),
        ({"env_vars": {"X": 1}}, r"ray.runtime_env: .*env_vars.*Dict\[str, str\]"),
        ({"pip": ["evonas"], "conda": "base"}, r"ray.runtime_env: The 'pip' field.*cannot be specified"),
    ],
)
def test_what_ray_would_refuse_late_is_refused_first_with_its_key(env, message):
    with pytest.raises(UserError, match=message):
        check_runtime_env(env)


def test_an_empty_runtime_env_is_none_and_a_valid_one_passes_as_given(tmp_path):
    assert check_runtime_env(None) is None and check_runtime_env({}) is None
    env = {"env_vars": {"X": "1"}, "py_modules": [str(tmp_path)], "pip": ["evonas"]}
    assert check_runtime_env(env) is env


def test_a_bad_runtime_env_is_one_line_and_exit_2_before_a_run_directory_exists(tmp_path):
    config = write_config(tmp_path, {"runtime_env": {"pip": ["evonas"], "working_dir": "missing"}})
    out = run_nas("search", str(config), "--run-dir", str(tmp_path / "run"))
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "ray.runtime_env.working_dir: no such file or folder" in errors[0], out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "run").exists()


relative = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="-_."), min_size=1, max_size=8)
relative = relative.filter(lambda name: name not in (".", ".."))
uri = st.builds(lambda scheme, name: f"{scheme}://host/{name}.zip", st.sampled_from(["s3", "gs", "https"]), relative)
entry = st.one_of(relative, uri)


@given(working_dir=entry, py_modules=st.lists(entry, max_size=4), other=st.dictionaries(relative, relative))
def test_runtime_env_paths_resolve_local_entries_only_and_touch_nothing_else(working_dir, py_modules, other):
    base = Path("/cfg/dir")
    env = {**other, "working_dir": working_dir, "py_modules": py_modules}
    out = runtime_env_paths(env, base, "ray.runtime_env")

    def expected(value: str) -> str:
        return value if "://" in value else str((base / value).resolve())

    assert out == {**other, "working_dir": expected(working_dir), "py_modules": [expected(p) for p in py_modules]}
    assert env["working_dir"] == working_dir and env["py_modules"] == py_modules  # the input is left alone
    assert runtime_env_paths(out, base, "ray.runtime_env") == out  # a saved config reads back the same


# --- a real local Ray cluster, the search's workers in the runtime_env --------------------------------------------


@dataclass
class EnvironmentProbe(ProbeObjective):
    """Reports what the worker that ran it sees: a variable, and whether the shipped package imports."""

    def act(self, behaviour: str, growth: int) -> dict[str, Any]:
        try:
            shipped = __import__(SHIPPED).VALUE
        except ImportError:
            shipped = None
        return {"variable": os.environ.get("EVONAS_RUNTIME_ENV_PROBE"), "shipped": shipped}


@pytest.fixture
def cluster():
    from simulated_cluster import start_cluster

    if ray.is_initialized():
        ray.shutdown()
    sim = start_cluster({"num_cpus": 2})
    yield sim
    if ray.is_initialized():
        ray.shutdown()
    sim.shutdown()


def evaluate(objective: EnvironmentProbe, ray_config: RayConfig) -> list[dict[str, Any]]:
    from nas.evaluate.ray_evaluator import RayEvaluator

    evaluator = RayEvaluator(objective, ResourcesConfig(cpus_per_trial=1), ray_config)
    results: dict[int, Any] = {}
    try:
        evaluator.evaluate([job_of(g) for g in (1, 2)], lambda i, r: results.__setitem__(i, r))
    finally:
        evaluator.close()
    assert all(r.ok for r in results.values()), [r.error for r in results.values()]
    return [r.metrics for r in results.values()]


@pytest.mark.full
def test_workers_of_a_cluster_run_in_the_configured_runtime_env(cluster, tmp_path):
    package = tmp_path / "modules" / SHIPPED
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 'shipped'\n")
    env = {"env_vars": {"EVONAS_RUNTIME_ENV_PROBE": "1"}, "py_modules": [str(package)]}
    objective = EnvironmentProbe(str(tmp_path / "probe"))

    seen = evaluate(objective, RayConfig(address=cluster.address, runtime_env=env))
    assert [(m["variable"], m["shipped"]) for m in seen] == [("1", "shipped")] * 2
    assert SHIPPED not in sys.modules and "EVONAS_RUNTIME_ENV_PROBE" not in os.environ  # nothing from the driver
    # The same cluster without a runtime_env: its workers have neither.
    seen = evaluate(objective, RayConfig(address=cluster.address))
    assert [(m["variable"], m["shipped"]) for m in seen] == [(None, None)] * 2
