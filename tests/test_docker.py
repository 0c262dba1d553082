"""docker/: no Docker engine runs here, so the files are parsed and checked against pyproject.toml and Ray's own
cluster-config schema, and the Python the Dockerfile runs at build time is run here on the real pyproject."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml
from conftest import ROOT
from packaging.specifiers import SpecifierSet
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11, as in the image

DOCKER = ROOT / "docker"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def dockerfile_lines() -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    text = "\n".join(line for line in (DOCKER / "Dockerfile").read_text().splitlines() if not line.startswith("#"))
    return [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def build_args() -> dict[str, str]:
    return dict(line.removeprefix("ARG ").split("=", 1) for line in dockerfile_lines() if line.startswith("ARG "))


def python_snippets() -> list[str]:
    """The `python -c` programs the Dockerfile runs at build time, as Python source."""
    snippets = []
    for line in dockerfile_lines():
        words = shlex.split(line.removeprefix("RUN "), posix=True) if line.startswith("RUN ") else []
        snippets += [words[i + 2] for i, w in enumerate(words[:-2]) if w == "python" and words[i + 1] == "-c"]
    return snippets


def pins() -> dict[str, str]:
    return dict(d.split("==") for d in PYPROJECT["project"]["dependencies"] if "==" in d)


def cluster() -> dict:
    return yaml.safe_load((DOCKER / "cluster.yaml").read_text())


def readme() -> str:
    return (DOCKER / "README.md").read_text()


def test_base_image_is_a_cuda_runtime_and_torch_wheels_match_its_cuda():
    args = build_args()
    base = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-runtime-ubuntu[\d.]+", args["CUDA_IMAGE"])
    assert base, args["CUDA_IMAGE"]
    assert args["TORCH_INDEX_URL"].endswith(f"/cu{base[1]}{base[2]}")
    assert any(line == "FROM ${CUDA_IMAGE}" for line in dockerfile_lines())


def test_python_version_satisfies_requires_python():
    version = build_args()["PYTHON_VERSION"]
    assert version in SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert Version(version) >= Version("3.11"), "the build reads pyproject.toml with tomllib"
    assert any('"python${PYTHON_VERSION}" -m venv' in line for line in dockerfile_lines())


def test_every_copied_path_exists_in_the_repository():
    copies = [line.split()[1:-1] for line in dockerfile_lines() if line.startswith("COPY ")]
    assert copies
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert not {s for sources in copies for s in sources} & set(ignored)


def test_dependencies_are_installed_from_pyproject_with_its_pins(tmp_path):
    extract, verify = python_snippets()
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    out = subprocess.run([sys.executable, "-c", extract], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [d.replace(" ", "") for d in PYPROJECT["project"]["dependencies"]]
    assert {"torch", "torchvision"} <= set(pins())
    assert any(line.startswith("RUN pip install --no-deps .") for line in dockerfile_lines())
    assert not re.search(r"torch(vision)?==", (DOCKER / "Dockerfile").read_text()), "pins belong to pyproject only"
    # The build-time pin check passes on this environment (it has the pinned builds) and fails on other pins.
    subprocess.run([sys.executable, "-c", verify], cwd=tmp_path, check=True)
    wrong = (ROOT / "pyproject.toml").read_text().replace(f'"torch=={pins()["torch"]}"', '"torch==0.0.1"')
    (tmp_path / "pyproject.toml").write_text(wrong)
    failed = subprocess.run([sys.executable, "-c", verify], cwd=tmp_path, capture_output=True, text=True)
    assert failed.returncode != 0 and "differ from the pyproject pins" in failed.stderr


def test_cluster_config_passes_rays_schema():
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(cluster(), schema)


def test_cluster_runs_the_image_the_readme_builds():
    image = cluster()["docker"]["image"]
    built = re.findall(r"docker build -f docker/Dockerfile -t (\S+) \.", readme())
    pushed = re.findall(r"docker push (\S+)", readme())
    assert built == [image] and pushed == [image]
    assert image.endswith(f":{PYPROJECT['project']['version']}")
    assert f".ecr.{cluster()['provider']['region']}." in image


def test_cluster_shape_head_runs_no_candidate_and_gpu_workers_autoscale():
    config = cluster()
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"]["CPU"] == 0
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["min_workers"] == 0 and t["max_workers"] <= config["max_workers"] for t in gpu)
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "--num-cpus=0" in head_start


def test_token_auth_is_on_across_the_cluster():
    assert "~/.ray/auth_token" in cluster()["file_mounts"]
    assert any(line.startswith("ENV ") and "RAY_AUTH_MODE=token" in line for line in dockerfile_lines())


@pytest.mark.parametrize(
    "needle",
    ["--ray-address auto", "nas resume /mnt/efs/runs/", "gpus_per_trial", "ray get-auth-token --generate", "ray up"],
)
def test_readme_covers_launch_fractional_gpus_and_resume(needle):
    assert needle in readme()


def test_readme_example_config_exists_and_packs_as_its_table_says():
    config = yaml.safe_load((ROOT / "search_configs/cifar10_hgapso.yaml").read_text())
    assert "search_configs/cifar10_hgapso.yaml" in readme()
    worker = next(t for t in cluster()["available_node_types"].values() if t["resources"].get("GPU"))
    res = config["resources"]
    per_node = min(
        worker["resources"]["GPU"] / res["gpus_per_trial"], worker["resources"]["CPU"] / res["cpus_per_trial"]
    )
    assert f"| {res['gpus_per_trial']:g} | {res['cpus_per_trial']:g} | {per_node:g} |" in readme()
